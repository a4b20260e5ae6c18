"""Property tests (hypothesis): extreme-but-legal inputs against a float64 or mpmath oracle,
entry by entry (each entry against its own size, with a small floor), gradients included.

Examples are few (CI runs on two cores); every test draws its sizes as well, so L = 1, odd sizes
and lengths that are not a multiple of a chunk come up.
"""
import math

import mpmath
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssmbook import baselines as BL
from ssmbook import discretize as D
from ssmbook import hmm as H
from ssmbook import mambaout as MO
from ssmbook import rwkv as R
from ssmbook import s4 as S4
from ssmbook import scan as SC
from ssmbook import selective as SEL
from ssmbook import ssm as SSM

FEW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def close_per_entry(got, want, rtol, floor):
    """|got - want| <= rtol * |want| + floor for every entry (no norm hides a wrong small entry)."""
    got = np.asarray(got.detach().cpu().double() if isinstance(got, torch.Tensor) else got)
    want = np.asarray(want.detach().cpu().double() if isinstance(want, torch.Tensor) else want)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got - want)
    bound = rtol * np.abs(want) + floor
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), f"entry {worst}: got {got[worst]}, want {want[worst]}"


seeds = st.integers(0, 2**31 - 1)


# ------------------------------------------------------------------------------ discretize
# a from -1e-12 (φ₁'s series region) to -80 (exp(Δa) underflowing towards 0), both signs of tiny
a_values = st.one_of(st.floats(-1e-1, 1e-1), st.floats(-80.0, -1e-12), st.just(0.0),
                     st.floats(-1e-6, 1e-6))


