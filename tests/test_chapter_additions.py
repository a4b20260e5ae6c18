"""Functions the chapters added to the package: the transfer function and the Kalman filter
(ssmbook.ssm), each against an independent computation on random, awkward sizes."""
import numpy as np
import pytest
import scipy.integrate

from ssmbook.ssm import ContinuousSSM, kalman_filter, spring_mass_damper, transfer_function


def random_stable(rng, N, M=1, P=1):
    V = np.eye(N) + 0.3 * rng.standard_normal((N, N))
    rates = rng.uniform(0.5, 2.0, N)
    A = V @ np.diag(-rates) @ np.linalg.inv(V)
    B = rng.standard_normal(N) if M == 1 else rng.standard_normal((N, M))
    C = rng.standard_normal(N) if P == 1 else rng.standard_normal((P, N))
    return ContinuousSSM(A, B, C)


@pytest.mark.parametrize("N", [1, 2, 3, 5])
def test_transfer_function_is_laplace_transform_of_impulse_response(N):
    rng = np.random.default_rng(N)
    ssm = random_stable(rng, N)
    for s in (0.3, 1.7, 0.5 + 2.0j):
        K = lambda t: ssm.impulse_response(np.array([t]))[0]
        re = scipy.integrate.quad(lambda t: K(t) * np.exp(-s * t).real, 0, 60, limit=400)[0]
        im = scipy.integrate.quad(lambda t: K(t) * np.exp(-s * t).imag, 0, 60, limit=400)[0]
        np.testing.assert_allclose(transfer_function(ssm, s), re + 1j * im, atol=1e-8)


def test_transfer_function_closed_form_spring_and_shapes():
    # m p'' + c p' + k p = x  =>  H(s) = 1 / (m s² + c s + k)
    spring = spring_mass_damper(m=2.0, k=3.0, c=0.5)
    s = np.array([0.1, 1j, -0.2 + 3j, 5.0])
    np.testing.assert_allclose(transfer_function(spring, s), 1 / (2 * s**2 + 0.5 * s + 3), rtol=1e-13)
    assert np.ndim(transfer_function(spring, 1.0)) == 0
    mimo = random_stable(np.random.default_rng(0), 3, M=2, P=4)
    H = transfer_function(mimo, np.array([1.0, 2.0j, 3.0]))
    assert H.shape == (3, 4, 2)
    np.testing.assert_allclose(H[1], mimo.C @ np.linalg.solve(2j * np.eye(3) - mimo.A, mimo.B))


def test_transfer_function_errors():
    spring = spring_mass_damper(c=0.0)           # poles at ±2i
    with pytest.raises(ValueError, match="eigenvalue"):
        transfer_function(spring, 2j)
    with pytest.raises(TypeError, match="ContinuousSSM"):
        transfer_function(np.eye(2), 1.0)
    with pytest.raises(ValueError, match="1-D"):
        transfer_function(spring, np.ones((2, 2)))


def batch_gaussian_filter(F, H, Q, R, obs, m0, P0):
    """p(z_t | o_{1:t}) by conditioning the joint Gaussian of (z_1..z_T, o_1..o_T) directly."""
    T, p = obs.shape
    n = F.shape[0]
    # z_t = F^t z_0 + Σ_{s<=t} F^{t-s} w_s with z_0 ~ N(m0, P0): build the map from (z_0, w_1..w_T)
    G = np.zeros((T * n, (T + 1) * n))
    for t in range(1, T + 1):
        for s in range(0, t + 1):
            G[(t - 1) * n:t * n, s * n:(s + 1) * n] = np.linalg.matrix_power(F, t - s)
    noise_cov = np.zeros(((T + 1) * n, (T + 1) * n))
    noise_cov[:n, :n] = P0
    for s in range(1, T + 1):
        noise_cov[s * n:(s + 1) * n, s * n:(s + 1) * n] = Q
    mean_z = G[:, :n] @ m0
    cov_z = G @ noise_cov @ G.T
    Hb = np.kron(np.eye(T), H)
    cov_o = Hb @ cov_z @ Hb.T + np.kron(np.eye(T), R)
    means, covs = [], []
    for t in range(1, T + 1):
        zi, oi = slice((t - 1) * n, t * n), slice(0, t * p)
        gain = np.linalg.solve(cov_o[oi, oi], (cov_z @ Hb.T)[zi, oi].T).T
        means.append(mean_z[zi] + gain @ (obs[:t].ravel() - (Hb @ mean_z)[oi]))
        covs.append(cov_z[zi, zi] - gain @ (Hb @ cov_z)[oi, zi])
    loglik = -0.5 * (T * p * np.log(2 * np.pi) + np.linalg.slogdet(cov_o)[1]
                     + (obs.ravel() - Hb @ mean_z) @ np.linalg.solve(cov_o, obs.ravel() - Hb @ mean_z))
    return np.array(means), np.array(covs), loglik


