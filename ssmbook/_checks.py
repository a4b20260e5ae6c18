"""The shared argument validators of ``ssmbook``: one small set used by every module.

Each validator takes the value and the argument's name, raises a ``ValueError`` (a wrong value,
shape, range or device) or a ``TypeError`` (a wrong kind of object or dtype) whose message names
the argument and says what was expected, and returns the value in its checked form.  Public
functions call them at their entry, so a misuse is reported where the user made it.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = []  # private helpers: no public API here


class ArgumentTypeError(TypeError, ValueError):
    """A wrong kind of object or dtype: a ``TypeError``, and also a ``ValueError`` so that code
    that catches ``ValueError`` for every bad argument keeps working."""


def describe(x) -> str:
    """A short description of ``x`` for error messages: shape, dtype and device of an array."""
    shape = getattr(x, "shape", None)
    if shape is None:
        return f"{type(x).__name__} {x!r}" if isinstance(x, (numbers.Number, str)) else type(x).__name__
    text = f"shape {tuple(shape)}, dtype {x.dtype}"
    device = getattr(x, "device", None)
    if device is not None and not isinstance(x, np.ndarray):
        text += f", device {device}"
    return text


# ------------------------------------------------------------------------------------ scalars
def positive_int(value, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (bool and floats rejected)."""
    kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    upper = f" <= {maximum}" if maximum is not None else ""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{name} must be {kind}{upper}, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {kind}{upper}, got {value}")
    return value


def real_scalar(value, name: str, *, low=None, high=None, low_open: bool = False,
                high_open: bool = False) -> float:
    """``value`` as a finite float in the given range (``low_open``: strict lower bound)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if hasattr(value, "ndim") and getattr(value, "ndim", 1) == 0 and hasattr(value, "item"):
        value = value.item()                                  # a 0-dim torch tensor
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
    hi = "" if high is None else (f"< {high}" if high_open else f"<= {high}")
    want = " and ".join(s for s in (lo, hi) if s)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number{f' ({want})' if want else ''}, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {want}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {want}, got {value}")
    return value


def probability(value, name: str) -> float:
    """A probability: a real number in [0, 1]."""
    value = real_scalar(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return value


def positive_scalar(value, name: str) -> float:
    """A positive finite real number (a step size, a rate)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a positive finite scalar, got {describe(value)}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite scalar, got {value}")
    return value


