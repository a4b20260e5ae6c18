"""Shared pieces of the benchmark scripts: timer, floors, errors, inputs, the official-kernel loader.

Every script in this folder imports this module (it sits beside them, so ``import common`` works when
a script is run as ``python benchmarks/<script>.py``).  Nothing here changes global state except
:func:`ensure_importable`, which puts the repository on ``sys.path`` and registers ``kernels/`` as
``ssmbook.kernels`` on a machine where the package is not installed (the GPU machine).
"""
from __future__ import annotations

import datetime
import importlib.util
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
OFFICIAL_SRC = ROOT / ".device" / "mamba_ssm-2.3.2.post1"

#: The floating inputs of the selective scan, in the order gradients are reported.
GRAD_NAMES = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
#: Norm-wise tolerance of the check that gates timing (an implementation that misses it is not timed).
TOL = {torch.float32: 1e-3, torch.bfloat16: 3e-2, torch.float16: 1e-2}
#: Special-function (MUFU) results per clock per SM for compute capability 9.0 (CUDA C++ Programming
#: Guide, arithmetic-instruction throughput table: 16 for exp2/log2/sin/cos/rsqrt on cc 8.x and 9.0).
MUFU_PER_CLOCK_PER_SM = 16


def ensure_importable():
    """Make ``import ssmbook`` and ``import ssmbook.kernels`` work from a bare checkout."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import ssmbook

    if importlib.util.find_spec("ssmbook.kernels") is not None:
        return
    folder = ROOT / "kernels"
    spec = importlib.util.spec_from_file_location("ssmbook.kernels", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ssmbook.kernels"] = mod
    ssmbook.kernels = mod
    spec.loader.exec_module(mod)


def interpreting():
    """True when Triton runs through its interpreter (TRITON_INTERPRET=1: the CPU)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def dtype_of(name):
    """``"float32"`` / ``"bfloat16"`` / ``"float16"`` -> the torch dtype (ValueError otherwise)."""
    if name not in ("float32", "bfloat16", "float16", "float64"):
        raise ValueError(f"dtype must be float32, bfloat16, float16 or float64, got {name!r}")
    return getattr(torch, name)


# --- inputs ---
def make_inputs(batch, dim, L, N, dtype, with_z, device, seed=0, groups=0):
    """Fresh random inputs with Mamba's usual ranges (A < 0, softplus'd Δ of order 0.01 to 0.1).

    Drawn on ``device`` by a generator seeded with ``seed`` (never zeros); A, D and delta_bias stay
    float32, as in Mamba. ``delta_softplus`` is on.
    """
    g = torch.Generator(device=device).manual_seed(seed)

    def r(*shape, scale=1.0, shift=0.0):
        return torch.randn(*shape, generator=g, device=device) * scale + shift

    bc_shape = (batch, N, L) if groups == 0 else (batch, groups, N, L)
    u = r(batch, dim, L).to(dtype)
    delta = r(batch, dim, L, scale=0.5, shift=-3.0).to(dtype)
    A = -torch.rand(dim, N, generator=g, device=device).add(0.1).mul(N)
    B = r(*bc_shape).to(dtype)
    C = r(*bc_shape).to(dtype)
    D = r(dim)
    z = r(batch, dim, L).to(dtype) if with_z else None
    delta_bias = r(dim, scale=0.1)
    return dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias, delta_softplus=True)


def leaves_of(kw):
    """Copies of the floating inputs of ``kw`` that require gradients, by name."""
    return {k: kw[k].detach().clone().requires_grad_(True) for k in GRAD_NAMES if kw.get(k) is not None}


def outputs_and_grads(fn, kw, dout):
    """``fn(**kw)`` and the gradients of ``<out, dout>`` with respect to every floating input."""
    leaves = leaves_of(kw)
    out = fn(**{**kw, **leaves})
    grads = torch.autograd.grad(out, list(leaves.values()), dout.to(out.dtype))
    return out.detach(), dict(zip(leaves, grads))


# --- errors ---
def rel_err(out, ref):
    """‖out − ref‖ / ‖ref‖ (the absolute norm ‖out‖ when ref is exactly zero, e.g. dA at L = 1)."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    denom = ref.norm()
    return float((out - ref).norm() / denom) if denom > 0 else float(out.norm())


def entry_err(out, ref, floor=1e-3):
    """Largest per-entry error relative to the entry's own size: max_i |o_i − r_i| / (|r_i| + floor·max|r|).

    The floor (relative to the largest entry) keeps entries that are zero up to rounding from
    dividing by zero; 0 when both are all zero.
    """
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if out.shape != ref.shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, ref {tuple(ref.shape)}")
    scale = ref.abs() + floor * ref.abs().max()
    diff = (out - ref).abs()
    if float(scale.max()) == 0.0:
        return float(diff.max()) if diff.numel() else 0.0
    return float((diff / scale.clamp_min(torch.finfo(torch.float64).tiny)).max())


# --- timing ---
def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def bench_ms(fn, device, warmup_ms=25, rep_ms=100):
    """Median time of ``fn()`` in ms.

    On a GPU: ``triton.testing.do_bench`` (CUDA events, the L2 cache cleared before every run,
    ``warmup_ms`` of warm-up and ``rep_ms`` of timed runs); but a function whose one call, after a
    warm-up call, already takes longer than ``rep_ms`` (the torch paths and the oracle at large
    shapes, up to seconds) is timed over 3 calls, since do_bench would call it 5 more times just to
    estimate its time. On a CPU: one warm-up call, then the host clock over up to ``rep_ms`` of
    runs (at least 1, at most 5).
    """
    if str(device).startswith("cuda"):
        import triton

        fn()
        times = [_event_ms(fn)]
        if times[0] > rep_ms:
            times += [_event_ms(fn), _event_ms(fn)]
            return statistics.median(times)
        return float(triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))
    fn()
    times, t_end = [], time.perf_counter() + rep_ms * 1e-3
    while not times or (len(times) < 5 and time.perf_counter() < t_end):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _event_ms(fn):
    """One call of ``fn`` timed with CUDA events, in ms."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def cuda_graphed(fn):
    """Capture ``fn`` (a call on static inputs) in a CUDA graph, after three warm-up calls on a
    side stream as capture requires; return the graph's replay (a callable)."""
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


