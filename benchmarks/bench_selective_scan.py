"""Benchmark the selective scan (chapter 6): Triton kernel, official CUDA kernel, torch paths.

    # on an H100 (the official extension built by benchmarks/official.py, carried as .so parts):
    python benchmarks/bench_selective_scan.py --size full --official-parts .device/so
    # anywhere, in seconds (what tests/test_benchmarks.py runs, so that the script cannot rot):
    python benchmarks/bench_selective_scan.py --size tiny --out /tmp/cpu.json

What it measures, for every shape (batch, dim, L, N), dtype and with/without z, forward and
forward+backward:

* ``triton``: ``ssmbook.selective.selective_scan(backend="triton")`` (kernels/);
* ``official``: mamba_ssm's ``selective_scan_fn`` (its CUDA extension, built for sm_90 from the sdist);
* ``torch``: ``selective_scan(backend="torch")``, the torch path (all steps discretised at once, then a
  short fused loop over time);
* ``torch_parallel_scan``: ``ssmbook.scan.linear_recurrence`` on the expanded (batch, dim, N, L) problem
  (skipped where its intermediates would not fit in memory);
* ``oracle``: ``selective_scan_ref``, the loop over time (one step per iteration).

Every implementation is first compared with the float64 oracle (on a slice of channels, over the full
length; the channels are independent) and its error recorded; a failing one is not timed. Times are
medians of device-event timings after a warm-up, with the L2 cache flushed before each run, on fresh
random inputs (Mamba's ranges, never zeros).  Beside them: the measured device-to-device copy bandwidth,
the HBM floor (the fewest bytes that must move / that bandwidth) and the exp-unit floor
(B·D·L·N exponentials / the rate of the special-function units): the assumptions are written into the
JSON.  Finally the time per generated token of a tiny Mamba LM (recurrent step mode) and a tiny
attention LM with a KV cache, against the context length.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))



def ensure_kernels_importable():
    """``kernels/`` is installed as ``ssmbook.kernels`` by ``pip install -e .``; on a machine where the
    repository is only on ``sys.path`` (the GPU machine), register the folder under that name."""
    import importlib.util

    import ssmbook

    if importlib.util.find_spec("ssmbook.kernels") is not None:
        return
    folder = HERE.parent / "kernels"
    spec = importlib.util.spec_from_file_location("ssmbook.kernels", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ssmbook.kernels"] = mod
    ssmbook.kernels = mod
    spec.loader.exec_module(mod)


import official  # noqa: E402  (benchmarks/official.py)
from ssmbook import scan as S  # noqa: E402
from ssmbook.selective import selective_scan, selective_scan_ref  # noqa: E402
from ssmbook.benchmarks import RESULTS  # noqa: E402  (the package data chapter 6 reads)

SIZES = {
    # (batch, dim, L, N)
    "full": [(8, 2048, 1024, 16), (8, 2048, 4096, 16), (2, 2048, 16384, 16), (8, 2048, 4096, 64)],
    "small": [(4, 1024, 1024, 16), (4, 1024, 4096, 16)],
    "tiny": [(1, 8, 1, 4), (2, 8, 37, 5)],
}
TOKEN_CONTEXTS = {
    "full": [128, 512, 2048, 8192, 32768],
    "small": [128, 1024, 8192],
    "tiny": [4, 16],
}
# Special-function (MUFU) results per clock per SM for compute capability 9.0 (the CUDA C++
# Programming Guide's throughput table: 16 for exp2/log2/sin/cos/rsqrt on cc 8.x and 9.0).
MUFU_PER_CLOCK_PER_SM = 16

TOL = {torch.float32: 1e-3, torch.bfloat16: 3e-2, torch.float16: 1e-2}


# --------------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------------
def environment(device):
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host_cpu": platform.processor() or platform.machine(),
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except Exception as e:  # pragma: no cover
        env["triton"] = f"unavailable: {e}"
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, sm_count=p.multi_processor_count, cuda=torch.version.cuda,
                   gpu_memory_GiB=round(p.total_memory / 2**30, 1),
                   l2_bytes=getattr(p, "L2_cache_size", None), capability=f"{p.major}.{p.minor}")
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,clocks.sm",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30)
            drv, clk, clk_now = [s.strip() for s in q.stdout.strip().splitlines()[0].split(",")]
            env.update(driver=drv, sm_clock_max_MHz=float(clk), sm_clock_idle_MHz=float(clk_now))
        except Exception as e:  # pragma: no cover
            env.update(driver=f"unknown ({e})", sm_clock_max_MHz=None)
    else:
        env["gpu"] = "cpu"
    return env


def slug(name):
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------
class Timer:
    """Median of device-event timings (host clock on a CPU), warm-up first, L2 flushed before each run."""

    def __init__(self, device, budget_s=0.4, max_reps=50, min_reps=3):
        self.device = device
        self.budget_s, self.max_reps, self.min_reps = budget_s, max_reps, min_reps
        self.flush = None
        if device == "cuda":
            l2 = torch.cuda.get_device_properties(0).L2_cache_size or 50 * 2**20
            self.flush = torch.empty(2 * l2 // 4, dtype=torch.int32, device="cuda")

    def _one(self, fn):
        if self.device == "cuda":
            self.flush.zero_()
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    def __call__(self, fn):
        t0 = time.perf_counter()
        fn()  # warm-up: compilation, autotuning, allocator
        if self.device == "cuda":
            torch.cuda.synchronize()
        if time.perf_counter() - t0 > 5 * self.budget_s:  # very slow (the loop oracle): one timed run
            t = self._one(fn)
            return {"median_ms": t, "min_ms": t, "max_ms": t, "n": 1}
        first = self._one(fn)
        if first > 1e3 * self.budget_s * 4:  # very slow (the loop oracle at long L): one more run only
            times = [first, self._one(fn)]
        else:
            n = int(min(self.max_reps, max(self.min_reps, self.budget_s * 1e3 / max(first, 1e-3))))
            times = [self._one(fn) for _ in range(n)]
        return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
                "n": len(times)}


def copy_bandwidth(device, timer):
    """Device-to-device copy of a large buffer: (bytes read + bytes written) / median time."""
    n = (1 << 30) if device == "cuda" else (1 << 24)
    src = torch.randn(n // 4, device=device)
    dst = torch.empty_like(src)
    r = timer(lambda: dst.copy_(src))
    torch.testing.assert_close(dst, src)
    moved = 2 * n
    del src, dst
    return {"bytes_moved": moved, "GBps": moved / (r["median_ms"] * 1e-3) / 1e9, **r}


def exp_throughput(timer):
    """Measured exponentials per second: a Triton kernel that does nothing but chained exp2 in registers
    (one multiply-add and one ex2 per step, so the special-function units are the bottleneck)."""
    import triton
    import triton.language as tl

    @triton.jit
    def _exp_chain(x_ptr, STEPS: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + offs)
        for _ in range(STEPS):
            x = tl.exp2(x * -0.5 - 1.0)      # stays in (0.25, 0.5]: no overflow, no denormals
        tl.store(x_ptr + offs, x)

    block, steps = 1024, 1024
    n = block * torch.cuda.get_device_properties(0).multi_processor_count * 64
    x = torch.rand(n, device="cuda")
    r = timer(lambda: _exp_chain[(n // block,)](x, STEPS=steps, BLOCK=block))
    assert bool(torch.isfinite(x).all()) and float(x.min()) > 0.2
    exps = n * steps
    return {"exps": exps, "per_s": exps / (r["median_ms"] * 1e-3), **r}


# --------------------------------------------------------------------------------------------------
# The problem and its floors
# --------------------------------------------------------------------------------------------------
def min_bytes(batch, dim, L, N, dtype, with_z, backward):
    """Fewest bytes that must cross HBM: every input read once, every output written once.

    Forward: u, delta (and z) (batch·dim·L each), B, C (batch·N·L each) read, out written; A, D,
    delta_bias are negligible.  Forward+backward adds: dout, u, delta, (z), B, C read again and
    du, ddelta, (dz), dB, dC written (the states are recomputed on chip, not stored: a floor).
    """
    e = torch.empty((), dtype=dtype).element_size()
    per_seq = batch * dim * L * e
    bc = batch * N * L * e
    fwd = per_seq * (2 + with_z) + 2 * bc + per_seq
    if not backward:
        return fwd
    bwd = per_seq * (1 + 2 + with_z) + 2 * bc + per_seq * (2 + with_z) + 2 * bc
    return fwd + bwd


def exp_count(batch, dim, L, N, backward):
    """exp(δ A) for every (b, d, t, n); the backward pass recomputes them (its floor counts them once more)."""
    return batch * dim * L * N * (2 if backward else 1)


def make_inputs(batch, dim, L, N, dtype, with_z, device, seed):
    return official.random_problem(batch, dim, L, N, dtype, with_z, device, seed=seed)


GRAD_NAMES = ["u", "delta", "A", "B", "C", "D", "delta_bias"]


def _slice_channels(kw, dsel):
    """The problem restricted to batch element 0 and channels dsel (channels are independent)."""
    out = dict(kw)
    for k in ("u", "delta", "z"):
        if kw.get(k) is not None:
            out[k] = kw[k][:1, dsel]
    for k in ("B", "C"):
        out[k] = kw[k][:1]
    for k in ("A", "D", "delta_bias"):
        out[k] = kw[k][dsel]
    return out


# --------------------------------------------------------------------------------------------------
# Implementations
# --------------------------------------------------------------------------------------------------
def torch_parallel_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The selective scan as ssmbook.scan.linear_recurrence on the expanded (batch, dim, N, L) problem."""
    cdt = torch.float32 if u.dtype != torch.float64 else torch.float64
    dt = delta.to(cdt)
    if delta_bias is not None:
        dt = dt + delta_bias.to(cdt)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    uc = u.to(cdt)
    a = torch.exp(dt[:, :, None, :] * A.to(cdt)[None, :, :, None])                 # (b, d, N, L)
    b = (dt * uc)[:, :, None, :] * B.to(cdt)[:, None, :, :]
    h = S.linear_recurrence(a, b)
    y = torch.einsum("bdnl,bnl->bdl", h, C.to(cdt))
    if D is not None:
        y = y + uc * D.to(cdt)[:, None]
    if z is not None:
        y = y * F.silu(z.to(cdt))
    return y.to(u.dtype)


