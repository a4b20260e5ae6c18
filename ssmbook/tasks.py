"""The corpora and synthetic tasks the chapters train on, each with its batches and its training run.

* a character corpus that ships with Python (:func:`char_corpus`), its random windows
  (:func:`lm_batch`) and next-character training (:func:`train_lm`, chapter 8);
* selective copying (:func:`selective_copying_batch`, :func:`train_selective_copying`: chapters 5
  and 9);
* marker copy (:func:`marker_copy_batch`, chapter 4, trained with :func:`ssmbook.train.fit`);
* multi-query associative recall (:func:`associative_recall_batch`,
  :func:`train_associative_recall`, chapter 10);
* scikit-learn's 8x8 digits (:class:`DigitsSplit`, :func:`load_digits_split`, :func:`train_digits`,
  chapter 7).

Every batch function takes a ``torch.Generator`` (or draws from torch's global one), so a seed
fixes the data.  Every ``train_*`` function binds its task to :func:`ssmbook.train.fit`: it builds
the batch function from a seeded generator and the held-out data, and returns fit's history.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from . import _checks
from .train import fit

__all__ = ["char_corpus", "lm_batch", "train_lm", "selective_copying_batch", "train_selective_copying",
           "marker_copy_batch", "associative_recall_batch", "train_associative_recall", "DigitsSplit",
           "load_digits_split", "train_digits"]


# --------------------------------------------------------------------------------------------
# a character corpus: next-character prediction
# --------------------------------------------------------------------------------------------
def char_corpus(n_chars: int = 200_000):
    """Characters of Python's own documentation (``pydoc_data.topics``, ships with Python).

    Non-ASCII characters become ``'?'``.  Returns ``(ids, alphabet)``: an int64 tensor of
    ``n_chars`` token ids and the string of characters they index.
    """
    import pydoc_data.topics

    _checks.positive_int(n_chars, "n_chars", minimum=2)
    text = "".join(pydoc_data.topics.topics[key] for key in sorted(pydoc_data.topics.topics))
    text = "".join(ch if (ch.isascii() and (ch.isprintable() or ch == "\n")) else "?" for ch in text)
    if n_chars > len(text):
        raise ValueError(f"n_chars must be <= {len(text)} (the corpus size), got {n_chars}")
    text = text[:n_chars]
    alphabet = "".join(sorted(set(text)))
    index = {ch: i for i, ch in enumerate(alphabet)}
    return torch.tensor([index[ch] for ch in text], dtype=torch.int64), alphabet


def _check_ids(ids, name, seq_len):
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64 or ids.dim() != 1 or len(ids) <= seq_len + 1:
        raise ValueError(f"{name} must be a 1-D int64 tensor longer than seq_len + 1 = {seq_len + 1}")


def lm_batch(ids, batch: int, seq_len: int, generator: torch.Generator | None = None):
    """``batch`` random windows of ``ids``: inputs ``(batch, seq_len)`` and the same windows one
    character later as targets (each window starts uniformly in the corpus)."""
    _checks.positive_int(batch, "batch"), _checks.positive_int(seq_len, "seq_len")
    _check_ids(ids, "ids", seq_len)
    starts = torch.randint(0, len(ids) - seq_len - 1, (batch,), generator=generator)
    x = torch.stack([ids[s:s + seq_len] for s in starts.tolist()])
    y = torch.stack([ids[s + 1:s + seq_len + 1] for s in starts.tolist()])
    return x, y


def train_lm(model, train_ids, val_ids, steps=200, batch=32, seq_len=64, lr=3e-3, eval_every=25,
             eval_batches=4, seed=0):
    """Train a next-character model on windows of ``train_ids`` with :func:`~ssmbook.train.fit`
    (AdamW, weight decay 0.01, a 20-step warm-up, gradients clipped at norm 1); the validation loss
    is the mean over ``eval_batches`` fixed windows of ``val_ids``, every ``eval_every`` steps.
    Losses are cross-entropies in nats per character."""
    _checks.positive_int(seq_len, "seq_len")
    _check_ids(train_ids, "train_ids", seq_len)
    _check_ids(val_ids, "val_ids", seq_len)
    _checks.positive_int(eval_batches, "eval_batches")
    gen = torch.Generator().manual_seed(seed)
    val = [lm_batch(val_ids, batch, seq_len, gen) for _ in range(eval_batches)]
    return fit(model, lambda: lm_batch(train_ids, batch, seq_len, gen), steps, lr, weight_decay=0.01,
               warmup=20, clip=1.0, val=val, eval_every=eval_every)


# --------------------------------------------------------------------------------------------
# selective copying
# --------------------------------------------------------------------------------------------
def selective_copying_batch(batch: int, n_context: int = 24, n_data: int = 4, n_symbols: int = 8,
                            generator: torch.Generator | None = None):
    """A batch of the selective-copying task (Gu & Dao, section 3.1), at toy scale.

    Vocabulary: ``0`` blank (noise), ``1..n_symbols`` data symbols, ``n_symbols + 1`` the "go" marker.
    Each sequence has ``n_context`` positions, of which ``n_data`` random ones (a different set in
    every row) hold random data symbols and the rest are blank, followed by ``n_data`` go markers.
    At the markers the model must output the data symbols in their order of appearance.

    Returns ``tokens`` (batch, n_context + n_data) int64 and ``targets`` (batch, n_data) int64; the
    vocabulary size is ``n_symbols + 2``.
    """
    for name, v in (("batch", batch), ("n_context", n_context), ("n_data", n_data), ("n_symbols", n_symbols)):
        _checks.positive_int(v, name)
    if n_data > n_context:
        raise ValueError(f"n_data must be <= n_context, got n_data={n_data}, n_context={n_context}")
    pos = torch.rand(batch, n_context, generator=generator).argsort(dim=1)[:, :n_data]
    pos = pos.sort(dim=1).values                                           # in order of appearance
    data = torch.randint(1, n_symbols + 1, (batch, n_data), generator=generator)
    tokens = torch.zeros(batch, n_context + n_data, dtype=torch.int64)
    tokens.scatter_(1, pos, data)
    tokens[:, n_context:] = n_symbols + 1
    return tokens, data


def train_selective_copying(model: nn.Module, steps: int, batch: int = 32, lr: float = 3e-3,
                            n_context: int = 24, n_data: int = 4, n_symbols: int = 8, seed: int = 0,
                            n_eval: int = 512) -> dict:
    """Train ``model`` (tokens → logits) on selective copying with :func:`~ssmbook.train.fit` (AdamW,
    a linear warm-up over the first tenth of the steps); the loss is the cross-entropy at the
    ``n_data`` answer positions.  ``eval_acc`` and ``eval_acc_by_position`` score ``n_eval`` fresh
    sequences (seed ``10_000 + seed``)."""
    _checks.module(model, "model", " (tokens -> logits)")
    _checks.positive_int(n_eval, "n_eval")
    task = dict(n_context=n_context, n_data=n_data, n_symbols=n_symbols)
    gen = torch.Generator().manual_seed(seed)
    test = selective_copying_batch(n_eval, **task, generator=torch.Generator().manual_seed(10_000 + seed))
    return fit(model, lambda: selective_copying_batch(batch, **task, generator=gen), steps, lr, test=test)


# --------------------------------------------------------------------------------------------
# marker copy
# --------------------------------------------------------------------------------------------
def marker_copy_batch(batch: int, L: int, vocab: int, random_position: bool, generator=None):
    """The marker-copy toy task: which token follows the marker?

    Tokens 0..vocab-1 are data; token ``vocab`` is the marker.  A sequence of ``L`` random data
    tokens has one marker at position p; the label is the token at p + 1.  With
    ``random_position=False`` the marker is always at p = 0 (a fixed lag of L - 2 from the last
    position: a long-range memory task that a time-invariant filter can solve); with ``True``, p is
    uniform in [0, L - 2] (the filter would have to depend on where the marker is).
    Returns (tokens (batch, L) long, labels (batch,) long, positions (batch,) long).
    """
    batch, L, vocab = (_checks.positive_int(v, n) for v, n in ((batch, "batch"), (L, "L"), (vocab, "vocab")))
    if L < 2:
        raise ValueError(f"L must be at least 2 (a marker and the token after it), got {L}")
    tokens = torch.randint(0, vocab, (batch, L), generator=generator)
    if random_position:
        p = torch.randint(0, L - 1, (batch,), generator=generator)
    else:
        p = torch.zeros(batch, dtype=torch.long)
    rows = torch.arange(batch)
    tokens[rows, p] = vocab
    return tokens, tokens[rows, p + 1].clone(), p


# --------------------------------------------------------------------------------------------
# multi-query associative recall
# --------------------------------------------------------------------------------------------
def associative_recall_batch(batch: int, n_pairs: int = 8, n_queries: int = 4, n_keys: int = 16,
                             n_values: int = 16, repeat_keys: bool = False,
                             generator: torch.Generator | None = None):
    """A batch of multi-query associative recall.

    Each sequence lists ``n_pairs`` (key, value) pairs with distinct keys, then ``n_queries`` of those
    keys again (in a random order); the model must answer each query with its value.  Keys are tokens
    ``0 .. n_keys-1``, values ``n_keys .. n_keys+n_values-1``.  Returns ``tokens`` (batch,
    2·n_pairs + n_queries), ``targets`` (batch, n_queries): the values to predict *at* the query
    positions; the vocabulary size is ``n_keys + n_values``.

    With ``repeat_keys=True`` the keys are drawn with replacement, so a key can be written several
    times with different values, and the answer is the value written *last* (a memory that must be
    overwritten); the queries are then drawn from the pairs, possibly repeating a key.
    """
    for name, val in (("batch", batch), ("n_pairs", n_pairs), ("n_queries", n_queries),
                      ("n_keys", n_keys), ("n_values", n_values)):
        _checks.positive_int(val, name)
    _checks.flag(repeat_keys, "repeat_keys")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise _checks.ArgumentTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if n_pairs > n_keys and not repeat_keys:
        raise ValueError(f"n_pairs must be <= n_keys (keys are distinct), got {n_pairs} > {n_keys}")
    if n_queries > n_pairs:
        raise ValueError(f"n_queries must be <= n_pairs, got {n_queries} > {n_pairs}")
    if repeat_keys:
        keys = torch.randint(0, n_keys, (batch, n_pairs), generator=generator)
    else:
        keys = torch.rand(batch, n_keys, generator=generator).argsort(dim=1)[:, :n_pairs]
    values = torch.randint(n_keys, n_keys + n_values, (batch, n_pairs), generator=generator)
    pick = torch.rand(batch, n_pairs, generator=generator).argsort(dim=1)[:, :n_queries]
    qkeys = keys.gather(1, pick)                                           # (batch, n_queries)
    same = keys[:, None, :] == qkeys[:, :, None]                           # (batch, n_queries, n_pairs)
    last = (same * torch.arange(1, n_pairs + 1)).argmax(dim=-1)            # the last write of that key
    tokens = torch.empty(batch, 2 * n_pairs + n_queries, dtype=torch.int64)
    tokens[:, 0:2 * n_pairs:2], tokens[:, 1:2 * n_pairs:2] = keys, values
    tokens[:, 2 * n_pairs:] = qkeys
    return tokens, values.gather(1, last)


def train_associative_recall(model: nn.Module, steps: int, batch: int = 32, lr: float = 3e-3,
                             n_pairs: int = 8, n_queries: int = 4, n_keys: int = 16, n_values: int = 16,
                             repeat_keys: bool = False, seed: int = 0, n_eval: int = 512) -> dict:
    """Train ``model`` (tokens → logits) on associative recall with :func:`~ssmbook.train.fit`
    (AdamW, a linear warm-up over the first tenth of the steps); the loss is the cross-entropy at
    the query positions.  ``eval_acc`` scores ``n_eval`` fresh sequences (seed ``10_000 + seed``)."""
    _checks.module(model, "model", " (tokens -> logits)")
    _checks.positive_int(steps, "steps"), _checks.positive_scalar(lr, "lr"), _checks.positive_int(batch, "batch")
    vocab = getattr(model, "vocab_size", None)
    if isinstance(vocab, int) and vocab < n_keys + n_values:
        raise ValueError(f"model must have vocab_size >= n_keys + n_values = {n_keys + n_values} "
                         f"(the task's tokens), got vocab_size {vocab}")
    _checks.positive_int(n_eval, "n_eval")
    task = dict(n_pairs=n_pairs, n_queries=n_queries, n_keys=n_keys, n_values=n_values, repeat_keys=repeat_keys)
    gen = torch.Generator().manual_seed(seed)
    test = associative_recall_batch(n_eval, generator=torch.Generator().manual_seed(10_000 + seed), **task)
    return fit(model, lambda: associative_recall_batch(batch, generator=gen, **task), steps, lr, test=test)


# --------------------------------------------------------------------------------------------
# scikit-learn's 8x8 digits
# --------------------------------------------------------------------------------------------
@dataclass
class DigitsSplit:
    x_train: torch.Tensor  # (n, 1, 8, 8) float32 in [0, 1]
    y_train: torch.Tensor  # (n,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor

    def __post_init__(self):
        for name in ("x_train", "x_test"):
            _checks.tensor(getattr(self, name), name, ndim=4, shape_doc="(n, 1, 8, 8)")
        for name, xname in (("y_train", "x_train"), ("y_test", "x_test")):
            y = _checks.tensor(getattr(self, name), name, ndim=1, shape_doc="(n,)", integer=True)
            if len(y) != len(getattr(self, xname)):
                raise ValueError(f"{name} must have one label per image of {xname} ({len(getattr(self, xname))}), "
                                 f"got {len(y)}")


def load_digits_split(test_fraction: float = 0.3, seed: int = 0) -> DigitsSplit:
    """scikit-learn's 8×8 digits (1797 images, shipped with the package), a stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction, random_state=seed,
                                          stratify=d.target)
    return DigitsSplit(torch.from_numpy(xtr), torch.from_numpy(ytr).long(),
                       torch.from_numpy(xte), torch.from_numpy(yte).long())