def copy_bandwidth(device):
    """Device-to-device copy of a large buffer: GB/s counting bytes read plus bytes written."""
    n = (1 << 30) if str(device).startswith("cuda") else (1 << 22)
    src = torch.randn(n // 4, device=device)
    dst = torch.empty_like(src)
    ms = bench_ms(lambda: dst.copy_(src), device)
    if not torch.equal(dst, src):
        raise AssertionError("the copy used to measure bandwidth is wrong")
    return {"bytes_moved": 2 * n, "median_ms": ms, "GBps": 2 * n / (ms * 1e-3) / 1e9}


def exp_throughput():
    """Exponentials per second of the GPU's special-function units: a Triton kernel of chained exp2
    in registers (one multiply-add and one ex2 per step, so those units are the bottleneck)."""
    import triton
    import triton.language as tl

    @triton.jit
    def exp_chain(x_ptr, STEPS: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + offs)
        for _ in range(STEPS):
            x = tl.exp2(x * -0.5 - 1.0)      # stays in (0.25, 0.5]: no overflow, no denormals
        tl.store(x_ptr + offs, x)

    block, steps = 1024, 1024
    n = block * torch.cuda.get_device_properties(0).multi_processor_count * 64
    x = torch.rand(n, device="cuda")
    ms = bench_ms(lambda: exp_chain[(n // block,)](x, STEPS=steps, BLOCK=block), "cuda")
    if not (bool(torch.isfinite(x).all()) and float(x.min()) > 0.2):
        raise AssertionError("the exp2 chain left its range")
    return {"exps": n * steps, "median_ms": ms, "per_s": n * steps / (ms * 1e-3)}


# --- floors ---
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


def floors_ms(batch, dim, L, N, dtype, with_z, backward, bandwidth_GBps, exp_per_s):
    """(HBM floor, exp floor) in ms; the exp floor is None without a measured exp rate."""
    hbm = min_bytes(batch, dim, L, N, dtype, with_z, backward) / (bandwidth_GBps * 1e9) * 1e3
    ex = exp_count(batch, dim, L, N, backward) / exp_per_s * 1e3 if exp_per_s else None
    return hbm, ex


# --- environment ---
def environment(device):
    """Date, versions, GPU name, SM count, clocks and driver (what the numbers depend on)."""
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host_cpu": platform.processor() or platform.machine(),
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except Exception as e:
        env["triton"] = f"unavailable: {e}"
    if str(device).startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, sm_count=p.multi_processor_count, cuda=torch.version.cuda,
                   gpu_memory_GiB=round(p.total_memory / 2**30, 1),
                   l2_bytes=getattr(p, "L2_cache_size", None), capability=f"{p.major}.{p.minor}")
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,clocks.sm",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30)
            drv, clk, clk_now = [s.strip() for s in q.stdout.strip().splitlines()[0].split(",")]
            env.update(driver=drv, sm_clock_max_MHz=float(clk), sm_clock_idle_MHz=float(clk_now))
        except Exception as e:
            env.update(driver=f"unknown ({e})", sm_clock_max_MHz=None)
    else:
        env["gpu"] = "cpu"
    return env


# --- the official kernel ---
def load_official(so=None, parts=None, src=OFFICIAL_SRC):
    """mamba_ssm's ``selective_scan_fn`` from a built extension, as ``(fn, None)``, or ``(None, why)``.

    ``so``: the built ``selective_scan_cuda*.so`` (or a build folder holding it); ``parts``: a folder
    of its gzip parts (``benchmarks/official.py build --split``), joined under /tmp first.
    """
    import official

    if not torch.cuda.is_available():
        return None, "needs a CUDA GPU (the official kernel is CUDA C++)"
    try:
        if so is not None and pathlib.Path(so).is_dir():
            so = next(pathlib.Path(so).glob("selective_scan_cuda*.so"), None)
        if so is None and parts is not None:
            so = official.join_parts(pathlib.Path(parts), pathlib.Path("/tmp/ssm_official/selective_scan_cuda.so"))
        if so is None or not pathlib.Path(so).exists():
            return None, "no built extension given"
        return official.load_selective_scan_fn(pathlib.Path(so), pathlib.Path(src)), None
    except Exception as e:
        return None, f"could not load: {type(e).__name__}: {e}"
