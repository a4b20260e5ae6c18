"""ssmbook.tasks: every task's batches say what the task is; every training run trains."""
import math

import pytest
import torch

from ssmbook import mambaout as mo, rwkv, tasks
from ssmbook.delta import DeltaNetBlock
from ssmbook.lm import ResidualLM
from ssmbook.mamba import MambaLM
from ssmbook.measure import count_parameters


def test_char_corpus_decodes_to_python_docs():
    import pydoc_data.topics

    ids, alphabet = tasks.char_corpus(5000)
    assert ids.dtype == torch.int64 and ids.shape == (5000,)
    assert int(ids.min()) >= 0 and int(ids.max()) < len(alphabet)
    text = "".join(alphabet[i] for i in ids.tolist())
    first = pydoc_data.topics.topics[sorted(pydoc_data.topics.topics)[0]]
    assert text[:200] == first[:200]
    with pytest.raises(ValueError, match=r"n_chars must be <="):
        tasks.char_corpus(10**9)


def test_lm_batch_targets_are_the_inputs_one_step_later():
    ids = torch.arange(100)
    x, y = tasks.lm_batch(ids, 6, 9, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (6, 9)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)


def test_selective_copying_batch():
    g = torch.Generator().manual_seed(1)
    tokens, target = tasks.selective_copying_batch(200, n_context=10, n_data=3, n_symbols=5, generator=g)
    assert tokens.shape == (200, 13) and target.shape == (200, 3) and tokens.dtype == torch.int64
    ctx = tokens[:, :10]
    assert (ctx > 0).sum(1).eq(3).all()                   # exactly n_data data tokens
    assert (ctx <= 5).all() and (tokens[:, 10:] == 6).all()
    for row in range(200):                                # targets are the data tokens in order
        assert torch.equal(ctx[row][ctx[row] > 0], target[row])
    assert tokens[:, :10].ne(0).float().mean(0).min() > 0  # every position is used somewhere


def test_copying_batch_errors():
    with pytest.raises(ValueError, match="n_data must be <= n_context"):
        tasks.selective_copying_batch(2, n_context=3, n_data=4)
    with pytest.raises(ValueError, match="batch must be a positive int"):
        tasks.selective_copying_batch(0)


@pytest.mark.parametrize("random_position", [False, True])
def test_marker_copy_batch(random_position):
    g = torch.Generator().manual_seed(0)
    x, y, p = tasks.marker_copy_batch(64, 12, 5, random_position, generator=g)
    assert x.shape == (64, 12) and y.shape == (64,) and x.dtype == torch.long
    assert torch.all((x == 5).sum(1) == 1)                   # exactly one marker
    for i in range(64):
        assert x[i, p[i]] == 5 and y[i] == x[i, p[i] + 1] and 0 <= y[i] < 5
    if random_position:
        assert len(set(p.tolist())) > 3 and int(p.max()) <= 10
    else:
        assert torch.all(p == 0)
    with pytest.raises(ValueError, match="L must be at least 2"):
        tasks.marker_copy_batch(4, 1, 5, True)


def test_associative_recall_batch():
    g = torch.Generator().manual_seed(0)
    tokens, target = tasks.associative_recall_batch(64, n_pairs=6, n_queries=3, n_keys=10, n_values=7, generator=g)
    assert tokens.shape == (64, 15) and target.shape == (64, 3)
    keys, values = tokens[:, 0:12:2], tokens[:, 1:12:2]
    assert (keys < 10).all() and (values >= 10).all() and (values < 17).all()
    for row in range(64):
        assert len(set(keys[row].tolist())) == 6                   # distinct keys
        for j in range(3):
            pos = (keys[row] == tokens[row, 12 + j]).nonzero()
            assert values[row, pos.item()] == target[row, j]


