"""The hand-derived backward pass (ssmbook.adjoint) against autograd through the loop oracle."""
import pytest
import torch

from ssmbook.adjoint import selective_scan_backward
from ssmbook.selective import random_inputs, selective_scan_ref

NAMES = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]


@pytest.mark.parametrize("batch, dim, L, N, groups", [(1, 1, 1, 1, 0), (2, 3, 7, 5, 0),
                                                     (2, 4, 13, 3, 2), (1, 6, 33, 16, 3)])
@pytest.mark.parametrize("softplus", [True, False])
def test_adjoint_matches_autograd_entrywise(batch, dim, L, N, groups, softplus):
    kw = random_inputs(batch, dim, L, N, groups=groups, dtype=torch.float64, seed=L + N,
                       delta_softplus=softplus)
    if not softplus:   # keep δ positive without softplus
        kw["delta"] = kw["delta"].abs() + 0.1
        kw["delta_bias"] = kw["delta_bias"].abs()
    leaves = {k: v.clone().requires_grad_() for k, v in kw.items() if torch.is_tensor(v)}
    args = {**kw, **leaves}
    out = selective_scan_ref(**args)
    gout = torch.randn_like(out)
    auto = torch.autograd.grad(out, [leaves[k] for k in NAMES], gout)
    mine = selective_scan_backward(**kw, gout=gout)
    for name, g in zip(NAMES, auto):
        torch.testing.assert_close(mine[name], g, rtol=1e-10, atol=1e-12, msg=name)


def test_adjoint_optional_arguments_absent():
    kw = random_inputs(2, 3, 9, 4, D=False, z=False, delta_bias=False, dtype=torch.float64, seed=1)
    leaves = {k: v.clone().requires_grad_() for k, v in kw.items() if torch.is_tensor(v)}
    out = selective_scan_ref(**{**kw, **leaves})
    gout = torch.randn_like(out)
    auto = torch.autograd.grad(out, list(leaves.values()), gout)
    mine = selective_scan_backward(**kw, gout=gout)
    for (name, _), g in zip(leaves.items(), auto):
        torch.testing.assert_close(mine[name], g, rtol=1e-10, atol=1e-12, msg=name)
    assert mine["D"] is None and mine["z"] is None and mine["delta_bias"] is None


def test_adjoint_bad_gout():
    kw = random_inputs(1, 2, 5, 3, dtype=torch.float64, seed=0)
    with pytest.raises(ValueError, match="gout"):
        selective_scan_backward(**kw, gout=torch.zeros(1, 2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="gout"):
        selective_scan_backward(**kw, gout=None)
