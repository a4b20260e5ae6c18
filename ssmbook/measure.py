"""Measurements: parameter counts, FLOPs, memory and operator counts, cache and state sizes.

What the chapters measure about a model or a function, in one place:

* :func:`count_parameters` (trainable parameters, a tied weight once);
* :func:`transformer_block_flops` (the formula for one Transformer block, on ints or sympy
  symbols) and :func:`count_flops` (torch's count on a real module), :func:`n_tokens` (the token
  count of an image cut into patches);
* :func:`kv_cache_floats` and :func:`mamba_state_floats`: what a Transformer and a Mamba block keep
  while decoding;
* :func:`peak_memory`, :func:`saved_for_backward` and :func:`count_ops`: the memory a call
  allocates, the activations autograd keeps for the backward pass, and the number of operator
  calls (the length of the critical path on a machine that runs each operator in parallel).

FLOP formulas that belong to one algorithm stay with it (``ssd.ssd_flops``, ``delta.delta_rule_flops``).
"""
from __future__ import annotations

import weakref

import numpy as np
import torch
import torch.nn as nn

from . import _checks

__all__ = ["count_parameters", "transformer_block_flops", "count_flops", "n_tokens", "kv_cache_floats",
           "mamba_state_floats", "peak_memory", "saved_for_backward", "count_ops"]


# ----------------------------------------------------------------------------------------------
# parameters and FLOPs
# ----------------------------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (a tied weight counts once)."""
    _checks.module(model, "model")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)



def transformer_block_flops(L, D, mlp_ratio=4) -> dict:
    """FLOPs (2 per multiply-add) of the matrix products in one Transformer block on ``L`` tokens
    of width ``D``: the *linear* term (QKV and output projections, ``8 L D²``; MLP, ``4 r L D²``)
    and the *quadratic* term (``q kᵀ`` and ``A v``, ``2 L² D`` each).  Works on ints or sympy symbols.
    Norms, softmax, activations and biases are left out (lower order)."""
    for name, value in (("L", L), ("D", D), ("mlp_ratio", mlp_ratio)):
        _checks.sizes(value, name)
    linear = 2 * L * D * 3 * D + 2 * L * D * D + 2 * 2 * L * D * (mlp_ratio * D)
    quadratic = 2 * L * L * D + 2 * L * L * D
    return {"linear": linear, "quadratic": quadratic, "total": linear + quadratic}



def n_tokens(height: int, width: int, patch: int = 16) -> int:
    """Number of ``patch × patch`` tokens of an ``height × width`` image (floor division)."""
    for name, v in (("height", height), ("width", width), ("patch", patch)):
        _checks.positive_int(v, name)
    return (height // patch) * (width // patch)


def count_flops(module: nn.Module, *inputs) -> int:
    """FLOPs of ``module(*inputs)`` counted by torch's ``FlopCounterMode`` (matrix products and
    convolutions, 2 per multiply-add), no gradients."""
    from torch.utils.flop_counter import FlopCounterMode

    _checks.module(module, "module")

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return int(counter.get_total_flops())


def kv_cache_floats(t, D: int, n_layers: int = 1):
    """Floats a causal Transformer keeps after ``t`` tokens: a key and a value per token per layer."""
    _checks.sizes(t, "t", allow_symbols=False)
    D, n_layers = _checks.positive_int(D, "D"), _checks.positive_int(n_layers, "n_layers")
    return 2 * np.asarray(t) * D * n_layers


def mamba_state_floats(D: int, d_state: int = 16, expand: int = 2, d_conv: int = 4, n_layers: int = 1) -> int:
    """Floats a Mamba block keeps, whatever ``t``: the SSM state ``(expand·D, d_state)`` plus the
    last ``d_conv`` inputs of its causal conv ``(expand·D, d_conv)``, as ``MambaBlock.allocate_state``
    stores them (``d_conv - 1`` would do; the newest one is overwritten at once)."""
    for name, value in (("D", D), ("d_state", d_state), ("expand", expand), ("d_conv", d_conv),
                        ("n_layers", n_layers)):
        _checks.positive_int(value, name)
    inner = expand * D
    return n_layers * inner * (d_state + d_conv)



# ----------------------------------------------------------------------------------------------
# memory and operator counts of a call
# ----------------------------------------------------------------------------------------------
def peak_memory(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and return ``(result, peak_bytes)``.

    ``peak_bytes`` is the largest total size of tensors that torch operators created inside the
    call and that were alive at the same time (inputs not counted; views and in-place results
    share storage and are not counted twice).  Works on any device; use it under
    ``torch.no_grad()`` (tensors saved for backward live in C++ and are not seen).
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable (it is called as fn(*args, **kwargs)), got {type(fn).__name__}")
    from torch.utils._python_dispatch import TorchDispatchMode

    live = {"now": 0, "peak": 0}
    seen = {}

    def release(key, nbytes):
        if seen.pop(key, None) is not None:
            live["now"] -= nbytes

    class Probe(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            inputs = {a.untyped_storage().data_ptr() for a in list(args) + list(kwargs.values())
                      if isinstance(a, torch.Tensor)}
            outs = out if isinstance(out, (tuple, list)) else (out,)
            for o in outs:
                if not isinstance(o, torch.Tensor) or o._base is not None:
                    continue
                st = o.untyped_storage()
                key = st.data_ptr()
                if key in seen or key in inputs or st.nbytes() == 0:
                    continue
                seen[key] = True
                live["now"] += st.nbytes()
                live["peak"] = max(live["peak"], live["now"])
                weakref.finalize(o, release, key, st.nbytes())
            return out

    with Probe():
        result = fn(*args, **kwargs)
    return result, live["peak"]


def count_ops(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and return ``(result, n)``, ``n`` the number of torch operator calls.

    Each call is one pass over its tensors, however large: a form that needs ``L`` sequential steps
    makes O(L) calls, a parallel form a number independent of ``L``.  For a machine that runs each
    operator in parallel over its elements (a GPU), ``n`` is the length of the critical path.
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable (it is called as fn(*args, **kwargs)), got {type(fn).__name__}")
    from torch.utils._python_dispatch import TorchDispatchMode

    calls = [0]

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            calls[0] += 1
            return func(*args, **(kwargs or {}))

    with Counter():
        result = fn(*args, **kwargs)
    return result, calls[0]


def saved_for_backward(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` with autograd on and return ``(result, nbytes)``.

    ``nbytes`` is the total size of the tensors that autograd saves for the backward pass during
    the call: the activation memory a training step holds between its forward and its backward.
    Storages are counted once (views and repeated saves of one tensor share it), and storages of
    the arguments (inputs and parameters passed in) are not counted.  Needs at least one argument
    with ``requires_grad=True``, else nothing is saved and a ValueError is raised.
    """
    tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
    if not any(t.requires_grad for t in tensors):
        raise ValueError("args must include a tensor with requires_grad=True "
                         "(without one, autograd saves nothing)")
    inputs = {t.untyped_storage().data_ptr() for t in tensors}
    seen = {}

    def pack(t):
        st = t.untyped_storage()
        key = st.data_ptr()
        if key not in inputs and st.nbytes() > 0:
            seen[key] = st.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn(*args, **kwargs)
    return result, sum(seen.values())
