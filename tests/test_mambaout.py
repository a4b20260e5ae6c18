"""ssmbook.mambaout: Gated CNN block vs its loop oracle, masks, causality, FLOPs, models, and the
Mamba block with its scan removed against its loop oracle."""
import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmbook import mambaout as mo
from ssmbook.baselines import TransformerBlock

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
    causal = TransformerBlock(8, 2, mode="causal")
    full = TransformerBlock(8, 2, mode="full")
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
    causal = mo.influence_matrix(TransformerBlock(8, 2, mode="causal"), L, 8)
    full = mo.influence_matrix(TransformerBlock(8, 2, mode="full"), L, 8)
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
def test_long_sequence_criterion_sympy():
    L, D, r, ratio, threshold = mo.long_sequence_criterion()
    assert sp.simplify(ratio - L / ((2 + r) * D)) == 0
    assert sp.simplify(threshold - (2 + r) * D) == 0
    assert threshold.subs({r: 4, D: 384}) == 2304 and threshold.subs({r: 4, D: 768}) == 4608
    f = mo.transformer_block_flops(int(threshold.subs({r: 4, D: 384})), 384)
    assert f["linear"] == f["quadratic"]


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


# ---------------------------------------------------------------------------------------------
# the Mamba block with its scan removed
# ---------------------------------------------------------------------------------------------
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
