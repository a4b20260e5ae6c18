"""SSD: recurrence (loop oracle), masked attention and the chunked algorithm agree; the Mamba-2 block."""
import pytest
import torch

from ssmbook.selective import selective_scan_ref
from ssmbook.ssd import (Mamba2Block, Mamba2LM, segsum, ssd, ssd_flops, ssd_quadratic, ssd_ref)

F64 = torch.float64


def inputs(b, L, h, p, n, seed=0, scale=1.0, dtype=F64, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(b, L, h, p, generator=g, dtype=dtype)
    A = -scale * torch.rand(b, L, h, generator=g, dtype=dtype)
    B = torch.randn(b, L, h, n, generator=g, dtype=dtype)
    C = torch.randn(b, L, h, n, generator=g, dtype=dtype)
    H0 = torch.randn(b, h, p, n, generator=g, dtype=dtype)
    ts = [X, A, B, C, H0]
    if requires_grad:
        for t in ts:
            t.requires_grad_(True)
    return ts


SIZES = [(1, 1, 1, 1, 1, 4), (2, 37, 3, 5, 7, 8), (2, 16, 2, 3, 4, 16), (1, 70, 2, 4, 3, 64),
         (3, 9, 1, 2, 5, 1), (1, 65, 1, 3, 1, 64)]


@pytest.mark.parametrize("b,L,h,p,n,chunk", SIZES)
@pytest.mark.parametrize("with_state", [False, True])
def test_three_forms_agree(b, L, h, p, n, chunk, with_state):
    X, A, B, C, H0 = inputs(b, L, h, p, n, seed=L + n)
    H0 = H0 if with_state else None
    y_ref, s_ref = ssd_ref(X, A, B, C, H0, return_final_state=True)
    y_q, s_q = ssd_quadratic(X, A, B, C, H0, return_final_state=True)
    y_c, s_c = ssd(X, A, B, C, chunk=chunk, initial_state=H0, return_final_state=True)
    for y, s in ((y_q, s_q), (y_c, s_c)):
        torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
        torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-10)


def test_ref_is_the_recurrence_written_out():
    # y_1 = C_1ᵀ(exp(A_1) x_0 B_0ᵀ + x_1 B_1ᵀ)ᵀ, by hand for one head
    X, A, B, C, _ = inputs(1, 2, 1, 2, 3, seed=5)
    H1 = torch.exp(A[0, 1, 0]) * torch.outer(X[0, 0, 0], B[0, 0, 0]) + torch.outer(X[0, 1, 0], B[0, 1, 0])
    torch.testing.assert_close(ssd_ref(X, A, B, C)[0, 1, 0], H1 @ C[0, 1, 0])