@SOME
@given(a=st.lists(a_values, min_size=1, max_size=5), delta=st.floats(1e-4, 4.0),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_zoh_diag_torch_values_and_gradients_against_mpmath(a, delta, dtype):
    at = torch.tensor(a, dtype=dtype, requires_grad=True)
    dt = torch.tensor(delta, dtype=dtype, requires_grad=True)
    Ab, Bb = D.zoh_diag_torch(at, torch.ones_like(at), dt)
    ga = torch.autograd.grad(Bb.sum(), at, retain_graph=True)[0]
    gd = torch.autograd.grad(Bb.sum(), dt)[0]
    d = mpmath.mpf(dt.item())                    # the rounded step, exactly
    want_b, want_ga, want_gd = [], [], 0
    with mpmath.workdps(60):
        for ai in at.detach().tolist():
            z = mpmath.mpf(ai) * d
            if abs(z) < mpmath.mpf("0.01"):          # series: the closed forms cancel here
                phi = mpmath.fsum(z**k / mpmath.factorial(k + 1) for k in range(30))
                dphi = mpmath.fsum(k * z ** (k - 1) / mpmath.factorial(k + 1) for k in range(1, 30))
            else:
                phi = mpmath.expm1(z) / z
                dphi = (mpmath.exp(z) * (z - 1) + 1) / z**2
            want_b.append(float(d * phi))
            want_ga.append(float(d * d * dphi))
            want_gd += mpmath.exp(z)
    eps = 4e-6 if dtype == torch.float32 else 1e-13
    tiny = 16 * torch.finfo(dtype).tiny                          # below it: subnormal results
    close_per_entry(Bb, np.array(want_b), eps, tiny)
    close_per_entry(ga, np.array(want_ga), 8 * eps, tiny)
    close_per_entry(gd, np.array(float(want_gd)), 8 * eps * len(a), tiny)


@SOME
@given(a=st.lists(st.floats(-200.0, 5.0), min_size=1, max_size=4), delta=st.floats(1e-3, 2.0),
       M=st.integers(1, 3))
def test_zoh_diag_and_full_zoh_against_mpmath(a, delta, M):
    a = np.array(a)
    B = np.linspace(-1.0, 1.0, a.size * M).reshape(a.size, M)
    with mpmath.workdps(60):
        ex, ph = [], []
        for ai in a:
            z = mpmath.mpf(float(ai)) * mpmath.mpf(delta)
            ex.append(float(mpmath.exp(z)))
            ph.append(float(mpmath.mpf(delta) * (mpmath.fsum(z**k / mpmath.factorial(k + 1) for k in range(40))
                                                 if abs(z) < 0.01 else mpmath.expm1(z) / z)))
    ex, Bx = np.array(ex), np.array(ph)[:, None] * B
    Ab, Bb = D.zoh_diag(a, B, delta)
    cond = 1e-14 + 4e-16 * np.abs(a * delta)                     # exp's condition number is |z|
    close_per_entry(Ab, ex, cond, 1e-300)                        # the diagonal path: per entry
    close_per_entry(Bb, Bx, 10 * cond[:, None], 1e-300)
    # the full path goes through one matrix exponential (scaling and squaring), accurate
    # relative to the size of the result: each entry within 1e-12 of its own size or of the norm
    Af, Bf = D.zoh(np.diag(a), B, delta)
    close_per_entry(np.diag(Af), ex, 1e-11, 1e-13 * np.abs(ex).max())
    close_per_entry(Bf, Bx, 1e-11, 1e-13 * np.abs(Bx).max())
    assert np.all(Af[~np.eye(a.size, dtype=bool)] <= 1e-13 * np.abs(ex).max())


# ------------------------------------------------------------------------------ hmm
@FEW
@given(T=st.integers(1, 600), stick=st.floats(0.0, 1e-6, allow_subnormal=False), peak=st.floats(0.9, 0.999), seed=seeds)
def test_forward_as_scan_matches_log_forward_on_sticky_chains(T, stick, peak, seed):
    rng = np.random.default_rng(seed)
    A = np.array([[1 - stick, stick], [stick, 1 - stick]])
    B = np.array([[1 - peak, peak], [peak, 1 - peak]])
    hmm = H.HMM([1.0, 0.0], A, B)
    obs = (rng.random(T) < 0.1).astype(np.int64)                 # mostly symbol 0
    la = hmm.log_forward(obs)
    ll = H._logsumexp(la, axis=1)
    alpha, lp = hmm.forward_as_scan(obs)
    close_per_entry(lp, ll, 1e-10, 0)
    close_per_entry(alpha, np.exp(la - ll[:, None]), 1e-8, 1e-290)
    assert hmm.log_likelihood(obs, method="scaled") == np.float64(ll[-1]) or \
        abs(hmm.log_likelihood(obs, method="scaled") - ll[-1]) <= 1e-10 * abs(ll[-1])


# ------------------------------------------------------------------------------ scan
@SOME
@given(L=st.integers(1, 40), method=st.sampled_from(sorted(SC.METHODS)), seed=seeds,
       regime=st.sampled_from(["tiny", "near_one", "mixed"]))
def test_linear_recurrence_values_and_gradients_per_entry(L, method, seed, regime):
    g = torch.Generator().manual_seed(seed)
    if regime == "tiny":
        a = torch.rand(3, L, generator=g, dtype=torch.float64) * 1e-30
    elif regime == "near_one":
        a = 1 - torch.rand(3, L, generator=g, dtype=torch.float64) * 1e-9
    else:
        a = torch.rand(3, L, generator=g, dtype=torch.float64) ** 8
    b = torch.randn(3, L, generator=g, dtype=torch.float64)
    a.requires_grad_(), b.requires_grad_()
    w = torch.randn(3, L, generator=g, dtype=torch.float64)
    h = SC.linear_recurrence(a, b, method=method)
    h_ref = SC.linear_recurrence_ref(a, b)
    close_per_entry(h, h_ref, 1e-12, 1e-14)
    g1 = torch.autograd.grad((h * w).sum(), (a, b), allow_unused=True)
    g2 = torch.autograd.grad((h_ref * w).sum(), (a, b), allow_unused=True)
    for x, y, leaf in zip(g1, g2, (a, b)):                       # a_0 is unused without h0
        x = torch.zeros_like(leaf) if x is None else x
        y = torch.zeros_like(leaf) if y is None else y
        close_per_entry(x, y, 1e-10, 1e-12)


# ------------------------------------------------------------------------------ selective
@FEW
@given(batch=st.integers(1, 2), dim=st.integers(1, 3), L=st.integers(1, 9), N=st.integers(1, 5),
       big=st.floats(0.0, 6.0), seed=seeds)
def test_selective_scan_torch_matches_ref_per_entry_with_gradients(batch, dim, L, N, big, seed):
    kw = SEL.random_inputs(batch, dim, L, N, dtype=torch.float64, seed=seed)
    kw["delta"] = kw["delta"] + big                                  # large steps: exp(ΔA) -> 0
    kw["A"] = kw["A"] * (1 + 10 * big)
    leaves = {k: v.clone().requires_grad_() for k, v in kw.items() if isinstance(v, torch.Tensor)}
    args = {**kw, **leaves}
    y = SEL.selective_scan(**args, backend="torch")
    y_ref = SEL.selective_scan_ref(**args)
    close_per_entry(y, y_ref, 1e-11, 1e-13)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    names = sorted(leaves)
    g1 = torch.autograd.grad((y * w).sum(), [leaves[n] for n in names])
    g2 = torch.autograd.grad((y_ref * w).sum(), [leaves[n] for n in names])
    for n, x, r in zip(names, g1, g2):
        close_per_entry(x, r, 1e-9, 1e-12)


# ------------------------------------------------------------------------------ rwkv
@FEW
@given(T=st.integers(1, 12), C=st.integers(1, 4), key_scale=st.floats(0.0, 60.0), chunk=st.integers(1, 5),
       seed=seeds)
def test_wkv4_forms_match_reference_with_large_keys(T, C, key_scale, chunk, seed):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(generator=g, dtype=torch.float64)
    w = torch.rand(C, **f64) * 3
    u = torch.randn(C, **f64)
    k = torch.randn(2, T, C, **f64) * key_scale                     # e^k overflows float32 past 88
    v = torch.randn(2, T, C, **f64)
    ref = R.wkv_reference(w, u, k, v)
    for y in (R.wkv_recurrent(w, u, k, v), R.wkv_parallel(w, u, k, v), R.wkv_chunked(w, u, k, v, chunk=chunk)):
        close_per_entry(y, ref, 1e-10, 1e-12)


@FEW
@given(T=st.integers(1, 10), K=st.integers(1, 3), chunk=st.integers(1, 4), seed=seeds,
       scale=st.sampled_from([1e-3, 1.0, 30.0, 1e3, 1e4]), zeros=st.booleans())
def test_wkv6_forms_match_recurrent_per_entry_with_gradients(T, K, chunk, seed, scale, zeros):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(generator=g, dtype=torch.float64)
    r, k = torch.randn(1, T, 2, K, **f64), torch.randn(1, T, 2, K, **f64)
    v, u = torch.randn(1, T, 2, 2, **f64), torch.randn(2, K, **f64)
    log_w = -torch.rand(1, T, 2, K, **f64) * scale
    if zeros:
        log_w[0, T // 2, 0, 0] = -math.inf                          # a decay of exactly 0
    S0 = torch.randn(1, 2, K, 2, **f64)
    leaves = [x.clone().requires_grad_() for x in (r, k, v, u, S0)]
    rr, kk, vv, uu, ss = leaves
    y_ref, S_ref = R.wkv6_recurrent(rr, log_w, kk, vv, uu, state=ss, return_state=True)
    wy = torch.randn(y_ref.shape, **f64)
    g_ref = torch.autograd.grad((y_ref * wy).sum() + S_ref.sum(), leaves)
    for fn in (R.wkv6_parallel, lambda *a, **kw: R.wkv6_chunked(*a, chunk=chunk, **kw)):
        y, S = fn(rr, log_w, kk, vv, uu, state=ss, return_state=True)
        close_per_entry(y, y_ref, 1e-10, 1e-12)
        close_per_entry(S, S_ref, 1e-10, 1e-12)
        gr = torch.autograd.grad((y * wy).sum() + S.sum(), leaves)
        for a, b in zip(gr, g_ref):
            close_per_entry(a, b, 1e-9, 1e-11)


# ------------------------------------------------------------------------------ s4 and ssm
@SOME
@given(L=st.integers(1, 40), Lk=st.integers(1, 45), seed=seeds, complex_=st.booleans())
def test_causal_conv_matches_direct_loop(L, Lk, seed, complex_):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((2, 3, L))
    K = rng.standard_normal((3, Lk)) * np.exp(-np.arange(Lk) / 5.0)
    if complex_:
        K = K + 1j * rng.standard_normal((3, Lk))
    close_per_entry(S4.causal_conv(u, K), S4.causal_conv_direct(u, K), 1e-9, 1e-12)


@SOME
@given(N=st.integers(1, 5), L=st.integers(1, 30), seed=seeds, rho=st.floats(0.0, 0.999))
def test_recurrent_equals_kernel_convolution(N, L, seed, rho):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((N, N)))[0]
    Ab = rho * Q                                                     # spectral radius rho < 1
    Bb, C = rng.standard_normal(N), rng.standard_normal(N)
    u = rng.standard_normal(L)
    y = S4.recurrent(Ab, Bb, C, u)
    K = S4.kernel(Ab, Bb, C, L)
    close_per_entry(y, S4.causal_conv_direct(u, K), 1e-10, 1e-12)
    close_per_entry(SSM.recurrence(Ab, Bb, C, u), y, 1e-12, 1e-13)


# ------------------------------------------------------------------------------ mambaout
@FEW
@given(L=st.integers(1, 6), d=st.integers(1, 4), logit_scale=st.floats(0.0, 200.0),
       mode=st.sampled_from(["causal", "full"]), seed=seeds)
def test_attention_matches_loop_oracle_with_large_logits(L, d, logit_scale, mode, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, L, 2, d, generator=g, dtype=torch.float64) * math.sqrt(logit_scale)
    k = torch.randn(1, L, 2, d, generator=g, dtype=torch.float64) * math.sqrt(logit_scale)
    v = torch.randn(1, L, 2, d, generator=g, dtype=torch.float64)
    mask = MO.token_mixing_mask(L, mode)
    close_per_entry(BL.attention(q, k, v, mask), BL.attention_ref(q, k, v, mask), 1e-9, 1e-12)
