"""ssmbook.baselines: attention against its loop oracles, the KV-cache step, the Transformer."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmbook.baselines import TransformerBlock, TransformerLM, attention, attention_ref, attention_step
from ssmbook.mambaout import token_mixing_mask

F64 = torch.float64
SETTINGS = settings(max_examples=12, deadline=None)


def attention_loop(q, k, v):
    B, T, H, D = q.shape
    out = torch.zeros(B, T, H, v.shape[-1], dtype=F64)
    for b in range(B):
        for h in range(H):
            for t in range(T):
                s = torch.stack([(q[b, t, h] * k[b, i, h]).sum() / math.sqrt(D) for i in range(t + 1)])
                p = torch.exp(s - s.max())
                p = p / p.sum()
                out[b, t, h] = sum(p[i] * v[b, i, h] for i in range(t + 1))
    return out


@pytest.mark.parametrize("T", [1, 6])
def test_causal_attention_matches_loop(T):
    g = torch.Generator().manual_seed(T)
    q, k = (torch.randn(2, T, 2, 3, generator=g, dtype=F64) for _ in range(2))
    v = torch.randn(2, T, 2, 5, generator=g, dtype=F64)
    torch.testing.assert_close(attention(q, k, v, causal=True), attention_loop(q, k, v))


def test_attention_step_is_the_last_row_of_causal_attention():
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randn(2, 7, 3, 4, generator=g, dtype=F64) for _ in range(2))
    v = torch.randn(2, 7, 3, 5, generator=g, dtype=F64)
    full = attention(q, k, v, causal=True)
    for t in (1, 4, 7):
        torch.testing.assert_close(attention_step(q[:, t - 1], k[:, :t], v[:, :t]), full[:, t - 1])
    with pytest.raises(ValueError, match="k_cache must have shape"):
        attention_step(q[:, 0], k[:, :, :2], v)


def test_transformer_lm_is_causal():
    torch.manual_seed(0)
    model = TransformerLM(9, 8, 1, n_head=2, max_len=16)
    tokens = torch.randint(0, 9, (1, 10))
    changed = tokens.clone()
    changed[0, 7] = (changed[0, 7] + 1) % 9
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_transformer_lm_blocks_are_causal_transformer_blocks_without_attention_biases():
    torch.manual_seed(0)
    model = TransformerLM(9, 8, 2, n_head=2, max_len=16, mlp_ratio=2)
    blk = model.blocks[0]
    assert isinstance(blk, TransformerBlock) and blk.attn.mode == "causal"
    assert blk.attn.qkv.bias is None and blk.attn.proj.bias is None and blk.mlp[0].out_features == 16
    with pytest.raises(ValueError, match=r"tokens must have 1 <= L <= max_len=4"):
        TransformerLM(5, 4, 1, n_head=2, max_len=4)(torch.zeros(1, 5, dtype=torch.int64))


@SETTINGS
@given(B=st.integers(1, 2), H=st.integers(1, 3), L=st.integers(1, 9), d=st.integers(1, 5),
       mode=st.sampled_from(["causal", "full", "flag", None]), seed=st.integers(0, 10_000))
def test_attention_matches_loop_oracle(B, H, L, d, mode, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, L, H, d, generator=g, dtype=torch.float64) for _ in range(3))
    if mode == "flag":                                  # causal=True builds the causal mask itself
        torch.testing.assert_close(attention(q, k, v, causal=True), attention_ref(q, k, v, causal=True))
        torch.testing.assert_close(attention(q, k, v, causal=True), attention_ref(q, k, v, token_mixing_mask(L)))
        return
    mask = None if mode is None else token_mixing_mask(L, mode)
    torch.testing.assert_close(attention(q, k, v, mask), attention_ref(q, k, v, mask))


def test_attention_bad_input():
    q = torch.randn(1, 5, 2, 3)
    with pytest.raises(ValueError, match=r"q must have shape \(batch, L, heads, d\)"):
        attention(q[0], q, q)
    with pytest.raises(ValueError, match="must have the shape of q"):
        attention(q, q[:, :4], q)
    with pytest.raises(ValueError, match=r"mask must be a torch.bool tensor of shape \(L, L\) = \(5, 5\)"):
        attention(q, q, q, torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must be a torch.bool"):
        attention(q, q, q, torch.ones(5, 5))
    with pytest.raises(ValueError, match="no empty rows"):
        attention(q, q, q, torch.zeros(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be None when causal=True"):
        attention(q, q, q, torch.ones(5, 5, dtype=torch.bool), causal=True)
    with pytest.raises(ValueError, match="no empty rows"):
        attention(q, q, q, torch.zeros(5, 5, dtype=torch.bool))