def one_of(value, name: str, choices) -> object:
    """``value`` must be one of ``choices``."""
    if not isinstance(value, str if all(isinstance(c, str) for c in choices) else object) \
            or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def sizes(value, name: str, *, allow_symbols: bool = True):
    """A non-negative size (int, an array of ints, or a sympy expression when ``allow_symbols``)."""
    if allow_symbols and type(value).__module__.startswith("sympy"):
        return value
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise ArgumentTypeError(f"{name} must be a non-negative int (or array of ints), got {describe(value)}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ValueError(f"{name} must be a non-negative integer count, got {value!r}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative (a size or count), got {value!r}")
    return value


# ------------------------------------------------------------------------------------ numpy
def array(x, name: str, *, ndim=None, shape=None, shape_doc: str | None = None, complex_ok: bool = False,
          finite: bool = True, allow_neg_inf: bool = False, min_size: int = 1) -> np.ndarray:
    """``x`` as a float64 (or complex128) ndarray; NaN (and ±inf unless allowed) rejected.

    ``ndim``: the allowed rank (an int or a tuple of ints); ``shape``: the exact shape;
    ``shape_doc``: how the messages write the expected shape (e.g. ``"(N, N)"``); ``min_size``:
    the fewest entries (0 allows an empty array).
    """
    doc = f" of shape {shape_doc}" if shape_doc else ""
    if hasattr(x, "detach") and hasattr(x, "numpy"):
        raise ArgumentTypeError(f"{name} must be a NumPy array{doc} (float64), got a torch.Tensor")
    try:
        arr = np.asarray(x)
    except Exception:                                         # ragged lists and the like
        raise ArgumentTypeError(f"{name} must be a numeric array{doc}, got {type(x).__name__}") from None
    kinds = "biuf" + ("c" if complex_ok else "")
    if arr.dtype == np.bool_ or arr.dtype.kind not in kinds:
        want = "a real or complex" if complex_ok else "a real (float64)"
        raise ArgumentTypeError(f"{name} must be {want} array{doc}, got dtype {arr.dtype}")
    arr = arr.astype(np.complex128 if arr.dtype.kind == "c" else np.float64)
    if ndim is not None:
        allowed = ndim if isinstance(ndim, tuple) else (ndim,)
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must have shape {shape_doc or f'with {ndim} dims'}, "
                             f"got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {shape_doc or tuple(shape)}, got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(f"{name} must not be empty (shape {shape_doc or '...'}), got shape {arr.shape}")
    if finite or np.isnan(arr).any():
        bad = ~np.isfinite(arr) if finite else np.isnan(arr)
        if allow_neg_inf:
            bad &= ~(np.isneginf(arr.real) if arr.dtype.kind == "c" else np.isneginf(arr))
        if bad.any():
            allowed_text = " (-inf, a log of 0, is allowed)" if allow_neg_inf else ""
            raise ValueError(f"{name} must contain only finite values{allowed_text}, got NaN or inf")
    return arr


def square_matrix(x, name: str, *, shape_doc: str = "(N, N)", complex_ok: bool = False,
                  finite: bool = True, min_size: int = 1) -> np.ndarray:
    """``x`` as a square float64 (or complex128) matrix; a wrong rank or a non-square shape gets
    one message, "<name> must be a square matrix of shape (N, N)"."""
    arr = array(x, name, shape_doc=shape_doc, complex_ok=complex_ok, finite=finite, min_size=0)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.size < min_size:
        least = " with N >= 1" if min_size > 0 and arr.ndim == 2 and arr.size == 0 else ""
        raise ValueError(f"{name} must be a square matrix of shape {shape_doc}{least}, got shape {arr.shape}")
    return arr


def vector_or_matrix(x, name: str, n: int, *, axis: int = 0, shape_doc: str | None = None,
                     complex_ok: bool = False) -> np.ndarray:
    """``x`` as a 1-D ``(n,)`` or 2-D float64 (or complex128) array whose axis ``axis`` (0: rows,
    -1: columns) has size ``n``: an input matrix ``B (N, M)`` or an output matrix ``C (P, N)``."""
    if shape_doc is None:
        shape_doc = f"(N,) or (N, M) with N = {n}" if axis == 0 else f"(N,) or (P, N) with N = {n}"
    arr = array(x, name, ndim=(1, 2), shape_doc=shape_doc, complex_ok=complex_ok, min_size=0)
    if arr.shape[axis] != n:
        raise ValueError(f"{name} must have shape {shape_doc}, got shape {arr.shape}")
    return arr


def sympy_square_matrix(A, name: str):
    """``A`` must be a square sympy Matrix (the symbolic derivations)."""
    if not getattr(A, "is_Matrix", False) or not type(A).__module__.startswith("sympy"):
        raise ArgumentTypeError(f"{name} must be a square sympy Matrix, got {type(A).__name__}")
    if A.rows != A.cols:
        raise ValueError(f"{name} must be a square sympy Matrix, got shape {A.shape}")
    return A


def time_grid(t, name: str = "t", *, increasing: bool = False) -> np.ndarray:
    """Times as a non-empty finite 1-D float64 array (strictly increasing when ``increasing``)."""
    arr = array(t, name, shape_doc="(L,)", min_size=0)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of times, shape (L,), got shape {arr.shape}")
    if increasing and np.any(np.diff(arr) <= 0):
        where = int(np.argmax(np.diff(arr) <= 0))
        raise ValueError(f"{name} must be strictly increasing (a time grid), got {name}[{where}] = "
                         f"{arr[where]!r} followed by {arr[where + 1]!r}")
    return arr


#: How far from 1 the sum of a probability vector may be (rounding in the caller's arithmetic).
PROB_ATOL = 1e-8


def probabilities(arr: np.ndarray, name: str, what: str, *, atol: float = PROB_ATOL) -> np.ndarray:
    """Each row of the float array ``arr`` (``arr`` itself, if 1-D) must be a probability vector:
    non-negative entries that sum to 1 within ``atol``.  ``what`` says what a row means."""
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative ({what}), got a negative entry {arr.min():.3g}")
    sums = np.atleast_1d(arr.sum(axis=-1))
    bad = np.abs(sums - 1.0) > atol
    if np.any(bad):
        where = "" if arr.ndim == 1 else f" (row {int(np.argmax(bad))})"
        raise ValueError(f"{name} must sum to 1 ({what}){where}, got sum {float(sums[np.argmax(bad)])!r}")
    return arr


def probability_vector(x, name: str, n: int, *, what: str = "a probability vector") -> np.ndarray:
    """``x`` as a float64 probability vector of shape ``(n,)``."""
    arr = array(x, name, shape=(n,), shape_doc=f"({n},)", min_size=0)
    return probabilities(arr, name, what)


def index_array(x, name: str, n: int, *, what: str = "indices", bound_doc: str = "",
                min_size: int = 1) -> np.ndarray:
    """``x`` as a 1-D int64 array (shape ``(T,)``) of entries in ``[0, n)``.

    ``what`` names the entries in messages ("symbols", "states"); ``bound_doc`` says where ``n``
    comes from (e.g. ``"M = B.shape[1]"``); ``min_size``: the fewest entries.
    """
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of shape (T,), got shape {arr.shape}")
    if arr.shape[0] < min_size:
        raise ValueError(f"{name} must hold at least {min_size} entries (T >= {min_size}), got T = {arr.shape[0]}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ArgumentTypeError(f"{name} must be integers ({what} 0..{n - 1}), got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)][0]
        doc = f" ({bound_doc})" if bound_doc else ""
        raise ValueError(f"{name} must be {what} in [0, {n}){doc}, got {int(bad)}")
    return arr.astype(np.int64)


