"""ssmbook.selective: the loop oracle, the torch path, and argument validation."""
import math
import random

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import ssmbook.selective as sel
from ssmbook.selective import random_inputs, selective_scan, selective_scan_ref

GRAD_NAMES = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]


def rel_err(actual, expected):
    diff = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    return diff / scale if scale > 0 else diff


def scalar_oracle(kw):
    """The recurrence in plain Python floats, one number at a time: independent of torch's
    broadcasting, so it checks the oracle itself (groups, gate, skip, bias, softplus)."""
    u, delta, A, B, C = (kw[k].double().tolist() for k in ("u", "delta", "A", "B", "C"))
    D = kw["D"].tolist() if kw["D"] is not None else None
    z = kw["z"].tolist() if kw["z"] is not None else None
    bias = kw["delta_bias"].tolist() if kw["delta_bias"] is not None else None
    batch, dim, L = kw["u"].shape
    N = kw["A"].shape[1]
    grouped = kw["B"].dim() == 4
    per_group = dim // kw["B"].shape[1] if grouped else dim
    out = [[[0.0] * L for _ in range(dim)] for _ in range(batch)]
    last = [[[0.0] * N for _ in range(dim)] for _ in range(batch)]
    for b in range(batch):
        for d in range(dim):
            Bd = B[b][d // per_group] if grouped else B[b]
            Cd = C[b][d // per_group] if grouped else C[b]
            h = [0.0] * N
            for t in range(L):
                x = delta[b][d][t] + (bias[d] if bias else 0.0)
                dt = (x if x > 20 else math.log1p(math.exp(x))) if kw["delta_softplus"] else x
                h = [math.exp(dt * A[d][n]) * h[n] + dt * Bd[n][t] * u[b][d][t] for n in range(N)]
                y = sum(Cd[n][t] * h[n] for n in range(N)) + (D[d] * u[b][d][t] if D else 0.0)
                if z:
                    y *= z[b][d][t] / (1.0 + math.exp(-z[b][d][t]))
                out[b][d][t] = y
            last[b][d] = h
    return torch.tensor(out, dtype=torch.float64), torch.tensor(last, dtype=torch.float64)


OPTIONS = [dict(D=True, z=True, delta_bias=True, delta_softplus=True),
           dict(D=False, z=False, delta_bias=False, delta_softplus=False),
           dict(D=True, z=False, delta_bias=True, delta_softplus=False),
           dict(D=False, z=True, delta_bias=False, delta_softplus=True)]


@pytest.mark.parametrize("opts", OPTIONS, ids=str)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 0), (2, 3, 5, 3, 0), (2, 4, 6, 2, 2), (1, 3, 4, 5, 3)],
                         ids=str)
def test_oracle_matches_scalar_loop(shape, opts):
    kw = random_inputs(*shape, dtype=torch.float64, seed=random.randrange(2**31), **opts)
    out, last = selective_scan_ref(**kw, return_last_state=True)
    out_s, last_s = scalar_oracle(kw)
    torch.testing.assert_close(out, out_s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last, last_s, rtol=1e-12, atol=1e-12)


def test_theorem1_gated_recurrence():
    # Mamba paper, Theorem 1: with N = 1, A = −1, B = 1, Δ = softplus(x) and zero-order hold for B,
    # the scan is the gate h_t = (1 − g_t) h_{t−1} + g_t u_t with g_t = σ(x_t), because
    # exp(−softplus(x)) = 1 − σ(x). The official kernel (and ours) discretises B by Euler (B̄ = ΔB),
    # so choose the input-dependent B_t = (1 − e^{−Δ_t}) / Δ_t, which makes Δ_t B_t the ZOH value.
    g = torch.Generator().manual_seed(random.randrange(2**31))
    x = torch.randn(1, 1, 50, generator=g, dtype=torch.float64)
    u = torch.randn(1, 1, 50, generator=g, dtype=torch.float64)
    dt = F.softplus(x)
    B = (-torch.expm1(-dt)) / dt                       # (1, 1, 50) = (batch, N, L)
    out = selective_scan_ref(u, x, -torch.ones(1, 1, dtype=torch.float64), B,
                             torch.ones(1, 1, 50, dtype=torch.float64), delta_softplus=True)
    gate = torch.sigmoid(x)[0, 0]
    h, expected = torch.zeros((), dtype=torch.float64), []
    for t in range(50):
        h = (1 - gate[t]) * h + gate[t] * u[0, 0, t]
        expected.append(h)
    torch.testing.assert_close(out[0, 0], torch.stack(expected), rtol=1e-12, atol=1e-12)


