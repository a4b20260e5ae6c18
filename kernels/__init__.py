"""Triton kernels of ssmbook (installed as ``ssmbook.kernels``).

Triton compiles for GPUs; on a machine without CUDA (a laptop, Colab's CPU runtime) it can still run
a kernel through its *interpreter*, which executes the kernel body with numpy, one program at a time.
The interpreter has to be switched on (``TRITON_INTERPRET=1``) before ``triton`` is first imported,
so we do it here, before importing the kernels, when there is no CUDA device and nobody imported
triton yet. Slow, but exact enough to test the kernels and to read them running.
"""
import os
import sys

if "triton" not in sys.modules:
    try:
        import torch

        _cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        _cuda = False
    if not _cuda:
        os.environ.setdefault("TRITON_INTERPRET", "1")

from .selective_scan import (  # noqa: E402
    SelectiveScanFn,
    choose_blocks,
    gpu_of,
    selective_scan_triton,
    source_sections,
    triton_dtypes,
)

__all__ = ["SelectiveScanFn", "selective_scan_triton", "choose_blocks", "source_sections", "gpu_of",
           "triton_dtypes"]
