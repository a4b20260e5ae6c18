"""ssmbook.mambaout: Gated CNN block vs its loop oracle, masks, causality, FLOPs, models."""
import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmbook import mambaout as mo

SETTINGS = settings(max_examples=12, deadline=None)


# ---------------------------------------------------------------------------------------------
# Gated CNN block against the float64 loop oracle
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(dim=st.integers(1, 7), H=st.integers(1, 5), W=st.integers(1, 5), k=st.sampled_from([1, 3, 5, 7]),
       conv_ratio=st.sampled_from([0.5, 1.0, 2.0]), seed=st.integers(0, 10_000))
def test_gated_cnn_2d_matches_oracle(dim, H, W, k, conv_ratio, seed):
    torch.manual_seed(seed)
    if int(conv_ratio * dim) < 1:
        conv_ratio = 1.0
    block = mo.GatedCNNBlock(dim, kernel_size=k, conv_ratio=conv_ratio).double()
    x = torch.randn(2, H, W, dim, dtype=torch.float64)
    np.testing.assert_allclose(block(x).detach().numpy(), mo.gated_cnn_block_ref(block, x), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(dim=st.integers(1, 6), L=st.integers(1, 11), k=st.integers(1, 6), causal=st.booleans(),
       seed=st.integers(0, 10_000))
def test_gated_cnn_1d_matches_oracle(dim, L, k, causal, seed):
    if not causal and k % 2 == 0:
        k += 1
    torch.manual_seed(seed)
    block = mo.GatedCNNBlock(dim, kernel_size=k, spatial_dims=1, causal=causal).double()
    x = torch.randn(3, L, dim, dtype=torch.float64)
    np.testing.assert_allclose(block(x).detach().numpy(), mo.gated_cnn_block_ref(block, x), rtol=1e-10, atol=1e-10)


def test_gated_cnn_float32_close_to_oracle():
    torch.manual_seed(0)
    block = mo.GatedCNNBlock(5, kernel_size=3)
    x = torch.randn(2, 4, 3, 5)
    np.testing.assert_allclose(block(x).detach().numpy(), mo.gated_cnn_block_ref(block, x), rtol=1e-4, atol=1e-5)


def test_gated_cnn_shapes_split_and_gradients():
    block = mo.GatedCNNBlock(6, expansion_ratio=8 / 3, kernel_size=7, conv_ratio=0.5)
    assert (block.hidden, block.conv_channels) == (16, 3)
    assert block.fc_in.out_features == 2 * 16 and block.fc_out.in_features == 16
    assert tuple(block.conv.weight.shape) == (3, 1, 7, 7)  # depthwise, on the conv part only
    x = torch.randn(2, 5, 4, 6, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_gated_cnn_only_conv_part_mixes_tokens():
    """With the conv weights zeroed, the block acts on every position separately."""
    torch.manual_seed(1)
    block = mo.GatedCNNBlock(4, kernel_size=3, spatial_dims=1)
    with torch.no_grad():
        block.conv.weight.zero_()
    x = torch.randn(1, 6, 4)
    x2 = x.clone()
    x2[0, 5] += 1.0
    d = (block(x2) - block(x)).abs().sum(-1)[0]
    assert torch.all(d[:5] == 0) and d[5] > 0


def test_gated_cnn_bad_input():
    block = mo.GatedCNNBlock(4, kernel_size=3)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, H, W, dim\)"):
        block(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"dim=4 \(channels last\)"):
        block(torch.randn(2, 4, 5, 3))
    with pytest.raises(ValueError, match="floating-point"):
        block(torch.ones(2, 3, 3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="spatial_dims must be 1"):
        mo.GatedCNNBlock(4, spatial_dims=3)
    with pytest.raises(ValueError, match="causal=True needs spatial_dims=1"):
        mo.GatedCNNBlock(4, causal=True)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        mo.GatedCNNBlock(4, kernel_size=4)
    with pytest.raises(ValueError, match=r"conv_ratio \* dim"):
        mo.GatedCNNBlock(4, conv_ratio=5.0)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        mo.GatedCNNBlock(0)


# ---------------------------------------------------------------------------------------------
# Masks, attention and causality
# ---------------------------------------------------------------------------------------------
def test_masks():
    m = mo.token_mixing_mask(4, "causal")
    assert m.dtype == torch.bool
    assert m.tolist() == [[True, False, False, False], [True, True, False, False],
                          [True, True, True, False], [True, True, True, True]]
    assert mo.token_mixing_mask(3, "full").all()
    assert mo.token_mixing_mask(1, "causal").tolist() == [[True]]
    with pytest.raises(ValueError, match="mode must be one of"):
        mo.token_mixing_mask(3, "bidirectional")
    with pytest.raises(ValueError, match="L must be a positive int"):
        mo.token_mixing_mask(0)


@SETTINGS
@given(B=st.integers(1, 2), H=st.integers(1, 3), L=st.integers(1, 9), d=st.integers(1, 5),
       mode=st.sampled_from(["causal", "full", None]), seed=st.integers(0, 10_000))
def test_attention_matches_loop_oracle(B, H, L, d, mode, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, L, d, generator=g, dtype=torch.float64) for _ in range(3))
    mask = None if mode is None else mo.token_mixing_mask(L, mode)
    torch.testing.assert_close(mo.attention(q, k, v, mask), mo.attention_ref(q, k, v, mask))


def test_attention_bad_input():
    q = torch.randn(1, 2, 5, 3)
    with pytest.raises(ValueError, match=r"q must have shape \(batch, heads, L, d_head\)"):
        mo.attention(q[0], q, q)
    with pytest.raises(ValueError, match="must have the shape of q"):
        mo.attention(q, q[:, :, :4], q)
    with pytest.raises(ValueError, match=r"mask must be a torch.bool tensor of shape \(L, L\) = \(5, 5\)"):
        mo.attention(q, q, q, torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must be a torch.bool"):
        mo.attention(q, q, q, torch.ones(5, 5))
    with pytest.raises(ValueError, match="no empty rows"):
        mo.attention(q, q, q, torch.zeros(5, 5, dtype=torch.bool))


def _perturb_after(fn, x, t):
    """Largest change of outputs 0..t and of outputs t+1.. when only inputs after t change."""
    x2 = x.clone()
    x2[:, t + 1:] += torch.randn_like(x2[:, t + 1:])
    with torch.no_grad():
        d = (fn(x2) - fn(x)).abs().amax(dim=(0, 2))
    return d[:t + 1].max().item(), d[t + 1:].max().item()


@pytest.mark.parametrize("L,t", [(7, 0), (7, 3), (10, 8)])
def test_causal_attention_is_causal_and_full_is_not(L, t):
    torch.manual_seed(L + t)
    x = torch.randn(2, L, 8)
    causal = mo.TransformerBlock(8, 2, mode="causal")
    full = mo.TransformerBlock(8, 2, mode="full")
    full.load_state_dict(causal.state_dict())
    before, after = _perturb_after(causal, x, t)
    assert before == 0.0 and after > 0
    before_full, _ = _perturb_after(full, x, t)
    assert before_full > 1e-4  # fully visible: earlier outputs see the later inputs


def test_causal_gated_cnn_is_causal_and_centred_is_not():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 4)
    causal = mo.GatedCNNBlock(4, kernel_size=4, spatial_dims=1, causal=True)
    assert _perturb_after(causal, x, 4)[0] == 0.0
    centred = mo.GatedCNNBlock(4, kernel_size=3, spatial_dims=1)
    assert _perturb_after(centred, x, 4)[0] > 0


def test_influence_matrix_pattern():
    torch.manual_seed(0)
    L = 6
    causal = mo.influence_matrix(mo.TransformerBlock(8, 2, mode="causal"), L, 8)
    full = mo.influence_matrix(mo.TransformerBlock(8, 2, mode="full"), L, 8)
    upper = np.triu(np.ones((L, L), dtype=bool), k=1)
    assert causal.shape == (L, L) and np.all(causal[upper] == 0) and np.all(causal[~upper] > 0)
    assert np.all(full > 0)
    conv = mo.influence_matrix(mo.GatedCNNBlock(4, kernel_size=3, spatial_dims=1), L, 4)
    band = np.abs(np.subtract.outer(np.arange(L), np.arange(L))) <= 1
    assert np.all(conv[~band] == 0) and np.all(conv[band] > 0)


def test_vit_causal_and_full_share_parameters_but_differ():
    torch.manual_seed(0)
    a = mo.TinyViT(mode="full")
    b = mo.TinyViT(mode="causal")
    b.load_state_dict(a.state_dict())
    x = torch.rand(3, 1, 8, 8)
    ya, yb = a(x), b(x)
    assert ya.shape == (3, 10) and not torch.allclose(ya, yb)
    with pytest.raises(ValueError, match=r"images must have shape \(batch, 1, 8, 8\)"):
        a(torch.rand(3, 1, 6, 6))
    with pytest.raises(ValueError, match="mode must be one of"):
        mo.TinyViT(mode="bert")


# ---------------------------------------------------------------------------------------------
# FLOPs: formula vs a counted implementation, and the threshold
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("L,D,heads,r", [(1, 8, 2, 4), (5, 12, 3, 4), (33, 16, 4, 2), (64, 8, 1, 3)])
def test_flops_formula_matches_counter(L, D, heads, r):
    block = mo.TransformerBlock(D, heads, mlp_ratio=r)
    counted = mo.count_flops(block, torch.randn(1, L, D))
    f = mo.transformer_block_flops(L, D, r)
    assert counted == f["total"]
    assert f["linear"] == (8 + 4 * r) * L * D * D and f["quadratic"] == 4 * L * L * D


def test_flops_do_not_depend_on_the_number_of_heads():
    x = torch.randn(1, 9, 12)
    counts = {h: mo.count_flops(mo.TransformerBlock(12, h), x) for h in (1, 2, 3, 4, 6, 12)}
    assert set(counts.values()) == {mo.transformer_block_flops(9, 12)["total"]}


def test_flops_counter_sees_the_quadratic_term():
    D = 8
    block = mo.TransformerBlock(D, 2)
    c1, c2 = (mo.count_flops(block, torch.randn(1, L, D)) for L in (10, 20))
    # doubling L doubles the linear term and quadruples the quadratic one
    lin, quad = 24 * 10 * D * D, 4 * 100 * D
    assert c2 - 2 * c1 == 2 * quad and c1 == lin + quad


def test_long_sequence_criterion_sympy():
    L, D, r, ratio, threshold = mo.long_sequence_criterion()
    assert sp.simplify(ratio - L / ((2 + r) * D)) == 0
    assert sp.simplify(threshold - (2 + r) * D) == 0
    assert threshold.subs({r: 4, D: 384}) == 2304 and threshold.subs({r: 4, D: 768}) == 4608
    f = mo.transformer_block_flops(int(threshold.subs({r: 4, D: 384})), 384)
    assert f["linear"] == f["quadratic"]


def test_n_tokens():
    assert mo.n_tokens(224, 224) == 196
    assert mo.n_tokens(800, 1280) == 4000
    assert mo.n_tokens(512, 2048) == 4096
    assert mo.n_tokens(8, 8, patch=2) == 16
    with pytest.raises(ValueError, match="patch must be a positive int"):
        mo.n_tokens(224, 224, patch=0)


def test_memory_sizes():
    np.testing.assert_array_equal(mo.kv_cache_floats([0, 1, 10], D=4, n_layers=2), [0, 16, 160])
    assert mo.mamba_state_floats(D=4, d_state=16, expand=2, d_conv=4) == 8 * 20


# ---------------------------------------------------------------------------------------------
# Models and the digits pipeline
# ---------------------------------------------------------------------------------------------
def test_tiny_mambaout_shapes_gradients_and_hierarchy():
    torch.manual_seed(0)
    model = mo.TinyMambaOut(depths=(1, 2), dims=(8, 12))
    x = torch.rand(4, 1, 8, 8)
    y = model(x)
    assert y.shape == (4, 10)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    feats = x
    sizes = []
    for down, stage in zip(model.downsample, model.stages):
        feats = stage(down(feats))
        sizes.append(tuple(feats.shape[1:]))
    assert sizes == [(4, 4, 8), (2, 2, 12)]  # each stage halves the resolution, widens the channels
    with pytest.raises(ValueError, match=r"images must have shape \(batch, 1, H, W\)"):
        model(torch.rand(4, 3, 8, 8))
    with pytest.raises(ValueError, match="mixer must be"):
        mo.TinyMambaOut(mixer="attention")


def test_mamba_mixer_model_is_causal_in_raster_order():
    pytest.importorskip("ssmbook.mamba")
    torch.manual_seed(0)
    blk = mo.MambaMixerBlock(6, d_state=4)
    x = torch.randn(2, 3, 3, 6)
    x2 = x.clone()
    x2[:, 2, 1] += 1.0  # token 7 of 9 in raster order
    with torch.no_grad():
        d = (blk(x2) - blk(x)).abs().amax(dim=(0, 3)).flatten()
    assert torch.all(d[:7] == 0) and torch.all(d[7:] > 0)
    model = mo.TinyMambaOut(mixer="mamba", depths=(1, 1), dims=(8, 8), d_state=4)
    y = model(torch.rand(2, 1, 8, 8))
    assert y.shape == (2, 10)
    y.sum().backward()
    assert model.stages[0][0].mamba.A_log.grad is not None


def test_mamba_state_size_matches_allocated_state():
    mamba = pytest.importorskip("ssmbook.mamba")
    blk = mamba.MambaBlock(12, d_state=5, d_conv=3, expand=2)
    st_ = blk.allocate_state(1)
    assert st_.conv.numel() + st_.ssm.numel() == mo.mamba_state_floats(12, d_state=5, expand=2, d_conv=3)


def test_digits_split_and_training_learn():
    data = mo.load_digits_split(test_fraction=0.3, seed=0)
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_train.dtype == torch.float32
    assert len(data.x_train) + len(data.x_test) == 1797
    assert float(data.x_train.max()) <= 1.0 and float(data.x_train.min()) >= 0.0
    assert set(data.y_test.tolist()) == set(range(10))
    small = mo.DigitsSplit(data.x_train[:600], data.y_train[:600], data.x_test[:300], data.y_test[:300])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is fastest
    try:
        torch.manual_seed(0)
        res = mo.train_classifier(mo.TinyMambaOut(dims=(8, 16)), small, epochs=8, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert res["test_acc"] > 0.5 and res["params"] > 0  # chance is 0.1
    with pytest.raises(ValueError, match="test_fraction"):
        mo.load_digits_split(test_fraction=1.5)
    with pytest.raises(ValueError, match="name must be one of"):
        mo.make_model("ResNet", 0)


def test_accuracy_counts_correct_predictions():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 3] = 1.0
            return out

    y = torch.tensor([3, 3, 1, 3])
    assert mo.accuracy(Fixed(), torch.zeros(4, 1, 8, 8), y, batch_size=3) == pytest.approx(0.75)
