"""The toy Triton scan (ssmbook.kernels.toy_scan) against the loop recurrence."""
import pytest
import torch
from ssmbook.kernels.selective_scan.common import interpreting
from ssmbook.kernels.toy_scan import toy_scan

# as in test_selective_scan: the compiled kernel on CUDA, else the interpreter on CPU tensors
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def loop(a, b):
    h, out = torch.zeros(a.shape[0], dtype=torch.float64), []
    for t in range(a.shape[1]):
        h = a[:, t].double() * h + b[:, t].double()
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("rows, L", [(1, 1), (3, 5), (2, 16), (4, 37)])
def test_toy_scan_matches_loop(rows, L):
    g = torch.Generator().manual_seed(L)
    a, b = torch.rand(rows, L, generator=g), torch.randn(rows, L, generator=g)
    h = toy_scan(a.to(DEVICE), b.to(DEVICE))
    assert h.device.type == DEVICE
    torch.testing.assert_close(h.cpu().double(), loop(a, b), rtol=1e-5, atol=1e-6)


def test_toy_scan_bad_inputs():
    with pytest.raises(ValueError, match="float32"):
        toy_scan(torch.ones(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        toy_scan(torch.ones(2, 3), torch.ones(2, 4))


@pytest.mark.skipif(interpreting() or not torch.cuda.is_available(), reason="needs the compiled kernels")
def test_toy_scan_refuses_cpu_tensors_when_compiled():
    with pytest.raises(ValueError, match="CUDA"):
        toy_scan(torch.ones(2, 3), torch.ones(2, 3))
