"""ssmbook.measure: parameter, FLOP, memory, operator and saved-for-backward counts against what
they count."""
import numpy as np
import pytest
import torch

from ssmbook import measure, rwkv
from ssmbook.baselines import TransformerBlock, attention


def wkv_inputs(B, T, C, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(C, generator=g, dtype=dtype) * 2 + 0.01
    u = torch.randn(C, generator=g, dtype=dtype)
    k = torch.randn(B, T, C, generator=g, dtype=dtype) * 3.0
    v = torch.randn(B, T, C, generator=g, dtype=dtype)
    return w, u, k, v


def test_count_parameters_counts_a_tied_weight_once():
    lin = torch.nn.Linear(3, 4)
    assert measure.count_parameters(lin) == 3 * 4 + 4
    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight
    assert measure.count_parameters(torch.nn.ModuleList([emb, head])) == 15


@pytest.mark.parametrize("L,D,heads,r", [(1, 8, 2, 4), (5, 12, 3, 4), (33, 16, 4, 2), (64, 8, 1, 3)])
def test_flops_formula_matches_counter(L, D, heads, r):
    block = TransformerBlock(D, heads, mlp_ratio=r)
    counted = measure.count_flops(block, torch.randn(1, L, D))
    f = measure.transformer_block_flops(L, D, r)
    assert counted == f["total"]
    assert f["linear"] == (8 + 4 * r) * L * D * D and f["quadratic"] == 4 * L * L * D


def test_flops_do_not_depend_on_the_number_of_heads():
    x = torch.randn(1, 9, 12)
    counts = {h: measure.count_flops(TransformerBlock(12, h), x) for h in (1, 2, 3, 4, 6, 12)}
    assert set(counts.values()) == {measure.transformer_block_flops(9, 12)["total"]}


def test_flops_counter_sees_the_quadratic_term():
    D = 8
    block = TransformerBlock(D, 2)
    c1, c2 = (measure.count_flops(block, torch.randn(1, L, D)) for L in (10, 20))
    # doubling L doubles the linear term and quadruples the quadratic one
    lin, quad = 24 * 10 * D * D, 4 * 100 * D
    assert c2 - 2 * c1 == 2 * quad and c1 == lin + quad


def test_n_tokens():
    assert measure.n_tokens(224, 224) == 196
    assert measure.n_tokens(800, 1280) == 4000
    assert measure.n_tokens(512, 2048) == 4096
    assert measure.n_tokens(8, 8, patch=2) == 16
    with pytest.raises(ValueError, match="patch must be a positive int"):
        measure.n_tokens(224, 224, patch=0)


def test_memory_sizes():
    np.testing.assert_array_equal(measure.kv_cache_floats([0, 1, 10], D=4, n_layers=2), [0, 16, 160])
    assert measure.mamba_state_floats(D=4, d_state=16, expand=2, d_conv=4) == 8 * 20


def test_mamba_state_size_matches_allocated_state():
    mamba = pytest.importorskip("ssmbook.mamba")
    blk = mamba.MambaBlock(12, d_state=5, d_conv=3, expand=2)
    st_ = blk.allocate_state(1)
    assert st_.conv.numel() + st_.ssm.numel() == measure.mamba_state_floats(12, d_state=5, expand=2, d_conv=3)


def test_peak_memory_sees_live_tensors_only():
    n = 1 << 18  # float32: 1 MiB

    def together():
        a, b = torch.ones(n), torch.ones(n)
        return (a + b).sum()

    def one_at_a_time():
        s = torch.zeros(())
        for _ in range(3):
            s = s + torch.ones(n).sum()
        return s

    r1, peak_together = measure.peak_memory(together)
    r2, peak_serial = measure.peak_memory(one_at_a_time)
    assert r1.item() == 2 * n and r2.item() == 3 * n
    assert 3 * 4 * n <= peak_together < 4 * 4 * n  # a, b and a + b alive at once
    assert 4 * n <= peak_serial < 2 * 4 * n  # one 1 MiB tensor at a time
    with torch.no_grad():
        q = torch.randn(1, 256, 1, 8)
        _, peak_att = measure.peak_memory(attention, q, q, q, causal=True)
    assert peak_att >= 256 * 256 * 4  # the T x T score matrix


def test_count_ops_counts_calls_and_sees_sequential_steps():
    x = torch.ones(3)
    r, n = measure.count_ops(lambda: (x + 1) * 2)
    assert n == 2 and torch.equal(r, torch.full((3,), 4.0))

    def calls(fn, T):
        w, u, k, v = wkv_inputs(1, T, 2, seed=0)
        return measure.count_ops(fn, w, u, k, v)[1]

    rec = [calls(rwkv.wkv_recurrent, T) for T in (4, 8, 12)]
    assert rec[2] - rec[1] == rec[1] - rec[0] > 0  # a fixed number of calls per time step
    par = [calls(rwkv.wkv_parallel, T) for T in (4, 8, 12)]
    assert par[0] == par[1] == par[2]  # one pass, whatever T
    q = torch.randn(1, 4, 1, 2)
    assert measure.count_ops(attention, q, q, q, causal=True)[1] == \
        measure.count_ops(attention, *(torch.randn(1, 9, 1, 2),) * 3, causal=True)[1]


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
        rec.append(measure.saved_for_backward(rwkv.wkv_recurrent, w, u, k, k)[1])
    assert att[1] >= 2 * 32 * 32 * 4 and 3.5 < att[1] / att[0] < 4.5
    assert 1.8 < rec[1] / rec[0] < 2.2


def test_saved_for_backward_needs_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        measure.saved_for_backward(torch.exp, torch.randn(3))