# ------------------------------------------------------------------------------------ torch
def tensor(x, name: str, *, ndim=None, shape=None, shape_doc: str | None = None, floating: bool = True,
           complex_ok: bool = False, integer: bool = False, like=None, min_sizes=None):
    """``x`` must be a torch tensor of the right kind, rank and (optionally) the dtype/device of ``like``.

    ``ndim``: the allowed rank (an int or a tuple); ``shape``: the exact shape; ``floating``: a
    real floating dtype; ``complex_ok``: complex also allowed; ``integer``: an int64 tensor (token
    ids).  ``min_sizes``: a dict ``{axis: (label, minimum)}`` of sizes that must be at least
    ``minimum`` (e.g. a non-empty batch).
    """
    import torch

    doc = f" of shape {shape_doc}" if shape_doc else ""
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor{doc}, got {type(x).__name__}")
    if integer:
        if x.dtype != torch.int64:
            raise ArgumentTypeError(f"{name} must be an int64 tensor{doc} (token ids), got dtype {x.dtype}")
    elif floating:
        ok = x.is_floating_point() or (complex_ok and x.is_complex())
        if not ok:
            want = "a floating-point or complex" if complex_ok else "a floating-point"
            raise ArgumentTypeError(f"{name} must be {want} tensor{doc}, got dtype {x.dtype}")
    if ndim is not None:
        allowed = ndim if isinstance(ndim, tuple) else (ndim,)
        if x.dim() not in allowed:
            raise ValueError(f"{name} must have shape {shape_doc or f'with {ndim} dims'}, "
                             f"got {describe(x)}")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {shape_doc or tuple(shape)}, got shape {tuple(x.shape)}")
    for axis, (label, minimum) in (min_sizes or {}).items():
        if x.dim() > axis and x.shape[axis] < minimum:
            raise ValueError(f"{name} must have {label} >= {minimum} (shape {shape_doc}), "
                             f"got shape {tuple(x.shape)}")
    if like is not None:
        same_dtype_device(x, name, like)
    return x


def module(x, name: str, doc: str = ""):
    """``x`` must be a ``torch.nn.Module``; ``doc`` says what it maps, e.g. ``" (tokens -> logits)"``."""
    from torch import nn

    if not isinstance(x, nn.Module):
        raise ArgumentTypeError(f"{name} must be a torch.nn.Module{doc}, got {type(x).__name__}")
    return x


def finite(x, name: str, *, allow_neg_inf: bool = False):
    """Every entry of the tensor ``x`` must be finite (``-inf`` too, when ``allow_neg_inf``)."""
    import torch

    bad = torch.isnan(x) if allow_neg_inf else ~torch.isfinite(x)
    if allow_neg_inf:
        bad = bad | torch.isposinf(x)
    if bool(bad.any()):
        allowed = " (-inf is allowed)" if allow_neg_inf else ""
        raise ValueError(f"{name} must contain only finite values{allowed}, got NaN or inf")
    return x