def _epochs(data: DigitsSplit, batch_size: int, generator: torch.Generator):
    """The training images in minibatches, epoch after epoch, each epoch in a fresh random order."""
    n = len(data.x_train)
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            yield data.x_train[idx], data.y_train[idx]


def train_digits(model: nn.Module, data: DigitsSplit, epochs: int = 12, lr: float = 3e-3,
                 batch_size: int = 64, seed: int = 0) -> dict:
    """Train an image classifier on ``data`` with :func:`~ssmbook.train.fit`: AdamW (weight decay
    0.05) under a one-cycle schedule, ``epochs`` passes over the training images in an order drawn
    from ``seed``.  Returns ``test_acc``, the last training loss, the parameter count and the wall
    time (seconds, for information only)."""
    if not isinstance(data, DigitsSplit):
        raise _checks.ArgumentTypeError(f"data must be a DigitsSplit (from load_digits_split), "
                                        f"got {type(data).__name__}")
    epochs, batch_size = _checks.positive_int(epochs, "epochs"), _checks.positive_int(batch_size, "batch_size")
    batches = _epochs(data, batch_size, torch.Generator().manual_seed(seed))
    h = fit(model, lambda: next(batches), epochs * math.ceil(len(data.x_train) / batch_size), lr,
            weight_decay=0.05, schedule="one_cycle", test=(data.x_test, data.y_test), eval_batch_size=512)
    return {"test_acc": h["eval_acc"], "train_loss": h["loss"][-1], "params": h["params"], "seconds": h["seconds"][-1]}
