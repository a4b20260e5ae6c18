"""Tests for ssmbook.hmm against brute-force enumeration and plain float64 loops."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmbook.hmm import (
    HMM,
    brute_force_likelihood,
    brute_force_posterior,
    brute_force_viterbi,
    combine_scaled,
    dishonest_casino,
    log_matmul,
    prefix_products,
    tree_scan,
)

SETTINGS = settings(max_examples=40, deadline=None)


def random_hmm(rng, N, M, sparse=False):
    """A random HMM; with ``sparse`` some probabilities are exactly zero (each row keeps one > 0)."""
    def rows(n, m):
        x = rng.dirichlet(np.full(m, 0.7), size=n)
        if sparse:
            mask = rng.random((n, m)) < 0.3
            mask[np.arange(n), rng.integers(0, m, size=n)] = False
            x = np.where(mask, 0.0, x)
            x = x / x.sum(axis=1, keepdims=True)
        return x

    return HMM(rows(1, N)[0], rows(N, N), rows(N, M))


@st.composite
def hmm_and_obs(draw, max_T=7, sparse=None):
    N = draw(st.integers(1, 3))
    M = draw(st.integers(1, 4))
    T = draw(st.integers(1, max_T))
    seed = draw(st.integers(0, 2**32 - 1))
    sp = draw(st.booleans()) if sparse is None else sparse
    rng = np.random.default_rng(seed)
    hmm = random_hmm(rng, N, M, sparse=sp)
    obs = rng.integers(0, M, size=T)
    return hmm, obs


# ------------------------------------------------------------------ likelihood
@SETTINGS
@given(hmm_and_obs())
def test_log_likelihood_matches_brute_force(case):
    hmm, obs = case
    p = brute_force_likelihood(hmm, obs)
    for method in ("scaled", "log", "scan"):
        ll = hmm.log_likelihood(obs, method=method)
        if p == 0.0:
            assert ll == -np.inf, method
        else:
            assert abs(ll - np.log(p)) <= 1e-10, (method, ll, np.log(p))


def test_likelihood_of_impossible_sequence_is_minus_inf_and_posterior_raises():
    # state 0 only emits symbol 0, state 1 only symbol 1, and the chain can never leave state 0
    hmm = HMM([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
    obs = np.array([0, 0, 1, 0])
    assert brute_force_likelihood(hmm, obs) == 0.0
    for method in ("scaled", "log", "scan"):
        assert hmm.log_likelihood(obs, method=method) == -np.inf
    alpha, c = hmm.forward(obs)
    np.testing.assert_array_equal(c, [1.0, 1.0, 0.0, 0.0])
    assert np.isnan(alpha[2:]).all()
    with pytest.raises(ValueError, match="probability zero"):
        hmm.posterior(obs)
    with pytest.raises(ValueError, match="probability zero"):
        brute_force_posterior(hmm, obs)


# ------------------------------------------------------------------ scaled vs log vs unscaled
@SETTINGS
@given(hmm_and_obs(max_T=12, sparse=False))
def test_scaled_log_and_unscaled_forward_backward_agree(case):
    hmm, obs = case
    alpha_hat, c = hmm.forward(obs)
    np.testing.assert_allclose(alpha_hat.sum(axis=1), 1.0, atol=1e-12)
    alpha = alpha_hat * np.cumprod(c)[:, None]                      # undo the scaling
    np.testing.assert_allclose(alpha, hmm.forward_unscaled(obs), rtol=1e-10, atol=0)
    np.testing.assert_allclose(np.log(alpha), hmm.log_forward(obs), rtol=0, atol=1e-10)
    beta_hat = hmm.backward(obs)
    tail = np.append(np.cumprod(c[::-1])[::-1][1:], 1.0)            # c_{t+1} ... c_T
    np.testing.assert_allclose(np.log(beta_hat * tail[:, None]), hmm.log_backward(obs), rtol=0, atol=1e-10)


def test_backward_by_explicit_sum_on_a_fixed_case():
    rng = np.random.default_rng(3)
    hmm = random_hmm(rng, 3, 2)
    obs = np.array([1, 0, 0, 1, 1])
    lb = hmm.log_backward(obs)
    # beta_t(i) = sum over continuations z_{t+1..T} of prod A * B, by enumeration
    for t in range(len(obs)):
        for i in range(hmm.N):
            total = 0.0
            for rest in itertools.product(range(hmm.N), repeat=len(obs) - 1 - t):
                prev, p = i, 1.0
                for s, z in zip(range(t + 1, len(obs)), rest):
                    p *= hmm.A[prev, z] * hmm.B[z, obs[s]]
                    prev = z
                total += p
            assert abs(np.exp(lb[t, i]) - total) <= 1e-12


def test_forward_unscaled_underflows_but_scaled_does_not():
    hmm = dishonest_casino()
    _, obs = hmm.sample(2000, seed=0)
    naive = hmm.forward_unscaled(obs)
    assert naive[-1].sum() == 0.0                                    # underflow: log gives -inf
    assert np.isfinite(hmm.log_likelihood(obs))


# ------------------------------------------------------------------ posterior and Viterbi
@SETTINGS
@given(hmm_and_obs())
def test_posterior_matches_brute_force(case):
    hmm, obs = case
    if brute_force_likelihood(hmm, obs) == 0.0:
        return
    gamma = hmm.posterior(obs)
    assert gamma.shape == (len(obs), hmm.N)
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(gamma, brute_force_posterior(hmm, obs), atol=1e-10)


@SETTINGS
@given(hmm_and_obs(max_T=6))
def test_pairwise_posterior_matches_brute_force(case):
    hmm, obs = case
    p_obs = brute_force_likelihood(hmm, obs)
    if p_obs == 0.0:
        return
    T = len(obs)
    xi_ref = np.zeros((T - 1, hmm.N, hmm.N))
    for path in itertools.product(range(hmm.N), repeat=T):
        p = hmm.pi[path[0]] * hmm.B[path[0], obs[0]]
        for t in range(1, T):
            p *= hmm.A[path[t - 1], path[t]] * hmm.B[path[t], obs[t]]
        for t in range(T - 1):
            xi_ref[t, path[t], path[t + 1]] += p / p_obs
    xi = hmm.pairwise_posterior(obs)
    assert xi.shape == (T - 1, hmm.N, hmm.N)
    np.testing.assert_allclose(xi, xi_ref, atol=1e-10)


@SETTINGS
@given(hmm_and_obs())
def test_viterbi_matches_brute_force(case):
    hmm, obs = case
    path, logp = hmm.viterbi(obs)
    ref_path, ref_logp = brute_force_viterbi(hmm, obs)
    assert path.shape == (len(obs),) and path.dtype == np.int64
    if ref_logp == -np.inf:
        assert logp == -np.inf
        return
    assert abs(logp - ref_logp) <= 1e-10
    assert abs(hmm.log_joint(path, obs) - logp) <= 1e-10             # the path achieves the score
    # with ties the best path need not be unique; otherwise it must be the brute-force one
    _, paths = _enumerate(hmm, obs)
    scores = np.array([hmm.log_joint(p, obs) for p in paths])
    if np.sum(scores >= ref_logp - 1e-9) == 1:
        np.testing.assert_array_equal(path, ref_path)


def _enumerate(hmm, obs):
    T = len(obs)
    return obs, [np.array(p) for p in itertools.product(range(hmm.N), repeat=T)]


def test_viterbi_on_casino_finds_long_loaded_run():
    hmm = dishonest_casino()
    obs = np.array([0, 2, 4, 1, 3] * 6 + [5] * 20 + [1, 3, 0, 2, 4] * 6)
    path, _ = hmm.viterbi(obs)
    assert (path[30:50] == 1).all() and (path[:25] == 0).all() and (path[55:] == 0).all()


# ------------------------------------------------------------------ the scan
def _sequential_products(mats):
    out = np.empty_like(mats)
    acc = np.eye(mats.shape[1])
    for t in range(mats.shape[0]):
        acc = mats[t] @ acc
        out[t] = acc
    return out


@pytest.mark.parametrize("T", [1, 2, 3, 5, 8, 17, 33, 100])
@pytest.mark.parametrize("N", [1, 3, 4])
def test_prefix_products_match_sequential_loop(T, N):
    rng = np.random.default_rng(100 * T + N)
    mats = rng.random((T, N, N))
    if T > 3:
        mats[2] = 0.0                                                # a zero matrix kills later products
    P, logs = prefix_products(mats)
    ref = _sequential_products(mats)
    got = np.where(np.isfinite(logs)[:, None, None], P * np.exp(np.where(np.isfinite(logs), logs, 0))[:, None, None], 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)
    assert np.allclose(P.max(axis=(1, 2))[np.isfinite(logs)], 1.0)


def test_combine_scaled_is_the_exact_product_and_associative():
    rng = np.random.default_rng(11)
    X, Y, Z = (rng.random((4, 3, 3)) for _ in range(3))
    r, s, t = (rng.normal(size=4) for _ in range(3))
    P, p = combine_scaled((X, r), (Y, s))
    np.testing.assert_allclose(np.exp(p)[:, None, None] * P,
                               np.exp(s + r)[:, None, None] * (Y @ X), rtol=1e-13)
    np.testing.assert_allclose(P.max(axis=(1, 2)), 1.0, rtol=1e-15)
    left = combine_scaled((X, r), combine_scaled((Y, s), (Z, t)))  # (Z Y) X
    right = combine_scaled(combine_scaled((X, r), (Y, s)), (Z, t))  # Z (Y X)
    np.testing.assert_allclose(left[0], right[0], rtol=1e-13)
    np.testing.assert_allclose(left[1], right[1], rtol=1e-13)


@pytest.mark.parametrize("T", [1, 2, 3, 7, 16])
def test_tree_scan_matches_folding_combine_scaled(T):
    rng = np.random.default_rng(T)
    mats = rng.random((T, 2, 2))
    mats /= mats.max(axis=(1, 2), keepdims=True)
    logs = rng.normal(size=T)
    P, lp = tree_scan(mats, logs)
    acc = (mats[:1], logs[:1])
    for k in range(T):
        if k:
            acc = combine_scaled(acc, (mats[k:k + 1], logs[k:k + 1]))
        np.testing.assert_allclose(P[k], acc[0][0], rtol=1e-12)
        np.testing.assert_allclose(lp[k], acc[1][0], rtol=1e-12, atol=1e-12)


@SETTINGS
@given(hmm_and_obs(max_T=40))
def test_forward_as_scan_matches_forward(case):
    hmm, obs = case
    alpha, c = hmm.forward(obs)
    alpha_s, log_prefix = hmm.forward_as_scan(obs)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(log_prefix, np.cumsum(np.log(c)), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(alpha_s, alpha, atol=1e-12)           # nan where impossible, in both


def test_transition_matrices_are_selected_by_the_observation():
    rng = np.random.default_rng(7)
    hmm = random_hmm(rng, 3, 4)
    obs = rng.integers(0, 4, size=9)
    Ms = hmm.transition_matrices(obs)
    assert Ms.shape == (8, 3, 3)
    for t in range(1, 9):
        np.testing.assert_array_equal(Ms[t - 1], np.diag(hmm.B[:, obs[t]]) @ hmm.A.T)
    # the linear recurrence alpha_t = M_t alpha_{t-1} is the unscaled forward pass
    a = hmm.pi * hmm.B[:, obs[0]]
    ref = hmm.forward_unscaled(obs)
    for t in range(1, 9):
        a = Ms[t - 1] @ a
        np.testing.assert_allclose(a, ref[t], rtol=1e-13)


def test_log_matmul_matches_matmul():
    rng = np.random.default_rng(1)
    X, Y = rng.random((5, 2, 3)), rng.random((5, 3, 4))
    np.testing.assert_allclose(np.exp(log_matmul(np.log(X), np.log(Y))), X @ Y, rtol=1e-13)
    Z = np.full((2, 2), -np.inf)
    assert (log_matmul(Z, Z) == -np.inf).all()


# ------------------------------------------------------------------ long sequences
def test_stable_at_T_100000_and_equal_to_chunked_computation():
    rng = np.random.default_rng(2024)
    hmm = random_hmm(rng, 4, 5)
    _, obs = hmm.sample(100_000, seed=11)
    ll = hmm.log_likelihood(obs)
    assert np.isfinite(ll) and ll < -1e4
    # chunked: carry the normalized filtering distribution P(z_t | o_1..t) across chunk borders
    total, prior = 0.0, None
    for start in range(0, len(obs), 7919):                           # chunk length not a divisor
        chunk = obs[start:start + 7919]
        alpha, c = hmm.forward(chunk, prior=prior)
        total += np.log(c).sum()
        # the scan and the log-space pass accept the same carried prior
        alpha_s, log_prefix = hmm.forward_as_scan(chunk, prior=prior)
        np.testing.assert_allclose(alpha_s, alpha, atol=1e-12)
        np.testing.assert_allclose(log_prefix[-1], np.log(c).sum(), rtol=1e-12)
        if start < 2 * 7919:
            np.testing.assert_allclose(hmm.log_likelihood(chunk, method="log", prior=prior),
                                       np.log(c).sum(), rtol=1e-11)
        prior = alpha[-1] @ hmm.A                                    # P(z_{t+1} | o_1..t)
    assert abs(ll - total) <= 1e-10 * abs(ll)
    assert abs(hmm.log_likelihood(obs, method="scan") - ll) <= 1e-10 * abs(ll)
    assert abs(hmm.log_likelihood(obs, method="log") - ll) <= 1e-10 * abs(ll)
    gamma = hmm.posterior(obs)
    assert np.isfinite(gamma).all()
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, atol=1e-12)


# ------------------------------------------------------------------ sampling
def test_sample_shapes_determinism_and_frequencies():
    hmm = HMM([0.2, 0.8, 0.0], [[0.9, 0.1, 0.0], [0.0, 0.5, 0.5], [0.3, 0.0, 0.7]],
              [[0.5, 0.5], [1.0, 0.0], [0.1, 0.9]])
    z, o = hmm.sample(50_000, seed=5)
    assert z.shape == o.shape == (50_000,) and z.dtype == o.dtype == np.int64
    z2, o2 = hmm.sample(50_000, seed=5)
    np.testing.assert_array_equal(z, z2)
    np.testing.assert_array_equal(o, o2)
    assert not np.array_equal(z, hmm.sample(50_000, seed=6)[0])
    counts = np.zeros((3, 3))
    np.add.at(counts, (z[:-1], z[1:]), 1)
    np.testing.assert_allclose(counts / counts.sum(axis=1, keepdims=True), hmm.A, atol=0.015)
    emit = np.zeros((3, 2))
    np.add.at(emit, (z, o), 1)
    np.testing.assert_allclose(emit / emit.sum(axis=1, keepdims=True), hmm.B, atol=0.015)
    assert counts[0, 2] == counts[1, 0] == counts[2, 1] == 0 and emit[1, 1] == 0


# ------------------------------------------------------------------ validation
def _ok():
    return [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]


@pytest.mark.parametrize("change, match", [
    (dict(pi=[0.6, 0.6]), r"pi must sum to 1"),
    (dict(pi=[1.5, -0.5]), r"pi must be non-negative"),
    (dict(pi=[1.0]), r"pi must have shape \(2,\)"),
    (dict(pi=[[0.5, 0.5]]), r"pi must have shape \(2,\)"),
    (dict(pi=[0.5, np.nan]), r"pi must contain only finite values"),
    (dict(A=[[0.9, 0.1], [0.3, 0.8]]), r"A must sum to 1 .*\(row 1\)"),
    (dict(A=[[1.1, -0.1], [0.2, 0.8]]), r"A must be non-negative"),
    (dict(A=[[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]]), r"A must be a square matrix of shape \(N, N\)"),
    (dict(A=[0.5, 0.5]), r"A must be a square matrix of shape \(N, N\)"),
    (dict(A=[["a", "b"], ["c", "d"]]), r"A must be a real"),
    (dict(B=[[0.5, 0.5]]), r"B must have shape \(2, M\)"),
    (dict(B=[[0.5, 0.25, 0.25], [0.1, 0.1, 0.7]]), r"B must sum to 1 .*\(row 1\)"),
    (dict(B=[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8 + 2e-8]]), r"B must sum to 1"),
])
def test_model_validation(change, match):
    pi, A, B = _ok()
    kw = dict(pi=pi, A=A, B=B)
    kw.update(change)
    with pytest.raises(ValueError, match=match):
        HMM(**kw)


def test_tolerance_accepts_rounding():
    pi, A, B = _ok()
    HMM(pi, A, [[0.5, 0.25, 0.25], [0.1, 0.1, 0.8 + 5e-9]])


@pytest.mark.parametrize("obs, match", [
    ([0.0, 1.0], r"obs must be integers"),
    ([True, False], r"obs must be integers"),
    ([0, 3], r"obs must be symbols in \[0, 3\).*got 3"),
    ([-1, 0], r"obs must be symbols in \[0, 3\).*got -1"),
    ([[0, 1]], r"obs must be a 1-D sequence of shape \(T,\)"),
    ([], r"T >= 1"),
])
@pytest.mark.parametrize("fn", ["forward", "log_forward", "log_likelihood", "posterior", "viterbi",
                                "forward_as_scan", "backward", "forward_unscaled"])
def test_obs_validation(obs, match, fn):
    hmm = HMM(*_ok())
    with pytest.raises(ValueError, match=match):
        getattr(hmm, fn)(np.array(obs) if obs else np.array([], dtype=np.int64))


def test_other_argument_validation():
    hmm = HMM(*_ok())
    obs = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"prior must sum to 1"):
        hmm.forward(obs, prior=[0.3, 0.3])
    with pytest.raises(ValueError, match=r"prior must have shape \(2,\)"):
        hmm.forward(obs, prior=[1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"c must have shape \(3,\)"):
        hmm.backward(obs, c=np.ones(2))
    with pytest.raises(ValueError, match=r"method must be"):
        hmm.log_likelihood(obs, method="naive")
    for T in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"T must be a positive int"):
            hmm.sample(T, seed=0)
    with pytest.raises(ValueError, match=r"states must have the same shape as obs"):
        hmm.log_joint(np.array([0, 1]), obs)
    with pytest.raises(ValueError, match=r"states must be hidden states in \[0, 2\)"):
        hmm.log_joint(np.array([0, 1, 2]), obs)
    with pytest.raises(ValueError, match=r"too long for brute force"):
        brute_force_likelihood(hmm, np.zeros(25, dtype=np.int64))
    with pytest.raises(ValueError, match=r"mats must have shape \(T, N, N\)"):
        prefix_products(np.ones((3, 2, 3)))
    with pytest.raises(ValueError, match=r"mats must be non-negative"):
        prefix_products(-np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match=r"p_six_loaded must be a probability"):
        dishonest_casino(p_six_loaded=1.5)