def flag(value, name: str, *, none_ok: bool = False):
    """A bool option (``numpy.bool_`` accepted; ``None`` too when ``none_ok``); anything else, a
    truthy string included, rejected."""
    if none_ok and value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        want = "a bool or None" if none_ok else "a bool"
        raise ArgumentTypeError(f"{name} must be {want}, got {type(value).__name__} {value!r}")
    return bool(value)


def positive_entries(x, name: str, what: str = "") -> None:
    """Every entry of the real tensor ``x`` must be positive and finite (``what``: what it is)."""
    import torch

    bad = ~(torch.isfinite(x) & (x > 0))
    if bool(bad.any()):
        doc = f" ({what})" if what else ""
        raise ValueError(f"{name} must be positive and finite{doc}, got {x.detach()[bad].flatten()[0].item()}")


def same_device(x, name: str, like, what: str) -> None:
    """The tensor ``x`` must be on the device of the tensor ``like`` (``what`` names it)."""
    if x.device != like.device:
        raise ValueError(f"{name} must be on the device of {what} ({like.device}), got {x.device}")


def same_dtype_device(x, name: str, like, what: str = "the model's parameters") -> None:
    """``x`` must share ``like``'s device and floating dtype."""
    same_device(x, name, like, what)
    if (x.is_floating_point() or x.is_complex()) and x.dtype != like.dtype:
        raise ArgumentTypeError(f"{name} must have the dtype of {what} ({like.dtype}), got {x.dtype}")


def same_layout(x, name: str, like, like_name: str, *, shape_doc: str | None = None):
    """``x`` must be a tensor of the shape, dtype and device of the tensor ``like`` (the argument
    ``like_name``): the second operand of an elementwise recurrence, say."""
    doc = f"{shape_doc} = {tuple(like.shape)}" if shape_doc else f"{tuple(like.shape)}"
    tensor(x, name, shape_doc=doc, complex_ok=True)
    if x.shape != like.shape:
        raise ValueError(f"{name} must have the shape of {like_name} {doc}, got {tuple(x.shape)}")
    same_dtype_device(x, name, like, what=like_name)
    return x


def module_input(x, name: str, module, *, ndim: int, shape_doc: str, last: int | None = None,
                 axis_sizes=None):
    """A floating input of a ``nn.Module``: rank, non-empty axes, last-axis size, and the dtype
    and device of the module's first parameter."""
    tensor(x, name, ndim=ndim, shape_doc=shape_doc)
    if last is not None and x.shape[-1] != last:
        raise ValueError(f"{name} must have shape {shape_doc}, got {describe(x)}")
    for axis, size in (axis_sizes or {}).items():
        if x.shape[axis] != size:
            raise ValueError(f"{name} must have shape {shape_doc}, got {describe(x)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty (shape {shape_doc}), got shape {tuple(x.shape)}")
    param = next(module.parameters(), None)
    if param is not None:
        same_dtype_device(x, name, param)
    return x


def token_ids(tokens, name: str, vocab: int, *, ndim: int, shape_doc: str, device=None):
    """int64 token ids of rank ``ndim``, non-empty, each in ``[0, vocab)``, on ``device``.

    The range is read with one device-to-host copy (both ends at once). While a CUDA graph is
    being captured on the current stream no value can be read, so only the rank, dtype, size and
    device are checked then: a captured decoding step (``torch.cuda.graph``) must still work."""
    import torch

    tensor(tokens, name, ndim=ndim, shape_doc=shape_doc, integer=True)
    if tokens.numel() == 0:
        raise ValueError(f"{name} must not be empty (shape {shape_doc}), got shape {tuple(tokens.shape)}")
    if device is not None and tokens.device != device:
        raise ValueError(f"{name} must be on the model's device ({device}), got {tokens.device}")
    if tokens.is_cuda and torch.cuda.is_current_stream_capturing():
        return tokens
    lo, hi = (int(v) for v in torch.stack(torch.aminmax(tokens)).tolist())
    if lo < 0 or hi >= vocab:
        raise ValueError(f"{name} must hold token ids in [0, vocab_size={vocab}), got range [{lo}, {hi}]")
    return tokens