def test_groups_equal_shared_scans_of_channel_slices():
    kw = random_inputs(2, 6, 9, 4, groups=3, dtype=torch.float64, seed=random.randrange(2**31))
    out = selective_scan_ref(**kw)
    for gi in range(3):
        ch = slice(2 * gi, 2 * gi + 2)
        part = dict(kw, u=kw["u"][:, ch], delta=kw["delta"][:, ch], A=kw["A"][ch], B=kw["B"][:, gi],
                    C=kw["C"][:, gi], D=kw["D"][ch], z=kw["z"][:, ch], delta_bias=kw["delta_bias"][ch])
        torch.testing.assert_close(out[:, ch], selective_scan_ref(**part), rtol=0, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), dim=st.integers(1, 5), L=st.integers(1, 150), N=st.integers(1, 9),
       groups=st.sampled_from([0, 1, "dim"]), opts=st.sampled_from(OPTIONS),
       seed=st.integers(0, 2**31 - 1))
def test_torch_path_matches_oracle_float64(batch, dim, L, N, groups, opts, seed):
    G = dim if groups == "dim" else groups
    kw = random_inputs(batch, dim, L, N, G, dtype=torch.float64, seed=seed, **opts)
    names = [n for n in GRAD_NAMES if kw[n] is not None]
    for n in names:
        kw[n].requires_grad_(True)
    out, last = selective_scan(**kw, return_last_state=True, backend="torch")
    ref, ref_last = selective_scan_ref(**kw, return_last_state=True)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(last, ref_last, rtol=1e-10, atol=1e-12)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    grads = torch.autograd.grad(out, [kw[n] for n in names], g)
    grads_ref = torch.autograd.grad(ref, [kw[n] for n in names], g)
    for n, a, b in zip(names, grads, grads_ref):
        assert rel_err(a, b) <= 1e-10, n


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 1e-2),
                                       (torch.bfloat16, 1e-2)], ids=str)
def test_torch_path_low_precision(dtype, tol):
    seed = random.randrange(2**31)
    kw = random_inputs(2, 5, 70, 7, groups=5, dtype=dtype, seed=seed)
    out, last = selective_scan(**kw, return_last_state=True, backend="torch")
    assert out.dtype == dtype and last.dtype == torch.float32
    kw64 = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    ref, ref_last = selective_scan_ref(**kw64, return_last_state=True)
    assert rel_err(out, ref) <= tol, f"seed {seed}"
    assert rel_err(last, ref_last) <= tol, f"seed {seed}"


def test_auto_backend_is_torch_on_cpu_and_ref_backend():
    kw = random_inputs(1, 3, 20, 4, seed=random.randrange(2**31))
    torch.testing.assert_close(selective_scan(**kw), selective_scan(**kw, backend="torch"),
                               rtol=0, atol=0)
    torch.testing.assert_close(selective_scan(**kw, backend="ref"), selective_scan_ref(**kw))


# ---- validation ------------------------------------------------------------------------------

def _good():
    return random_inputs(2, 4, 6, 3, groups=2, seed=0)