@pytest.mark.parametrize("n,p,T", [(1, 1, 1), (1, 1, 7), (2, 1, 5), (3, 2, 6)])
def test_kalman_filter_matches_batch_gaussian_conditioning(n, p, T):
    rng = np.random.default_rng(10 * n + p + T)
    F = 0.8 * np.eye(n) + 0.2 * rng.standard_normal((n, n))
    H = rng.standard_normal((p, n))
    G = rng.standard_normal((n, n))
    Q = G @ G.T / n + 0.1 * np.eye(n)
    R = np.diag(rng.uniform(0.2, 1.0, p))
    m0, P0 = rng.standard_normal(n), np.eye(n) * 0.5
    obs = rng.standard_normal((T, p))
    means, covs, gains, ll = kalman_filter(F, H, Q, R, obs, m0, P0)
    ref_m, ref_P, ref_ll = batch_gaussian_filter(F, H, Q, R, obs, m0, P0)
    np.testing.assert_allclose(means, ref_m, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(covs, ref_P, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ll, ref_ll, rtol=1e-11)
    # the mean is the linear recurrence m_t = (I - K_t H) F m_{t-1} + K_t o_t
    prev = m0
    for t in range(T):
        np.testing.assert_allclose(means[t], (np.eye(n) - gains[t] @ H) @ F @ prev + gains[t] @ obs[t],
                                   rtol=1e-12, atol=1e-12)
        prev = means[t]


def test_kalman_filter_errors():
    eye = np.eye(2)
    with pytest.raises(ValueError, match="F must"):
        kalman_filter(np.ones((2, 3)), np.ones((1, 2)), eye, np.eye(1), np.ones((3, 1)), np.zeros(2), eye)
    with pytest.raises(ValueError, match="R must"):
        kalman_filter(eye, np.ones((1, 2)), eye, eye, np.ones((3, 1)), np.zeros(2), eye)
    with pytest.raises(ValueError, match="obs must"):
        kalman_filter(eye, np.ones((1, 2)), eye, np.eye(1), np.ones((3, 2)), np.zeros(2), eye)


# ----------------------------------------------------------------------------------------------
# chapter 7: the Mamba block with its scan removed
# ----------------------------------------------------------------------------------------------
import torch  # noqa: E402

import ssmbook.mambaout as mo  # noqa: E402


@pytest.mark.parametrize("H,W,dim", [(1, 1, 3), (2, 3, 5), (4, 4, 8)])
def test_no_scan_block_is_mamba_block_with_zero_ssm_output(H, W, dim):
    torch.manual_seed(H * 10 + W)
    full = mo.MambaMixerBlock(dim, d_state=4).double()
    cut = mo.MambaNoScanMixerBlock(dim).double()
    with torch.no_grad():
        cut.norm.load_state_dict(full.norm.state_dict())
        for name in ("in_proj", "conv1d", "out_proj"):
            getattr(cut, name).load_state_dict(getattr(full.mamba, name).state_dict())
        cut.D.copy_(torch.randn(cut.d_inner, dtype=torch.float64))
        full.mamba.D.copy_(cut.D)
        # C = 0: the state never reaches the output, only the skip term D·u of the scan remains
        m = full.mamba
        m.x_proj.weight[m.dt_rank + m.d_state:].zero_()
    x = torch.randn(2, H, W, dim, dtype=torch.float64)
    torch.testing.assert_close(cut(x), full(x), rtol=1e-12, atol=1e-12)
    # and with C ≠ 0 the two differ: the SSM is what was removed
    with torch.no_grad():
        m.x_proj.weight[m.dt_rank + m.d_state:].normal_()
    if H * W > 1:
        assert (cut(x) - full(x)).abs().max() > 1e-6


def loop_no_scan(block, x):
    """float64 loop: token by token in raster order, the causal conv as an explicit sum."""
    B, H, W, C = x.shape
    seq = block.norm(x).reshape(B, H * W, C)
    xz = seq @ block.in_proj.weight.T
    xs, z = xz[..., :block.d_inner], xz[..., block.d_inner:]
    w, bias = block.conv1d.weight[:, 0, :], block.conv1d.bias
    out = torch.zeros_like(seq)
    k = block.d_conv
    for b in range(B):
        for t in range(H * W):
            conv = bias.clone()
            for j in range(k):                      # tap j reads token t - (k - 1) + j
                s = t - (k - 1) + j
                if s >= 0:
                    conv = conv + w[:, j] * xs[b, s]
            y = block.D * torch.nn.functional.silu(conv) * torch.nn.functional.silu(z[b, t])
            out[b, t] = y @ block.out_proj.weight.T
    return x + out.reshape(B, H, W, C)


def test_no_scan_block_against_loop_and_causal():
    torch.manual_seed(3)
    blk = mo.MambaNoScanMixerBlock(5, d_conv=3).double()
    x = torch.randn(2, 3, 3, 5, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(blk(x), loop_no_scan(blk, x), rtol=1e-12, atol=1e-12)
    # gradients, entry by entry, against the loop
    g = torch.randn(2, 3, 3, 5, dtype=torch.float64)
    (gx,) = torch.autograd.grad((blk(x) * g).sum(), x)
    (gx_ref,) = torch.autograd.grad((loop_no_scan(blk, x) * g).sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    # causal in raster order: changing token 5 leaves tokens 0..4 unchanged, changes token 5
    x2 = x.detach().clone()
    x2.reshape(2, 9, 5)[:, 5] += 1.0
    y1, y2 = blk(x.detach()).reshape(2, 9, 5), blk(x2).reshape(2, 9, 5)
    torch.testing.assert_close(y1[:, :5], y2[:, :5], rtol=0, atol=0)
    assert (y1[:, 5] - y2[:, 5]).abs().max() > 1e-3


def test_tiny_mamba_without_scan_shares_the_skeleton():
    torch.manual_seed(0)
    with_scan = mo.TinyMambaOut(mixer="mamba")
    torch.manual_seed(0)
    without = mo.tiny_mamba_without_scan()
    assert all(isinstance(b, mo.MambaNoScanMixerBlock) for s in without.stages for b in s)
    for a, b in zip(with_scan.downsample.parameters(), without.downsample.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(with_scan.head.weight, without.head.weight, rtol=0, atol=0)
    assert without(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(without) < n(with_scan)                   # the SSM's parameters are gone
    assert "Mamba block, scan removed" in mo.MODELS


def test_no_scan_block_errors():
    blk = mo.MambaNoScanMixerBlock(4)
    with pytest.raises(ValueError, match="dim=4"):
        blk(torch.randn(1, 2, 2, 5))
    with pytest.raises(ValueError, match="dim"):
        mo.MambaNoScanMixerBlock(0)


# ----------------------------------------------------------------------------------------------
# chapter 8: the memory a training step holds for its backward pass
# ----------------------------------------------------------------------------------------------
import ssmbook.rwkv as rwkv_lib  # noqa: E402
from ssmbook import measure  # noqa: E402
from ssmbook.baselines import attention  # noqa: E402


def test_saved_for_backward_counts_exactly_what_autograd_saves():
    x = torch.randn(7, 5, requires_grad=True)
    W = torch.randn(5, 3, requires_grad=True)
    # x @ W saves x and W (arguments: not counted); exp saves its output (7·3 floats);
    # sin saves its input, the exp output again (same storage: counted once)
    f = lambda x, W: (x @ W).exp().sin()
    y, n = measure.saved_for_backward(f, x, W)
    assert n == 7 * 3 * 4
    torch.testing.assert_close(y, f(x, W))
    # a view of an argument is the argument's storage
    _, n2 = measure.saved_for_backward(lambda x: (x[:, :2] * x[:, 2:4]).sum(), x)
    assert n2 == 0
    # grows with L as the forms say: attention L², RWKV recurrent L
    C = 8
    w, u = torch.rand(C) + 0.1, torch.zeros(C)
    att, rec = [], []
    for L in (16, 32):
        k = torch.randn(1, L, C, requires_grad=True)
        q = torch.randn(1, L, 2, C // 2, requires_grad=True)
        att.append(measure.saved_for_backward(attention, q, q, q, causal=True)[1])
        rec.append(measure.saved_for_backward(rwkv_lib.wkv_recurrent, w, u, k, k)[1])
    assert att[1] >= 2 * 32 * 32 * 4 and 3.5 < att[1] / att[0] < 4.5
    assert 1.8 < rec[1] / rec[0] < 2.2


def test_saved_for_backward_needs_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        measure.saved_for_backward(torch.exp, torch.randn(3))