def state_batch(state_shape, batch: int, name: str, expected) -> None:
    """A carried state must have been built for this batch size and these sizes."""
    if tuple(state_shape) != tuple(expected):
        hint = ""
        if len(state_shape) == len(expected) and state_shape[0] != batch \
                and tuple(state_shape[1:]) == tuple(expected[1:]):
            hint = f" (it was built for batch {state_shape[0]}, the input has batch {batch})"
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(state_shape)}{hint}")



# ------------------------------------------------------------------------------------ selective scan
#: The largest state size N of the selective scan (the Triton kernels hold a channel's whole state
#: in one program).
SELECTIVE_MAX_STATE = 256


def selective_scan_inputs(u, delta, A, B, C, D=None, z=None, delta_bias=None):
    """Validate the arguments of a selective scan (``ssmbook.selective.selective_scan`` and the
    Triton kernels of ``ssmbook.kernels``); raise ``ValueError`` naming the culprit.

    Returns ``(batch, dim, L, N, groups)``, with ``groups = 0`` for the shared layout
    ``(batch, N, L)`` of B and C.
    """
    import torch

    floats = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    named = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    for name, t in named.items():
        if t is None and name in ("D", "z", "delta_bias"):
            continue
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in floats:
            raise ValueError(
                f"{name} must have a real floating dtype (float16, bfloat16, float32 or float64), "
                f"got {t.dtype}"
            )
    if u.dim() != 3:
        raise ValueError(f"u must have shape (batch, dim, L), got {describe(u)}")
    batch, dim, L = u.shape
    if batch < 1 or dim < 1 or L < 1:
        raise ValueError(f"u must have batch, dim and L all ≥ 1, got shape {tuple(u.shape)}")
    # the first argument's layout first: A fixes dim, so u given as (batch, L, dim) is caught
    # here and reported as u's mistake, not as a mismatch of the arguments checked after it
    if A.dim() == 2 and A.shape[0] != dim and u.shape[2] == A.shape[0]:
        raise ValueError(
            f"u must have shape (batch, dim, L) with dim = A.shape[0] = {A.shape[0]}, got shape "
            f"{tuple(u.shape)}: it looks like (batch, L, dim); pass u.transpose(1, 2)")
    for name in ("delta", "z"):
        t = named[name]
        if t is not None and tuple(t.shape) != (batch, dim, L):
            raise ValueError(
                f"{name} must have shape (batch, dim, L) = {(batch, dim, L)}, got {describe(t)}")
        if t is not None and t.dtype != u.dtype:
            raise ValueError(f"{name} must have the dtype of u ({u.dtype}), got {t.dtype}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must have shape (dim, N) = ({dim}, N), got {describe(A)}")
    N = A.shape[1]
    if not 1 <= N <= SELECTIVE_MAX_STATE:
        raise ValueError(f"A must have shape (dim, N) with 1 ≤ N ≤ {SELECTIVE_MAX_STATE}, got N = {N}")
    for name in ("B", "C"):
        t = named[name]
        if t.dim() not in (3, 4):
            raise ValueError(f"{name} must have shape (batch, N, L) or (batch, groups, N, L), got {describe(t)}")
        if t.dim() == 4 and (t.shape[1] < 1 or dim % t.shape[1] != 0):
            raise ValueError(f"{name} must have groups dividing dim = {dim}, got shape {tuple(t.shape)}")
        expected = (batch, N, L) if t.dim() == 3 else (batch, t.shape[1], N, L)
        if tuple(t.shape) != expected:
            layout = "(batch, N, L)" if t.dim() == 3 else "(batch, groups, N, L)"
            hint = ""
            if t.shape[-2:] == (L, N) and L != N:
                hint = f"; it looks like {layout[:-5]}L, N); pass {name}.transpose(-1, -2)"
            raise ValueError(f"{name} must have shape {layout} = {expected}, got {describe(t)}{hint}")
    if B.shape != C.shape:
        raise ValueError(f"C must have the shape of B {tuple(B.shape)}, got {describe(C)}")
    groups = 0 if B.dim() == 3 else B.shape[1]
    for name in ("D", "delta_bias"):
        t = named[name]
        if t is not None and tuple(t.shape) != (dim,):
            raise ValueError(f"{name} must have shape (dim,) = ({dim},), got {describe(t)}")
    for name, t in named.items():
        if t is not None and t.device != u.device:
            raise ValueError(f"{name} must be on the device of u ({u.device}), got {t.device}")
    return batch, dim, L, N, groups
