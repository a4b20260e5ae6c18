"""ssmbook.train: the one training loop, its loss, accuracy and history."""
import pytest
import torch

from ssmbook.s4 import S4Classifier
from ssmbook.tasks import marker_copy_batch
from ssmbook.train import accuracy, cross_entropy, fit


@pytest.fixture
def one_thread():
    # tiny tensors: extra intra-op threads only add contention (2-core CI machine)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_classifier_learns_the_fixed_lag_task(one_thread):
    """A smoke test of the training path: the fixed-position task is solvable by a delay."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = S4Classifier(vocab=5, n_classes=4, d_model=16, d_state=8, dt_min=0.05, dt_max=0.5)
    hist = fit(model, lambda: marker_copy_batch(64, 10, 4, False, generator=g), steps=120, lr=1e-2,
               schedule="constant", test=marker_copy_batch(512, 10, 4, False, generator=g)[:2])
    assert len(hist["loss"]) == 120
    assert hist["eval_acc"] > 0.9
    with pytest.raises(ValueError, match=r"tokens must be an int64 tensor of shape \(batch, L\)"):
        model(torch.zeros(2, 10))


def test_accuracy_counts_correct_predictions():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 3] = 1.0
            return out

    y = torch.tensor([3, 3, 1, 3])
    assert accuracy(Fixed(), torch.zeros(4, 1, 8, 8), y, batch_size=3) == pytest.approx(0.75)


def test_cross_entropy_scores_the_last_positions_of_a_sequence():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(3, 7, 5, generator=g)
    y = torch.randint(0, 5, (3, 2), generator=g)
    expect = torch.nn.functional.cross_entropy(out[:, -2:].reshape(-1, 5), y.reshape(-1))
    torch.testing.assert_close(cross_entropy(out, y), expect)
    y_all = torch.randint(0, 5, (3, 7), generator=g)
    torch.testing.assert_close(cross_entropy(out, y_all),
                               torch.nn.functional.cross_entropy(out.reshape(-1, 5), y_all.reshape(-1)))
    with pytest.raises(ValueError, match="target must have shape"):
        cross_entropy(out, torch.zeros(3, 8, dtype=torch.int64))


@pytest.mark.parametrize("schedule", ["constant", "warmup", "one_cycle"])
def test_fit_history_and_schedules(schedule, one_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = S4Classifier(vocab=5, n_classes=4, d_model=8, d_state=4)
    val = [marker_copy_batch(16, 6, 4, False, generator=g)[:2] for _ in range(2)]
    test = marker_copy_batch(32, 6, 4, False, generator=g)[:2]
    hist = fit(model, lambda: marker_copy_batch(8, 6, 4, False, generator=g), 7, lr=1e-2, schedule=schedule,
               warmup=3 if schedule == "warmup" else None, clip=1.0, val=val, eval_every=3, test=test)
    assert len(hist["loss"]) == len(hist["acc"]) == 7
    assert hist["step"] == [3, 6, 7] and len(hist["val_loss"]) == len(hist["seconds"]) == 3
    torch.testing.assert_close(hist["train_loss"][1], sum(hist["loss"][3:6]) / 3)
    assert hist["params"] == sum(p.numel() for p in model.parameters())
    assert hist["eval_acc"] == accuracy(model, *test)


def test_fit_draws_no_random_numbers_and_repeats_itself(one_thread):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = S4Classifier(vocab=5, n_classes=4, d_model=8, d_state=4)
        g = torch.Generator().manual_seed(1)
        state = torch.get_rng_state()
        hist = fit(model, lambda: marker_copy_batch(8, 6, 4, True, generator=g), 5)
        assert torch.equal(state, torch.get_rng_state())
        runs.append(hist["loss"])
    assert runs[0] == runs[1]


def test_fit_errors_name_the_argument():
    model = torch.nn.Linear(2, 3)
    batch = lambda: (torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64))  # noqa: E731
    for kw, name in ((dict(steps=0), "steps"), (dict(lr=-1.0), "lr"), (dict(schedule="cosine"), "schedule"),
                     (dict(clip=0.0), "clip"), (dict(val=[]), "val"), (dict(eval_every=0), "eval_every"),
                     (dict(test=(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64))), "targets"),
                     (dict(weight_decay=-0.1), "weight_decay"), (dict(warmup=0), "warmup")):
        args = {"steps": 1, **kw}
        with pytest.raises((ValueError, TypeError), match=name):
            fit(model, batch, **args)
    with pytest.raises(TypeError, match="make_batch"):
        fit(model, None, 1)
