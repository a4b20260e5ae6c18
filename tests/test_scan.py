"""ssmbook.scan: every parallel scan equals the sequential loop, operation counts match the closed forms."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmbook import scan as S

PARALLEL = ["hillis_steele", "blelloch"]
ALL = ["sequential", "hillis_steele", "blelloch"]
lengths = st.integers(min_value=1, max_value=70)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
FEW = settings(max_examples=25, deadline=None)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _loop(op, xs):
    """An independent oracle: a plain Python fold over a list of single elements."""
    L = xs[0].shape[0]
    acc = tuple(x[0:1] for x in xs)
    out = [acc]
    for t in range(1, L):
        acc = tuple(op(acc, tuple(x[t:t + 1] for x in xs)))
        out.append(acc)
    return tuple(torch.cat(c, 0) for c in zip(*out))


@FEW
@given(L=lengths, n=st.sampled_from([1, 2, 3, 5]), seed=seeds, method=st.sampled_from(ALL))
def test_matrix_products_match_loop(L, n, seed, method):
    # Non-commuting operator: any mix-up of order shows.
    x = torch.randn(L, n, n, generator=_gen(seed), dtype=torch.float64) / math.sqrt(n)
    got = S.scan(S.matmul_op, x, method=method)
    want = _loop(lambda p, q: (S.matmul_op(p[0], q[0]),), (x,))[0]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # The last prefix is the ordered product x_{L-1} ... x_1 x_0.
    prod = torch.eye(n, dtype=torch.float64)
    for t in range(L):
        prod = x[t] @ prod
    torch.testing.assert_close(got[-1], prod, rtol=1e-10, atol=1e-10)


@FEW
@given(L=lengths, batch=st.integers(1, 4), seed=seeds, method=st.sampled_from(PARALLEL))
def test_affine_maps_match_sequential(L, batch, seed, method):
    g = _gen(seed)
    a = torch.randn(L, batch, generator=g, dtype=torch.float64)
    b = torch.randn(L, batch, generator=g, dtype=torch.float64)
    got = S.scan(S.affine_op, (a, b), method=method)
    want = S.sequential(S.affine_op, (a, b))
    for g_, w_ in zip(got, want):
        torch.testing.assert_close(g_, w_, rtol=1e-10, atol=1e-10)


@FEW
@given(L=lengths, n=st.sampled_from([1, 2, 3, 4]), seed=seeds, method=st.sampled_from(ALL))
def test_maxplus_matches_loop(L, n, seed, method):
    x = torch.randn(L, n, n, generator=_gen(seed), dtype=torch.float64)
    got = S.scan(S.maxplus_op, x, method=method)
    # oracle: explicit triple loop of the tropical product
    acc = x[0].clone()
    torch.testing.assert_close(got[0], acc)
    for t in range(1, L):
        new = torch.empty_like(acc)
        for i in range(n):
            for j in range(n):
                new[i, j] = max(x[t][i, k] + acc[k, j] for k in range(n))
        acc = new
        torch.testing.assert_close(got[t], acc)


@FEW
@given(L=lengths, seed=seeds, method=st.sampled_from(ALL), axis=st.sampled_from([0, 1, -1]))
def test_prefix_sums_along_any_axis(L, seed, method, axis):
    shape = [3, 4, 2]
    shape[axis] = L
    x = torch.randn(*shape, generator=_gen(seed), dtype=torch.float64)
    torch.testing.assert_close(S.scan(S.add_op, x, axis=axis, method=method), x.cumsum(axis))


@pytest.mark.parametrize("L", list(range(1, 70)) + [127, 128, 129, 1000, 1023, 1024])
@pytest.mark.parametrize("method", ALL)
def test_counts_match_closed_forms(L, method):
    stats = S.ScanStats()
    x = torch.arange(L, dtype=torch.float64)
    torch.testing.assert_close(S.scan(S.add_op, x, method=method, stats=stats), x.cumsum(0))
    assert stats.combines == S.work_closed_form(method, L)
    assert stats.depth == S.depth_closed_form(method, L)
    assert stats.combines == sum(len(p) for _, p in stats.levels)


@pytest.mark.parametrize("k", range(1, 12))
def test_power_of_two_closed_forms(k):
    L = 2 ** k
    assert S.work_closed_form("hillis_steele", L) == L * k - L + 1
    assert S.work_closed_form("blelloch", L) == 2 * L - 2 - k
    assert S.depth_closed_form("hillis_steele", L) == k
    assert S.depth_closed_form("blelloch", L) == (2 * k - 1 if k >= 2 else 1)


@pytest.mark.parametrize("L", [1, 2, 5, 8, 13, 16, 33])
@pytest.mark.parametrize("method", ALL)
def test_intervals_end_as_prefixes_and_stay_contiguous(L, method):
    trace = S.trace_intervals(L, method)
    phase, _, lo, hi = trace[-1]
    assert lo == [0] * L and hi == list(range(L))
    for _, written, lo, hi in trace:
        assert all(lo[i] <= hi[i] == i for i in range(L))  # every slot holds a block ending at itself
    # each level writes exactly the listed positions
    for (_, _, lo0, _), (_, written, lo1, _) in zip(trace, trace[1:]):
        changed = [i for i in range(L) if lo0[i] != lo1[i]]
        assert changed == written


def test_blelloch_walkthrough_on_eight():
    trace = S.trace_intervals(8, "blelloch")
    assert [p for p, *_ in trace] == ["input", "up h=1", "up h=2", "up h=4", "down h=2", "down h=1"]
    assert trace[3][2] == [0, 0, 2, 0, 4, 4, 6, 0]   # after the up-sweep: tree of block totals
    assert trace[4][1] == [5] and trace[5][1] == [2, 4, 6]


def test_interval_op_rejects_gaps():
    with pytest.raises(ValueError, match="not adjacent"):
        S.interval_op((torch.tensor([0]), torch.tensor([1])), (torch.tensor([3]), torch.tensor([3])))


@FEW
@given(L=lengths, lead=st.sampled_from([(), (3,), (2, 5)]), seed=seeds, method=st.sampled_from(ALL),
       with_h0=st.booleans())
def test_linear_recurrence_matches_loop_oracle(L, lead, seed, method, with_h0):
    g = _gen(seed)
    a = torch.rand(*lead, L, generator=g, dtype=torch.float64) * 2 - 1
    b = torch.randn(*lead, L, generator=g, dtype=torch.float64)
    h0 = torch.randn(lead, generator=g, dtype=torch.float64) if with_h0 else None
    got = S.linear_recurrence(a, b, h0, method=method)
    want = S.linear_recurrence_ref(a, b, h0)
    assert got.shape == a.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_linear_recurrence_float32_and_gradients():
    g = _gen(3)
    a = torch.rand(4, 6, 45, generator=g)
    b = torch.randn(4, 6, 45, generator=g)
    torch.testing.assert_close(S.linear_recurrence(a, b).double(), S.linear_recurrence_ref(a, b),
                               rtol=1e-5, atol=1e-5)
    a64 = a.double().requires_grad_()
    b64 = b.double().requires_grad_()
    w = torch.randn(4, 6, 45, generator=g, dtype=torch.float64)
    (S.linear_recurrence(a64, b64, method="blelloch") * w).sum().backward()
    ga, gb = a64.grad.clone(), b64.grad.clone()
    a64.grad = b64.grad = None
    (S.linear_recurrence_ref(a64, b64) * w).sum().backward()
    torch.testing.assert_close(ga, a64.grad)
    torch.testing.assert_close(gb, b64.grad)


def test_linear_recurrence_equals_mamba_diagonal_scan():
    # The selective SSM state h_t = exp(δ_t A) h_{t-1} + δ_t B_t u_t is this recurrence, per (d, n).
    from ssmbook.selective import selective_scan_ref

    g = _gen(5)
    batch, dim, L, N = 2, 3, 19, 5
    u = torch.randn(batch, dim, L, generator=g, dtype=torch.float64)
    delta = torch.rand(batch, dim, L, generator=g, dtype=torch.float64) * 0.5
    A = -torch.rand(dim, N, generator=g, dtype=torch.float64) * 3
    B = torch.randn(batch, N, L, generator=g, dtype=torch.float64)
    C = torch.randn(batch, N, L, generator=g, dtype=torch.float64)
    a = torch.exp(delta[:, :, None, :] * A[None, :, :, None])          # (batch, dim, N, L)
    b = delta[:, :, None, :] * B[:, None, :, :] * u[:, :, None, :]
    h = S.linear_recurrence(a, b, method="blelloch")
    y = (h * C[:, None, :, :]).sum(2)
    torch.testing.assert_close(y, selective_scan_ref(u, delta, A, B, C))


# ------------------------------------------------------------------------------------------- errors
def test_errors_name_the_argument():
    a = torch.rand(3, 10)
    with pytest.raises(ValueError, match=r"b must have the shape of a \(\.\.\., L\)"):
        S.linear_recurrence(a, torch.rand(1, 10))
    with pytest.raises(ValueError, match=r"h0 must have shape a.shape\[:-1\] = \(3,\)"):
        S.linear_recurrence(a, a, h0=torch.zeros(3, 1))
    with pytest.raises(ValueError, match="h0 must have the dtype"):
        S.linear_recurrence(a, a, h0=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="b must have the dtype of a"):
        S.linear_recurrence(a, a.double())
    with pytest.raises(ValueError, match=r"b must be a torch.Tensor of shape \(\.\.\., L\)"):
        S.linear_recurrence(a, [1.0])
    with pytest.raises(ValueError, match="a must have shape .* L >= 1"):
        S.linear_recurrence(torch.zeros(3, 0), torch.zeros(3, 0))
    with pytest.raises(ValueError, match="a must be a floating-point or complex tensor"):
        S.linear_recurrence(torch.ones(3, dtype=torch.int64), torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="method must be one of"):
        S.linear_recurrence(a, a, method="fast")
    with pytest.raises(ValueError, match="same length L=4 along axis 0, xs\\[1\\] has 5"):
        S.blelloch(S.affine_op, (torch.zeros(4), torch.zeros(5)))
    with pytest.raises(ValueError, match=r"axis must be in \[-1, 1\) \(xs\[0\] has shape \(4,\)\), got 2"):
        S.hillis_steele(S.add_op, torch.zeros(4), axis=2)
    with pytest.raises(ValueError, match="length L >= 1"):
        S.sequential(S.add_op, torch.zeros(0))
    with pytest.raises(ValueError, match="xs must be a tensor or a non-empty tuple"):
        S.scan(S.add_op, 3.0)
    with pytest.raises(ValueError, match="op must return elements of the shape"):
        S.blelloch(lambda p, q: p.sum(-1), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="L must be a positive int"):
        S.work_closed_form("blelloch", 0)
    with pytest.raises(ValueError, match="method must be one of"):
        S.depth_closed_form("fast", 4)


@pytest.mark.parametrize("method", ALL)
def test_linear_recurrence_complex_decays(method):
    # S4D-style complex diagonal modes: |a| < 1 with a phase.
    g = _gen(9)
    L = 23
    a = torch.polar(torch.rand(4, L, generator=g, dtype=torch.float64) * 0.9,
                    torch.rand(4, L, generator=g, dtype=torch.float64) * 6.28)
    b = torch.complex(torch.randn(4, L, generator=g, dtype=torch.float64),
                      torch.randn(4, L, generator=g, dtype=torch.float64))
    h0 = torch.complex(torch.randn(4, generator=g, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(S.linear_recurrence(a, b, h0, method=method), S.linear_recurrence_ref(a, b, h0))
