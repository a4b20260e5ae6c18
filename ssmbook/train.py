"""The training loop of the book: one :func:`fit` for every model and task.

``fit(model, make_batch, steps, lr, ...)`` minimises a loss with AdamW.  ``make_batch()`` returns
``(inputs, targets, ...)`` (extra entries are ignored) and is called once per step, so the task
decides what a batch is and which random generator draws it; the loop itself draws no random
numbers.  The options cover what the chapters need: a learning-rate schedule (constant, a linear
warm-up, or a one-cycle warm-up and cosine decay), decoupled weight decay, gradient clipping, a
validation loss at regular steps, and the accuracy on a held-out batch at the end.

The default loss, :func:`cross_entropy`, scores class logits ``(batch, classes)`` against labels
``(batch,)``, and a sequence model's logits ``(batch, L, vocab)`` against targets ``(batch, n)`` at
its last ``n`` positions (``n = L``: next-token prediction; ``n < L``: the answer positions of a
synthetic task).  :func:`accuracy` scores predictions the same way.
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _checks
from .measure import count_parameters

__all__ = ["fit", "cross_entropy", "accuracy"]

SCHEDULES = ("constant", "warmup", "one_cycle")


# --------------------------------------------------------------------------------------------
# scoring: loss and accuracy
# --------------------------------------------------------------------------------------------
def _scored(output, target):
    """The part of ``output`` that predicts ``target``: all of it for labels, the last ``n``
    positions of a sequence for targets ``(batch, n)``."""
    if target.dim() == 2 and output.dim() == 3 and target.shape[1] != output.shape[1]:
        return output[:, -target.shape[1]:]
    return output


def cross_entropy(output, target):
    """Mean cross-entropy (nats) of ``output`` logits for the int64 ``target``: ``(batch, classes)``
    against ``(batch,)``, or ``(batch, L, vocab)`` against ``(batch, n)`` at the last ``n <= L``
    positions."""
    _checks.tensor(output, "output", ndim=(2, 3), shape_doc="(batch, classes) or (batch, L, vocab)")
    _checks.tensor(target, "target", ndim=output.dim() - 1, integer=True,
                   shape_doc="(batch,)" if output.dim() == 2 else "(batch, n)")
    if target.shape[0] != output.shape[0] or (output.dim() == 3 and target.shape[1] > output.shape[1]):
        raise ValueError(f"target must have shape {'(batch,)' if output.dim() == 2 else '(batch, n <= L)'} "
                         f"for output {tuple(output.shape)}, got {tuple(target.shape)}")
    scored = _scored(output, target)
    return F.cross_entropy(scored.reshape(-1, scored.shape[-1]), target.reshape(-1))


def _right(output, target):
    """1 where the arg-max prediction equals the target, else 0 (the shape of ``target``)."""
    return _scored(output, target).argmax(-1) == target


def _device(model):
    """The device of the model's parameters (the CPU for a model without any)."""
    p = next(model.parameters(), None)
    return torch.device("cpu") if p is None else p.device


def _answers(model, inputs, targets, batch_size):
    """float64 0/1 per target of ``model`` on ``inputs`` (eval mode, no gradients), in chunks."""
    device = _device(model)
    n = len(inputs)
    size = n if batch_size is None else batch_size
    model.eval()
    with torch.no_grad():
        pred = torch.cat([_scored(model(inputs[i:i + size].to(device)), targets).argmax(-1).cpu()
                          for i in range(0, n, size)])
    return (pred == targets.cpu()).double()


def _check_labelled(model, inputs, targets, batch_size):
    _checks.module(model, "model")
    _checks.tensor(inputs, "inputs", floating=False, shape_doc="(n, ...)")
    _checks.tensor(targets, "targets", ndim=(1, 2), integer=True, shape_doc="(n,) or (n, m)")
    if len(targets) != len(inputs) or len(inputs) == 0:
        raise ValueError(f"targets must have one entry per input (n = {len(inputs)} >= 1), got {len(targets)}")
    if batch_size is not None:
        _checks.positive_int(batch_size, "batch_size")


def accuracy(model: nn.Module, inputs, targets, batch_size: int | None = None) -> float:
    """Fraction of ``targets`` that ``model`` predicts right on ``inputs`` (arg-max; eval mode, no
    gradients), in chunks of ``batch_size`` inputs (None: one chunk)."""
    _check_labelled(model, inputs, targets, batch_size)
    return _answers(model, inputs, targets, batch_size).mean().item()


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
def _scheduler(opt, schedule, steps, lr, warmup):
    if schedule == "one_cycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    if schedule == "warmup":
        w = max(1, steps // 10) if warmup is None else warmup
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / w))
    return None