def peak_bytes(name, batch, dim, L, N, backward):
    """Rough peak memory of the torch implementations, in units of one float32 (b, d, N, L) tensor:
    torch_parallel_scan keeps ~8 alive in the forward, and autograd about two per Hillis–Steele level;
    the torch path materialises Ā, B̄u and the stacked states (~4 alive, ~6 with autograd's saved
    tensors); the loop oracle saves ~6 (b, d, N) tensors per time step.  The fused kernels need none."""
    t = batch * dim * N * L * 4
    levels = max(1, math.ceil(math.log2(max(L, 2))))
    if name == "torch_parallel_scan":
        return t * (2 * levels + 8 if backward else 8)
    if name == "torch":
        return t * (6 if backward else 4)
    if name == "oracle":
        return t * 6 if backward else 0
    return 0


def implementations(device, official_fn, want):
    impls = {}
    if "triton" in want:
        impls["triton"] = functools.partial(selective_scan, backend="triton")
    if "official" in want:
        impls["official"] = official_fn
    if "torch" in want:
        impls["torch"] = functools.partial(selective_scan, backend="torch")
    if "torch_parallel_scan" in want:
        impls["torch_parallel_scan"] = torch_parallel_scan
    if "oracle" in want:
        impls["oracle"] = selective_scan_ref
    return impls


