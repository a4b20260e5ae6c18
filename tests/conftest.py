"""Shared pytest setup.

Triton only runs on a CPU through its interpreter, which must be switched on before triton is
imported: importing ssmbook.kernels here, first, does it when there is no CUDA device (the switch
is ``ssmbook.kernels.use_interpreter_without_cuda``, written once, in the package).
"""
import os
import pathlib
import sys

# the book-layout helpers shared with scripts/ (scripts/book_layout.py)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))

os.environ.setdefault("MPLBACKEND", "Agg")
try:
    import torch

    _has_cuda = torch.cuda.is_available()
    # Under pytest-xdist every worker would start one torch thread per core: with 16 workers on 16
    # cores the float64 oracles of the long GPU tests then crawl. Share the cores out instead.
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if _workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))
except Exception:  # pragma: no cover
    _has_cuda = False
try:
    import ssmbook.kernels  # noqa: F401  (switches on the Triton interpreter without CUDA)
except ModuleNotFoundError as err:  # pragma: no cover - triton is not installed: nothing to switch
    if err.name != "triton":
        raise

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not _has_cuda:
            item.add_marker(skip_gpu)