def _check_fit(model, make_batch, steps, lr, loss, weight_decay, schedule, warmup, clip, val, eval_every,
               test, eval_batch_size):
    _checks.module(model, "model")
    if not callable(make_batch):
        raise _checks.ArgumentTypeError(f"make_batch must be callable (() -> (inputs, targets, ...)), "
                                        f"got {type(make_batch).__name__}")
    _checks.positive_int(steps, "steps")
    _checks.positive_scalar(lr, "lr")
    if not callable(loss):
        raise _checks.ArgumentTypeError(f"loss must be callable ((output, target) -> scalar), "
                                        f"got {type(loss).__name__}")
    _checks.real_scalar(weight_decay, "weight_decay", low=0)
    _checks.one_of(schedule, "schedule", SCHEDULES)
    if warmup is not None:
        _checks.positive_int(warmup, "warmup")
    if clip is not None:
        _checks.positive_scalar(clip, "clip")
    if val is not None and (not isinstance(val, (list, tuple)) or len(val) == 0
                            or not all(isinstance(b, (list, tuple)) and len(b) >= 2 for b in val)):
        raise ValueError("val must be a non-empty list of (inputs, targets) batches")
    if eval_every is not None:
        _checks.positive_int(eval_every, "eval_every")
    if test is not None:
        if not isinstance(test, (list, tuple)) or len(test) < 2:
            raise ValueError(f"test must be an (inputs, targets) pair, got {type(test).__name__}")
        _check_labelled(model, test[0], test[1], eval_batch_size)


def fit(model: nn.Module, make_batch, steps: int, lr: float = 3e-3, *, loss=cross_entropy,
        weight_decay: float = 0.0, schedule: str = "warmup", warmup: int | None = None,
        clip: float | None = None, val=None, eval_every: int | None = None, test=None,
        eval_batch_size: int | None = None) -> dict:
    """Train ``model`` for ``steps`` steps of AdamW on batches from ``make_batch()``; return its history.

    ``schedule``: ``"constant"`` (the rate ``lr`` throughout), ``"warmup"`` (a linear warm-up over
    ``warmup`` steps, default a tenth of ``steps``, then ``lr``) or ``"one_cycle"`` (a warm-up over
    15% of the steps to ``lr``, then a cosine decay).  ``clip``: the largest gradient norm (None:
    no clipping).  Batches move to the device of the model's parameters.

    The history: ``loss`` and ``acc``, per step (the training batch's loss and the fraction of its
    targets predicted right); at every ``eval_every``-th step and the last, ``step``,
    ``train_loss`` (the mean loss since the previous such step), ``seconds`` (wall clock since the
    start) and, with ``val`` (a list of batches), ``val_loss`` (their mean loss, eval mode);
    ``params``, the number of trainable parameters; with ``test`` = ``(inputs, targets)``, after
    training, ``eval_acc`` (the fraction predicted right, in chunks of ``eval_batch_size``) and, for
    targets ``(n, m)``, ``eval_acc_by_position`` (the same per target position).
    """
    _check_fit(model, make_batch, steps, lr, loss, weight_decay, schedule, warmup, clip, val, eval_every,
               test, eval_batch_size)
    device = _device(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = _scheduler(opt, schedule, steps, lr, warmup)
    hist = {"loss": [], "acc": [], "step": [], "train_loss": [], "seconds": [], "params": count_parameters(model)}
    if val is not None:
        hist["val_loss"] = []
    running, t0 = [], time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        x, y = (t.to(device) for t in make_batch()[:2])
        out = model(x)
        value = loss(out, y)
        opt.zero_grad(set_to_none=True)
        value.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if sched is not None:
            sched.step()
        hist["loss"].append(value.item())
        hist["acc"].append(_right(out, y).float().mean().item())
        running.append(hist["loss"][-1])
        if step == steps or (eval_every is not None and step % eval_every == 0):
            hist["step"].append(step)
            hist["train_loss"].append(sum(running) / len(running))
            running = []
            if val is not None:
                model.eval()
                with torch.no_grad():
                    hist["val_loss"].append(sum(loss(model(a.to(device)), b.to(device)).item()
                                                for a, b, *_ in val) / len(val))
                model.train()
            hist["seconds"].append(time.perf_counter() - t0)
    if test is not None:
        right = _answers(model, test[0], test[1], eval_batch_size)
        hist["eval_acc"] = right.mean().item()
        if right.dim() == 2:
            hist["eval_acc_by_position"] = right.mean(0).tolist()
    return hist