def rel_err(out, ref):
    return official.rel_err(out, ref)


def check_forward(fn, kw, ref_slice, dsel):
    """Relative error of fn's output on the checked channel slice against the float64 oracle."""
    out = fn(**kw)
    if out.shape != kw["u"].shape or out.dtype != kw["u"].dtype:
        raise AssertionError(f"output has shape {tuple(out.shape)} {out.dtype}, expected "
                             f"{tuple(kw['u'].shape)} {kw['u'].dtype}")
    return rel_err(out[:1, dsel], ref_slice)


def grad_check(fn, device, dtype):
    """Gradients of fn against autograd through the float64 oracle, on a small awkward problem."""
    kw = make_inputs(2, 12, 77, 5, dtype, True, device, seed=11)
    x = {k: (v.detach().clone().requires_grad_(k in GRAD_NAMES) if isinstance(v, torch.Tensor) else v)
         for k, v in kw.items()}
    x64 = {k: (v.detach().double().cpu().requires_grad_(k in GRAD_NAMES) if isinstance(v, torch.Tensor)
               else v) for k, v in kw.items()}
    out = fn(**x)
    ref = selective_scan_ref(**x64)
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g = torch.autograd.grad(out, [x[k] for k in GRAD_NAMES], dout.to(out.device, out.dtype))
    g64 = torch.autograd.grad(ref, [x64[k] for k in GRAD_NAMES], dout)
    return max(rel_err(a, b) for a, b in zip(g, g64))