@pytest.mark.parametrize("change,message", [
    (dict(u=torch.randn(2, 4)), r"u must have shape \(batch, dim, L\)"),
    (dict(u=torch.randn(2, 4, 0)), r"u must have batch, dim and L all ≥ 1"),
    (dict(delta=torch.randn(2, 4, 5)), r"delta must have shape \(batch, dim, L\) = \(2, 4, 6\)"),
    (dict(z=torch.randn(1, 4, 6)), r"z must have shape \(batch, dim, L\) = \(2, 4, 6\)"),
    (dict(delta=torch.randn(2, 4, 6, dtype=torch.float64)), r"delta must have the dtype of u"),
    (dict(A=torch.randn(3, 3)), r"A must have shape \(dim, N\) = \(4, N\)"),
    (dict(A=torch.randn(4, 3, dtype=torch.complex64)), r"A must have a real floating dtype"),
    (dict(u=torch.randn(2, 4, 6).to(torch.int32)), r"u must have a real floating dtype"),
    (dict(B=torch.randn(2, 3, 3, 6)), r"B must have groups dividing dim = 4"),
    (dict(B=torch.randn(2, 4, 3, 6)), r"C must have the shape of B"),
    (dict(B=torch.randn(2, 3, 3, 6), C=torch.randn(2, 3, 3, 6)), r"B must have groups dividing dim = 4"),
    (dict(B=torch.randn(2, 2, 4, 6), C=torch.randn(2, 2, 4, 6)),
     r"B must have shape \(batch, groups, N, L\) = \(2, 2, 3, 6\)"),
    (dict(B=torch.randn(2, 3, 5), C=torch.randn(2, 3, 5)),
     r"B must have shape \(batch, N, L\) = \(2, 3, 6\)"),
    (dict(B=torch.randn(6, 3), C=torch.randn(6, 3)), r"B must have shape \(batch, N, L\) or"),
    (dict(D=torch.randn(4, 1)), r"D must have shape \(dim,\) = \(4,\)"),
    (dict(delta_bias=torch.randn(3)), r"delta_bias must have shape \(dim,\) = \(4,\)"),
    (dict(A=torch.randn(4, 257)), r"1 ≤ N ≤ 256, got N = 257"),
    (dict(u=[[1.0]]), r"u must be a torch.Tensor, got list"),
    (dict(z=torch.randn(2, 4, 6, device="meta")), r"z must be on the device of u"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_bad_input_raises_value_error_naming_it(change, message):
    kw = {**_good(), **change}
    with pytest.raises(ValueError, match=message):
        selective_scan(**kw, backend="torch")
    with pytest.raises(ValueError, match=message):
        selective_scan_ref(**kw)


def test_bad_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        selective_scan(**_good(), backend="cuda")


def test_imports_go_one_way_mamba_selective_kernels():
    # ssmbook.mamba imports ssmbook.selective, which imports ssmbook.kernels only on the first
    # Triton call; the kernels never import ssmbook.selective (nor ssmbook.mamba).
    import subprocess
    import sys

    def loaded_after(module):
        code = (f"import sys, {module}; print(sorted(m for m in ('ssmbook.selective', "
                "'ssmbook.mamba', 'ssmbook.kernels', 'triton') if m in sys.modules))")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    assert loaded_after("ssmbook.selective") == "['ssmbook.selective']"
    assert not hasattr(sel, "MambaBlock")
    pytest.importorskip("triton")
    assert loaded_after("ssmbook.kernels") == "['ssmbook.kernels', 'triton']"


def test_kernel_config_is_checked_and_reaches_the_triton_kernels():
    kernels = pytest.importorskip("ssmbook.kernels")
    from ssmbook.kernels import targets

    kw = random_inputs(1, 4, 16, 4, seed=0)
    with pytest.raises(TypeError, match="kernel_config must be a ssmbook.kernels.KernelConfig or "
                                        "None, got dict"):
        selective_scan(**kw, backend="triton", kernel_config=dict(forward="loop"))
    for forward, kernel in [("loop", "recurrent_fwd_kernel"), ("chunked", "chunk_fwd_kernel")]:
        log = []                                   # recorded launches: nothing runs
        with targets._recording(log):
            selective_scan(**kw, backend="triton",
                           kernel_config=kernels.KernelConfig(forward=forward, segments=1))
        assert [name for name, *_ in log] == [kernel]
