"""Triton kernels of ssmbook (installed as ``ssmbook.kernels``): the selective scan and a toy scan.

``selective_scan/`` holds Mamba's selective scan (the chunked and recurrent kernels, the tuning rules
and :class:`KernelConfig`, the autograd function); ``toy_scan`` a first kernel, the first-order
recurrence by a parallel scan; ``targets`` compiles every launch offline for a GPU that is not there.

Triton compiles for GPUs; on a machine without CUDA (a laptop, Colab's CPU runtime) it can still run
a kernel through its *interpreter*, which executes the kernel body with numpy, one program at a time.
The interpreter has to be switched on (``TRITON_INTERPRET=1``) before ``triton`` is first imported,
so this package does it first, before importing the kernels (:func:`use_interpreter_without_cuda`;
tests/conftest.py imports this package for it). Slow, but exact enough to test the kernels and to
read them running.
"""
import os
import sys


def use_interpreter_without_cuda():
    """Switch on Triton's interpreter (``TRITON_INTERPRET=1``, unless already set) when there is no
    CUDA device and triton is not imported yet; afterwards a switch would have no effect. Returns
    whether the interpreter is on."""
    if "triton" not in sys.modules:
        try:
            import torch

            cuda = torch.cuda.is_available()
        except Exception:  # pragma: no cover - torch is a hard dependency
            cuda = False
        if not cuda:
            os.environ.setdefault("TRITON_INTERPRET", "1")
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


use_interpreter_without_cuda()

from .selective_scan import (  # noqa: E402
    KernelConfig,
    SelectiveScanFn,
    choose_blocks,
    gpu_of,
    selective_scan_triton,
    triton_dtypes,
)

__all__ = ["SelectiveScanFn", "selective_scan_triton", "KernelConfig", "choose_blocks", "gpu_of",
           "triton_dtypes", "use_interpreter_without_cuda"]
