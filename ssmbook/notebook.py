"""The setup every chapter runs first: device, seeds, figure style.

The chapter's first cell installs ssmbook when it is missing (Colab) and then calls
:func:`setup`.  That cell is stamped into every chapter by ``scripts/sync_setup_cells.py``
from the repository URL in ``_config.yml``.
"""
from __future__ import annotations

import os
import random
import time

import numpy as np


def in_colab() -> bool:
    """True inside Google Colab."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def pick_device(prefer: str | None = None):
    """The torch device a chapter should use: CUDA when present, else CPU.

    ``prefer`` (or the environment variable ``SSMBOOK_DEVICE``) forces one, e.g. ``"cpu"``.
    """
    import torch

    prefer = prefer or os.environ.get("SSMBOOK_DEVICE")
    if prefer:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} requested but CUDA is not available")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    import torch

    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(int(seed))
    np.random.seed(int(seed))
    torch.manual_seed(int(seed))


def describe_device(device) -> str:
    """The setup cell's device line: the device, and which selective-scan path runs on it.

    On CUDA the Triton kernel, with the input dtypes it takes there (no bfloat16 below compute
    capability 8.0, e.g. on Colab's T4); elsewhere the PyTorch path (``backend="auto"``).
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        from .kernels import selective_scan as ks

        name, (major, minor) = ks.gpu_of(device)
        dtypes = ks.triton_dtypes(device)
        names = "/".join(str(d).replace("torch.", "") for d in dtypes)
        note = "" if torch.bfloat16 in dtypes else " (no bfloat16 on this GPU)"
        return f"cuda: {name} (sm_{major}{minor}) — selective scan: Triton kernel, {names}{note}"
    return f"{device.type} — selective scan: PyTorch path"


def _inline_figures() -> None:
    """Inside a Jupyter kernel, draw figures inline even if MPLBACKEND points elsewhere (e.g. Agg)."""
    import sys

    if "ipykernel" in sys.modules:
        import matplotlib

        if "inline" not in matplotlib.get_backend():
            matplotlib.use("module://matplotlib_inline.backend_inline")


def setup(seed: int = 0, device: str | None = None, quiet: bool = False):
    """Pick the device, seed every RNG, set the book's figure style; return the device."""
    import torch

    from ._version import __version__
    from .plot import use_style

    dev = pick_device(device)
    seed_everything(seed)
    _inline_figures()
    use_style()
    if not quiet:
        print(f"ssmbook {__version__} · torch {torch.__version__} · {describe_device(dev)} · seed {seed}")
    return dev


def timed(fn, repeat: int = 3, stat: str = "min"):
    """Call ``fn()`` ``repeat`` times; return ``(seconds, result)``.

    ``seconds`` is the fastest wall-clock time (``stat="min"``: the least disturbed by other work on
    the machine) or the median one (``stat="median"``); ``result`` is what the last call returned,
    so a chapter can time a computation and check its output in one go.  The calls run in the
    caller's thread with no device synchronisation: time CPU work, or synchronise inside ``fn``.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable with no arguments, got {type(fn).__name__}")
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        raise ValueError(f"repeat must be a positive int, got {repeat!r}")
    if stat not in ("min", "median"):
        raise ValueError(f"stat must be 'min' or 'median', got {stat!r}")
    times, result = [], None
    for _ in range(int(repeat)):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    seconds = min(times) if stat == "min" else float(np.median(times))
    return seconds, result


def best_time(fn, repeat: int = 3) -> float:
    """The fastest wall-clock time, in seconds, of ``repeat`` calls of ``fn()`` (see :func:`timed`)."""
    return timed(fn, repeat)[0]


def median_time(fn, repeat: int = 3) -> float:
    """The median wall-clock time, in seconds, of ``repeat`` calls of ``fn()`` (see :func:`timed`)."""
    return timed(fn, repeat, stat="median")[0]


def source(obj) -> str:
    """The source code of a function, class, module or ``@triton.jit`` kernel, dedented."""
    import inspect
    import textwrap

    target = getattr(obj, "fn", obj)  # a triton JITFunction keeps the Python function in .fn
    try:
        return textwrap.dedent(inspect.getsource(target))
    except (TypeError, OSError) as exc:
        raise ValueError(f"cannot find the source of {obj!r}: {exc}") from None


def sections(obj) -> list[tuple[str, str]]:
    """Split the source of ``obj`` at its ``# --- title ---`` comment lines.

    Returns ``(title, code)`` pairs in order; the code before the first marker is titled
    ``"signature"``.  Joining the codes gives back the whole source, so a chapter can show a long
    kernel one section at a time, straight from the package.
    """
    parts, title, lines = [], "signature", []
    for line in source(obj).splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("# ---") and stripped.strip("# -"):
            if lines:
                parts.append((title, "".join(lines)))
            title, lines = stripped.strip("# -").strip(), []
        lines.append(line)
    parts.append((title, "".join(lines)))
    return parts


def show(obj, section: str | None = None, lines: tuple[int, int] | None = None):
    """Display library code in a notebook (the book shows code from the package, never a copy).

    This is the one way a chapter shows code.  ``obj`` is a function, class, method, module or
    ``@triton.jit`` kernel.  ``section="title"`` shows only the part of the source under the comment
    line ``# --- title ---`` (see :func:`sections`); ``lines=(first, last)`` shows only that slice
    (1-based, inclusive) of the source.  Returns an IPython Markdown object (displayed when it is a
    cell's last expression).
    """
    from IPython.display import Markdown

    if section is not None and lines is not None:
        raise ValueError("give show() either section= or lines=, not both")
    if section is not None:
        found = dict(sections(obj))
        if section not in found:
            raise ValueError(f"section must be one of {list(found)}, got {section!r}")
        import textwrap

        src = textwrap.dedent(found[section]).rstrip("\n")
    else:
        src = source(obj)
    if lines is not None:
        if (not isinstance(lines, tuple) or len(lines) != 2
                or not all(isinstance(v, int) for v in lines) or not 1 <= lines[0] <= lines[1]):
            raise ValueError(f"lines must be (first, last) with 1 <= first <= last, got {lines!r}")
        first, last = lines
        src = "\n".join(src.splitlines()[first - 1:last])
    fence = "````" if "```" in src else "```"
    return Markdown(f"{fence}python\n{src}\n{fence}")