@pytest.mark.parametrize("scale", [0.0, 1e-8, 30.0, 800.0])
def test_extreme_decays(scale):
    X, A, B, C, H0 = inputs(2, 29, 2, 3, 4, seed=3, scale=scale)
    if scale == 800.0:
        A[:, ::3] = 0.0                                  # mix of no decay and total forgetting
    ref = ssd_ref(X, A, B, C, H0)
    out = ssd(X, A, B, C, chunk=8, initial_state=H0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(ssd_quadratic(X, A, B, C, H0), ref, rtol=0, atol=1e-10)


def test_segsum():
    A = torch.randn(6, dtype=F64)
    S = segsum(A)
    for t in range(6):
        for s in range(6):
            want = A[s + 1:t + 1].sum() if s <= t else torch.tensor(-torch.inf, dtype=F64)
            assert S[t, s] == want or torch.isclose(S[t, s], want, rtol=0, atol=1e-14)


def test_one_head_scalar_A_is_the_selective_scan():
    g = torch.Generator().manual_seed(1)
    b, d, L, N = 2, 5, 23, 4
    u = torch.randn(b, d, L, generator=g, dtype=F64)
    delta = torch.rand(b, 1, L, generator=g, dtype=F64).expand(b, d, L) + 0.05   # one Δ for the head
    a = -torch.rand((), generator=g, dtype=F64) - 0.1
    Bm, Cm = torch.randn(2, b, N, L, generator=g, dtype=F64)
    y_sel = selective_scan_ref(u, delta, a.expand(d, N), Bm, Cm)
    X = (delta * u).transpose(1, 2)[:, :, None, :]                    # (b, L, 1, d)
    A = (delta[:, 0] * a)[:, :, None]                                  # (b, L, 1)
    y_ssd = ssd(X, A, Bm.transpose(1, 2)[:, :, None], Cm.transpose(1, 2)[:, :, None], chunk=8)
    torch.testing.assert_close(y_ssd[:, :, 0].transpose(1, 2), y_sel, rtol=0, atol=1e-10)


@pytest.mark.parametrize("chunk", [4, 7, 64])
def test_gradients_entry_by_entry(chunk):
    ts = inputs(2, 19, 2, 3, 5, seed=7, requires_grad=True)
    g = torch.Generator().manual_seed(8)
    w_y = torch.randn(2, 19, 2, 3, generator=g, dtype=F64)
    w_s = torch.randn(2, 2, 3, 5, generator=g, dtype=F64)
    grads = []
    for fn in (lambda *a: ssd_ref(*a[:4], a[4], return_final_state=True),
               lambda *a: ssd(*a[:4], chunk=chunk, initial_state=a[4], return_final_state=True)):
        y, s = fn(*ts)
        grads.append(torch.autograd.grad((y * w_y).sum() + (s * w_s).sum(), ts))
    for name, ga, gb in zip("XABCH", *grads):
        torch.testing.assert_close(gb, ga, rtol=1e-9, atol=1e-10, msg=f"gradient of {name}")


def test_float32_close_to_oracle():
    X, A, B, C, H0 = inputs(2, 50, 2, 4, 8, seed=11, dtype=torch.float32)
    torch.testing.assert_close(ssd(X, A, B, C, chunk=16, initial_state=H0),
                               ssd_ref(X, A, B, C, H0), rtol=1e-4, atol=1e-4)


def test_bad_inputs_name_the_argument():
    X, A, B, C, H0 = inputs(1, 5, 2, 3, 4)
    with pytest.raises(TypeError, match="X"):
        ssd(X.numpy(), A, B, C)
    with pytest.raises(ValueError, match="X must have shape"):
        ssd(X[0], A, B, C)
    with pytest.raises(ValueError, match="A must have shape"):
        ssd(X, A[:, :4], B, C)
    with pytest.raises(ValueError, match="B must have shape"):
        ssd(X, A, B[:, :, :1], C)
    with pytest.raises(ValueError, match="C must have shape"):
        ssd(X, A, B, C[..., :3])
    with pytest.raises(TypeError, match="C must have X's dtype"):
        ssd(X, A, B, C.float())
    with pytest.raises(TypeError, match="A must be a floating"):
        ssd(X, A.long(), B, C)
    with pytest.raises(ValueError, match="A must be <= 0"):
        ssd(X, -A + 0.1, B, C)
    with pytest.raises(ValueError, match="initial_state must have shape"):
        ssd(X, A, B, C, initial_state=H0[:, :1])
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        ssd(X, A, B, C, chunk=0)
    with pytest.raises(ValueError, match="chunk"):
        ssd_flops(10, 1, 1, 1, 0)


def test_flops_counts():
    f = ssd_flops(1024, 1, 64, 64, 64)
    assert f["quadratic"] == 2 * 1024 ** 2 * 64 + 1024 ** 2 + 2 * 1024 ** 2 * 64
    assert f["chunked_scan"] == 16 * 2 * 64 * 64
    assert f["chunked_matmul"] < f["quadratic"] / 5
    # doubling L doubles the chunked work and quadruples the quadratic work
    g = ssd_flops(2048, 1, 64, 64, 64)
    assert g["chunked_matmul"] == 2 * f["chunked_matmul"] and g["quadratic"] > 3.9 * f["quadratic"]


@pytest.mark.parametrize("L,chunk", [(1, 4), (13, 4), (16, 16)])
def test_mamba2_step_equals_full(L, chunk):
    torch.manual_seed(0)
    blk = Mamba2Block(6, d_state=5, head_dim=3, chunk=chunk).double()
    u = torch.randn(2, L, 6, dtype=F64)
    full = blk(u)
    state, outs = blk.allocate_state(2), []
    for t in range(L):
        y, state = blk.step(u[:, t], state)
        outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-10, atol=1e-12)


def test_mamba2_block_checks_and_learns_shape():
    with pytest.raises(ValueError, match="head_dim"):
        Mamba2Block(6, head_dim=5)
    blk = Mamba2Block(8, head_dim=4)
    with pytest.raises(ValueError, match="u must have shape"):
        blk(torch.randn(2, 3, 7))
    with pytest.raises(TypeError, match="state"):
        blk.step(torch.randn(2, 8), None)
    lm = Mamba2LM(10, 8, 2, d_state=4, head_dim=4)
    out = lm(torch.randint(0, 10, (2, 5)))
    assert out.shape == (2, 5, 10)
    with pytest.raises(ValueError, match="vocab_size"):
        lm(torch.full((1, 3), 10))
