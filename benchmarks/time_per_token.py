"""Time per generated token: a tiny Mamba LM (recurrent steps) against a tiny attention LM with a KV cache.

Timed over the context length; ``bench_selective_scan.py`` runs it when a grid has ``time_per_token``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import bench_ms, cuda_graphed


class TinyAttentionLM(nn.Module):
    """A pre-norm decoder (attention + MLP of width 2·d_model per layer, tied head, no positional
    encoding: irrelevant to the cost being measured).  ``step`` decodes one token with a KV cache."""

    def __init__(self, vocab_size, d_model, n_layer, n_head):
        super().__init__()
        self.d_model, self.n_layer, self.n_head = d_model, n_layer, n_head
        self.hd = d_model // n_head
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.norm1 = nn.ModuleList([nn.RMSNorm(d_model) for _ in range(n_layer)])
        self.norm2 = nn.ModuleList([nn.RMSNorm(d_model) for _ in range(n_layer)])
        self.qkv = nn.ModuleList([nn.Linear(d_model, 3 * d_model, bias=False) for _ in range(n_layer)])
        self.proj = nn.ModuleList([nn.Linear(d_model, d_model, bias=False) for _ in range(n_layer)])
        self.mlp = nn.ModuleList([nn.Sequential(nn.Linear(d_model, 2 * d_model, bias=False), nn.GELU(),
                                                nn.Linear(2 * d_model, d_model, bias=False))
                                  for _ in range(n_layer)])
        self.norm_f = nn.RMSNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.embedding.weight

    def _heads(self, x):  # (b, T, d) -> (b, H, T, hd)
        return x.view(x.shape[0], x.shape[1], self.n_head, self.hd).transpose(1, 2)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for i in range(self.n_layer):
            q, k, v = self.qkv[i](self.norm1[i](x)).chunk(3, dim=-1)
            a = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v), is_causal=True)
            x = x + self.proj[i](a.transpose(1, 2).reshape(x.shape))
            x = x + self.mlp[i](self.norm2[i](x))
        return self.lm_head(self.norm_f(x))

    def allocate_cache(self, batch, max_len, device, dtype):
        return torch.zeros(self.n_layer, 2, batch, self.n_head, max_len, self.hd, device=device, dtype=dtype)

    def step(self, token_t, cache, pos):
        """token_t (b,) at position ``pos``; writes its keys/values into cache[..., pos, :]."""
        x = self.embedding(token_t)[:, None, :]
        for i in range(self.n_layer):
            q, k, v = self.qkv[i](self.norm1[i](x)).chunk(3, dim=-1)
            cache[i, 0, :, :, pos] = self._heads(k)[:, :, 0]
            cache[i, 1, :, :, pos] = self._heads(v)[:, :, 0]
            a = F.scaled_dot_product_attention(self._heads(q), cache[i, 0, :, :, :pos + 1],
                                               cache[i, 1, :, :, :pos + 1])
            x = x + self.proj[i](a.transpose(1, 2).reshape(x.shape))
            x = x + self.mlp[i](self.norm2[i](x))
        return self.lm_head(self.norm_f(x))[:, 0]


def bench_time_per_token(contexts, device, log, batch, d_model, n_layer, vocab=1024, n_head=4):
    """Time per generated token of a tiny Mamba LM (step mode) and a tiny attention LM (KV cache)."""
    from ssmbook.mamba import MambaLM

    torch.manual_seed(0)
    mamba = MambaLM(vocab, d_model, n_layer, d_state=16, backend="torch").to(device).eval()
    attn = TinyAttentionLM(vocab, d_model, n_layer, n_head).to(device).eval()
    # Correctness first: step-by-step decoding equals the full forward pass, for both models.
    toks = torch.randint(0, vocab, (2, 9), device=device)
    with torch.no_grad():
        full_m, full_a = mamba(toks), attn(toks)
        st = mamba.allocate_state(2)
        cache = attn.allocate_cache(2, 9, device, torch.float32)
        for t in range(9):
            lm, st = mamba.step(toks[:, t], st)
            la = attn.step(toks[:, t], cache, t)
            torch.testing.assert_close(lm, full_m[:, t], rtol=1e-3, atol=1e-3)
            torch.testing.assert_close(la, full_a[:, t], rtol=1e-3, atol=1e-3)
    out = {"config": dict(batch=batch, d_model=d_model, n_layer=n_layer, vocab=vocab, n_head=n_head,
                          mamba_params=sum(p.numel() for p in mamba.parameters()),
                          attention_params=sum(p.numel() for p in attn.parameters()),
                          dtype="float32", mode="eager PyTorch, one token per call"),
           "context": [], "mamba_ms": [], "attention_ms": [], "kv_cache_MB": [], "mamba_state_MB": [],
           "mamba_graph_ms": [], "attention_graph_ms": [], "graph_error": None}
    tok = torch.randint(0, vocab, (batch,), device=device)
    gen = torch.Generator(device=device).manual_seed(1)
    for T in contexts:
        with torch.no_grad():
            st = mamba.allocate_state(batch)
            # a state as after T tokens: random, not zeros. Drawn from a generator of its own: a
            # graph capture that fails below leaves the default CUDA generator unusable outside one
            for s in st:
                s.ssm.normal_(generator=gen)
                s.conv.normal_(generator=gen)
            cache = attn.allocate_cache(batch, T + 1, device, torch.float32).normal_(generator=gen)
            rm = bench_ms(lambda: mamba.step(tok, st), device)
            ra = bench_ms(lambda: attn.step(tok, cache, T), device)
            gm = ga = None
            if device == "cuda" and out["graph_error"] is None:
                # Eager decoding of a tiny model is bound by kernel launches; a CUDA graph removes
                # most of that overhead and shows the work itself.
                try:
                    gm = bench_ms(cuda_graphed(lambda: mamba.step(tok, st)), device)
                    ga = bench_ms(cuda_graphed(lambda: attn.step(tok, cache, T)), device)
                except Exception as e:
                    out["graph_error"] = f"{type(e).__name__}: {e}"[:300]
            out["mamba_graph_ms"].append(gm)
            out["attention_graph_ms"].append(ga)
        out["context"].append(T)
        out["mamba_ms"].append(rm)
        out["attention_ms"].append(ra)
        out["kv_cache_MB"].append(cache.numel() * 4 / 1e6)
        out["mamba_state_MB"].append(sum(s.ssm.numel() * 4 + s.conv.numel() * 4 for s in st) / 1e6)
        log(f"time per token, context {T}: mamba {rm:.3f} ms, attention {ra:.3f} ms"
            f" (CUDA graph: {gm} / {ga})")
        cache = None  # frees the KV cache before the next, longer one
    return out