# --------------------------------------------------------------------------------------------------
# Selective-scan benchmark
# --------------------------------------------------------------------------------------------------
def bench_scan(shapes, dtypes, device, timer, impls, bandwidth, exp_rate, log, mem_limit, check_channels,
               oracle_bwd_max_L=1024, records=None, save=None):
    records = [] if records is None else records
    grad_ok = {}
    for name, fn in impls.items():
        for dtype in dtypes:
            try:
                err = grad_check(fn, device, dtype)
                grad_ok[(name, dtype)] = (err < TOL[dtype], err)
            except Exception as e:  # noqa: BLE001
                grad_ok[(name, dtype)] = (False, f"{type(e).__name__}: {e}")
            log(f"gradient check {name} {dtype}: {grad_ok[(name, dtype)]}")

    seed = 0
    for (batch, dim, L, N) in shapes:
        for dtype in dtypes:
            for with_z in (False, True):
                seed += 1
                kw = make_inputs(batch, dim, L, N, dtype, with_z, device, seed)
                dsel = slice(0, min(dim, check_channels))
                ref = selective_scan_ref(**{k: (v.double() if isinstance(v, torch.Tensor) else v)
                                            for k, v in _slice_channels(kw, dsel).items()})
                for backward in (False, True):
                    rec = dict(batch=batch, dim=dim, L=L, N=N, dtype=str(dtype).replace("torch.", ""),
                               z=with_z, pass_="fwd+bwd" if backward else "fwd")
                    rec["bytes_min"] = min_bytes(batch, dim, L, N, dtype, with_z, backward)
                    rec["exps"] = exp_count(batch, dim, L, N, backward)
                    rec["hbm_floor_ms"] = rec["bytes_min"] / (bandwidth * 1e9) * 1e3
                    rec["exp_floor_ms"] = rec["exps"] / exp_rate * 1e3 if exp_rate else None
                    rec["results"] = {}
                    for name, fn in impls.items():
                        res = {}
                        need = peak_bytes(name, batch, dim, L, N, backward)
                        if name == "oracle" and backward and L > oracle_bwd_max_L:
                            res["skipped"] = (f"loop oracle forward+backward timed up to L = {oracle_bwd_max_L} "
                                              "only (seconds per run beyond)")
                        elif mem_limit is not None and need > mem_limit:
                            res["skipped"] = (f"needs ~{need / 2**30:.0f} GiB of intermediates "
                                              f"(> {mem_limit / 2**30:.0f} GiB allowed)")
                        elif backward and not grad_ok[(name, dtype)][0]:
                            res["skipped"] = f"gradient check failed: {grad_ok[(name, dtype)][1]}"
                        else:
                            try:
                                if not backward:
                                    res["rel_err"] = check_forward(fn, kw, ref, dsel)
                                    if not res["rel_err"] < TOL[dtype]:
                                        raise AssertionError(f"relative error {res['rel_err']:.2e} "
                                                             f">= {TOL[dtype]:g} against the float64 oracle")
                                    res.update(timer(lambda: fn(**kw)))
                                else:
                                    prev = rec_prev["results"].get(name, {})
                                    if "median_ms" not in prev:
                                        raise AssertionError("forward was not timed: "
                                                             + prev.get("skipped", "unknown"))
                                    res["grad_rel_err_small"] = grad_ok[(name, dtype)][1]
                                    xg = {k: (v.detach().requires_grad_(k in GRAD_NAMES)
                                              if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
                                    dout = torch.randn_like(kw["u"])
                                    leaves = [xg[k] for k in GRAD_NAMES]

                                    def fwd_bwd():
                                        out = fn(**xg)
                                        torch.autograd.grad(out, leaves, dout, allow_unused=True)

                                    res.update(timer(fwd_bwd))
                            except Exception as e:  # noqa: BLE001
                                msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                                res = {"skipped": msg[:300]}
                                if "out of memory" in msg.lower() and device == "cuda":
                                    torch.cuda.empty_cache()
                        if "median_ms" in res:
                            res["GBps_effective"] = rec["bytes_min"] / (res["median_ms"] * 1e-3) / 1e9
                        rec["results"][name] = res
                    rec_prev = rec
                    records.append(rec)
                    log(summary_line(rec))
                    if save is not None:
                        save()
                del kw
                if device == "cuda":
                    torch.cuda.empty_cache()
    return records


def summary_line(rec):
    parts = [f"{rec['batch']}x{rec['dim']}x{rec['L']}x{rec['N']} {rec['dtype']:8s} z={int(rec['z'])} "
             f"{rec['pass_']:7s} floors hbm {rec['hbm_floor_ms']:.3f} exp "
             f"{(rec['exp_floor_ms'] or 0):.3f} |"]
    for name, r in rec["results"].items():
        parts.append(f"{name} {r['median_ms']:.3f}" if "median_ms" in r else f"{name} -")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------------
# Time per token: Mamba step mode vs attention with a KV cache
# --------------------------------------------------------------------------------------------------
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


def cuda_graphed(fn):
    """Capture fn (one decoding step, static inputs) in a CUDA graph; return its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def bench_time_per_token(contexts, device, timer, log, batch, d_model, n_layer, vocab=1024, n_head=4):
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
    for T in contexts:
        with torch.no_grad():
            st = mamba.allocate_state(batch)
            for s in st:  # a state as after T tokens: random, not zeros
                s.ssm.normal_()
                s.conv.normal_()
            cache = attn.allocate_cache(batch, T + 1, device, torch.float32).normal_()
            rm = timer(lambda: mamba.step(tok, st))
            ra = timer(lambda: attn.step(tok, cache, T))
            gm = ga = None
            if device == "cuda" and out["graph_error"] is None:
                # Eager decoding of a tiny model is bound by kernel launches; a CUDA graph removes
                # most of that overhead and shows the work itself.
                try:
                    gm = timer(cuda_graphed(lambda: mamba.step(tok, st)))["median_ms"]
                    ga = timer(cuda_graphed(lambda: attn.step(tok, cache, T)))["median_ms"]
                except Exception as e:  # noqa: BLE001
                    out["graph_error"] = f"{type(e).__name__}: {e}"[:300]
            out["mamba_graph_ms"].append(gm)
            out["attention_graph_ms"].append(ga)
        out["context"].append(T)
        out["mamba_ms"].append(rm["median_ms"])
        out["attention_ms"].append(ra["median_ms"])
        out["kv_cache_MB"].append(cache.numel() * 4 / 1e6)
        out["mamba_state_MB"].append(sum(s.ssm.numel() * 4 + s.conv.numel() * 4 for s in st) / 1e6)
        log(f"time per token, context {T}: mamba {rm['median_ms']:.3f} ms, attention {ra['median_ms']:.3f} ms"
            f" (CUDA graph: {gm} / {ga})")
        del cache
    return out


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------
def load_official(args, log):
    if not torch.cuda.is_available():
        return None, "needs a CUDA GPU (the official kernel is CUDA C++)"
    try:
        so = pathlib.Path(args.official_so) if args.official_so else None
        if so is None and args.official_parts:
            so = official.join_parts(pathlib.Path(args.official_parts), pathlib.Path("/tmp/ssm_official/selective_scan_cuda.so"))
        if so is None or not so.exists():
            return None, "no built extension given (--official-so or --official-parts)"
        fn = official.load_selective_scan_fn(so, pathlib.Path(args.official_src))
        return fn, None
    except Exception as e:  # noqa: BLE001
        log(traceback.format_exc())
        return None, f"could not load: {type(e).__name__}: {e}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="tiny")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--impls", default="triton,official,torch,torch_parallel_scan,oracle")
    ap.add_argument("--official-so", default=None)
    ap.add_argument("--official-parts", default=None, help="folder of selective_scan_cuda.so.part* (gzip)")
    ap.add_argument("--official-src", default=str(HERE.parent / ".device" / "mamba_ssm-2.3.2.post1"))
    ap.add_argument("--out", default=None, help="JSON path (default ssmbook/data/benchmarks/<gpu>.json, the package data chapter 6 reads)")
    ap.add_argument("--no-tokens", action="store_true", help="skip the time-per-token experiment")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed runs per measurement")
    args = ap.parse_args(argv)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    t_start = time.time()
    env = environment(device)
    log(f"environment: {json.dumps(env)}")
    budget = args.budget if args.budget is not None else (0.3 if device == "cuda" else 0.02)
    timer = Timer(device, budget_s=budget, max_reps=50 if device == "cuda" else 5,
                  min_reps=3 if device == "cuda" else 1)
    bw = copy_bandwidth(device, timer)
    log(f"copy bandwidth {bw['GBps']:.0f} GB/s")

    try:
        ensure_kernels_importable()
    except Exception as e:  # noqa: BLE001  (the Triton rows then record the import error)
        log(f"could not register kernels/ as ssmbook.kernels: {type(e).__name__}: {e}")
    want = [s.strip() for s in args.impls.split(",") if s.strip()]
    skipped = {}
    official_fn = None
    if "official" in want:
        official_fn, why = load_official(args, log)
        if official_fn is None:
            skipped["official"] = why
            want.remove("official")
    if "triton" in want and device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        skipped["triton"] = "CPU without TRITON_INTERPRET=1"
        want.remove("triton")
    impls = implementations(device, official_fn, want)

    exp_rate = None
    assumptions = {
        "bytes_min": min_bytes.__doc__.strip(),
        "hbm_floor": "bytes_min / measured device-to-device copy bandwidth (bytes read + written / time)",
        "exps": exp_count.__doc__.strip(),
    }
    exp_meas = None
    if device == "cuda":
        clock = env.get("sm_clock_max_MHz") or 1980.0
        exp_peak = env["sm_count"] * MUFU_PER_CLOCK_PER_SM * clock * 1e6
        try:
            exp_meas = exp_throughput(timer)
            log(f"exp throughput {exp_meas['per_s'] / 1e12:.2f}e12 per s (peak assumed {exp_peak / 1e12:.2f}e12)")
        except Exception as e:  # noqa: BLE001
            exp_meas = {"skipped": f"{type(e).__name__}: {e}"}
        exp_rate = exp_meas.get("per_s") or exp_peak
        assumptions["exp_peak"] = (f"{env['sm_count']} SMs x {MUFU_PER_CLOCK_PER_SM} ex2 results per clock per "
                                   f"SM (CUDA C++ Programming Guide throughput table, cc 9.0) x {clock:.0f} MHz "
                                   f"max SM clock = {exp_peak / 1e12:.2f}e12 per s")
        assumptions["exp_floor"] = (f"exps / {exp_rate / 1e12:.2f}e12 per s, the measured ex2 throughput "
                                    "(a Triton kernel of chained exp2; the assumed peak where the measurement "
                                    "failed); one ex2 per exp (exp(x) = ex2(x log2 e))")
    else:
        assumptions["exp_floor"] = "not computed on a CPU"
    assumptions["timing"] = ("median of CUDA-event timings (host clock on CPU) after one warm-up run, "
                             "L2 flushed (2x its size zeroed) before each run, fresh random inputs per "
                             "configuration; checked against the float64 oracle before timing")
    mem_limit = None
    if device == "cuda":
        mem_limit = int(0.6 * torch.cuda.get_device_properties(0).total_memory)

    dtypes = [getattr(torch, d.strip()) for d in args.dtypes.split(",") if d.strip()]
    out = pathlib.Path(args.out) if args.out else RESULTS / f"{slug(env['gpu'])}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"environment": env, "size": args.size, "copy_bandwidth": bw, "exp_throughput": exp_meas,
              "assumptions": assumptions,
              "implementations": list(impls), "skipped_implementations": skipped,
              "selective_scan": [], "time_per_token": None, "complete": False}

    def save():  # after every record, so that a run cut short still leaves its numbers
        result["wall_seconds"] = round(time.time() - t_start, 1)
        out.write_text(json.dumps(result, indent=1))

    if not args.no_tokens:  # first: short, and a run cut short by a time limit still has it
        cfg = dict(batch=16, d_model=256, n_layer=4) if args.size != "tiny" else dict(batch=2, d_model=16, n_layer=2)
        result["time_per_token"] = bench_time_per_token(TOKEN_CONTEXTS[args.size], device, timer, log, **cfg)
        save()
    bench_scan(SIZES[args.size], dtypes, device, timer, impls, bw["GBps"], exp_rate, log,
               mem_limit, check_channels=128, records=result["selective_scan"], save=save)
    result["complete"] = True
    save()
    log(f"wrote {out} in {result['wall_seconds']} s")
    return result


if __name__ == "__main__":
    main()