def test_associative_recall_with_overwrites_answers_the_last_write():
    g = torch.Generator().manual_seed(1)
    tokens, target = tasks.associative_recall_batch(128, n_pairs=10, n_queries=4, n_keys=4, n_values=9,
                                              repeat_keys=True, generator=g)
    keys, values = tokens[:, 0:20:2], tokens[:, 1:20:2]
    repeated = 0
    for row in range(128):
        for j in range(4):
            where = (keys[row] == tokens[row, 20 + j]).nonzero()[:, 0]
            assert len(where) >= 1
            repeated += len(where) > 1
            assert target[row, j] == values[row, where[-1]]          # the latest value for that key
    assert repeated > 100                                              # overwrites do occur
    with pytest.raises(TypeError, match="repeat_keys"):
        tasks.associative_recall_batch(2, repeat_keys=1)


def test_associative_recall_batch_errors():
    with pytest.raises(ValueError, match="n_pairs must be <= n_keys"):
        tasks.associative_recall_batch(2, n_pairs=5, n_keys=4)


def test_train_lm_learns_something():
    ids, alphabet = tasks.char_corpus(20_000)
    torch.manual_seed(0)
    model = rwkv.RWKVLM(len(alphabet), 16, 1)
    hist = tasks.train_lm(model, ids[:18_000], ids[18_000:], steps=30, batch=8, seq_len=16, lr=1e-2,
                          eval_every=10, eval_batches=2)
    assert hist["step"] == [10, 20, 30] and len(hist["val_loss"]) == 3
    assert hist["params"] == count_parameters(model)
    assert hist["val_loss"][-1] < math.log(len(alphabet)) - 0.5  # well below a uniform guess


def test_train_selective_copying_runs_and_reports():
    torch.manual_seed(0)
    lm = MambaLM(6, 4, 1, d_state=2)
    h = tasks.train_selective_copying(lm, 3, batch=4, n_context=6, n_data=2, n_symbols=4, n_eval=16)
    assert len(h["loss"]) == 3 and len(h["acc"]) == 3 and 0.0 <= h["eval_acc"] <= 1.0
    assert all(math.isfinite(v) for v in h["loss"])
    assert len(h["eval_acc_by_position"]) == 2
    assert abs(sum(h["eval_acc_by_position"]) / 2 - h["eval_acc"]) < 1e-12
    before = [p.detach().clone() for p in lm.parameters()]
    tasks.train_selective_copying(lm, 2, batch=4, n_context=6, n_data=2, n_symbols=4, n_eval=4)
    assert any(not torch.equal(p0, p) for p0, p in zip(before, lm.parameters()))   # it does train


@pytest.mark.parametrize("rule", DeltaNetBlock.RULES)
def test_train_associative_recall_runs(rule):
    torch.manual_seed(0)
    model = ResidualLM(12, 8, 1, lambda d: DeltaNetBlock(d, 2, 4, rule, chunk=4))
    hist = tasks.train_associative_recall(model, steps=3, batch=4, n_pairs=3, n_queries=2, n_keys=6,
                                          n_values=6, n_eval=8)
    assert len(hist["loss"]) == 3 and 0.0 <= hist["eval_acc"] <= 1.0
    with pytest.raises(ValueError, match="model must have vocab_size >= n_keys"):
        tasks.train_associative_recall(model, steps=1, n_keys=16, n_values=16)


def test_digits_split_and_train_digits_learn():
    data = tasks.load_digits_split(test_fraction=0.3, seed=0)
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_train.dtype == torch.float32
    assert len(data.x_train) + len(data.x_test) == 1797
    assert float(data.x_train.max()) <= 1.0 and float(data.x_train.min()) >= 0.0
    assert set(data.y_test.tolist()) == set(range(10))
    small = tasks.DigitsSplit(data.x_train[:600], data.y_train[:600], data.x_test[:300], data.y_test[:300])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is fastest
    try:
        torch.manual_seed(0)
        res = tasks.train_digits(mo.TinyMambaOut(dims=(8, 16)), small, epochs=8, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert res["test_acc"] > 0.5 and res["params"] > 0  # chance is 0.1
    with pytest.raises(ValueError, match="test_fraction"):
        tasks.load_digits_split(test_fraction=1.5)
    with pytest.raises(ValueError, match="name must be one of"):
        mo.make_model("ResNet", 0)
