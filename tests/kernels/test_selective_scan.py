"""The Triton selective scan (ssmbook.kernels) against the float64 loop oracle.

On a CPU the kernels run under the Triton interpreter (tests/conftest.py switches it on), which is
slow: shapes stay tiny there. With CUDA the same tests run on the GPU, plus larger ``gpu`` ones.
Every test draws fresh random inputs; the seed is in the failure message.
"""
import dataclasses
import os
import random
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmbook.selective import random_inputs, selective_scan, selective_scan_ref

kernels = pytest.importorskip("ssmbook.kernels")
KernelConfig = kernels.KernelConfig
ks = kernels.selective_scan

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
GRAD_NAMES = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
# (rtol, atol) of the per-entry check: |g − g_ref| ≤ rtol·|g_ref| + atol·max|g_ref|. 16-bit inputs
# are rounded the same way for both sides; the kernels' 16-bit outputs carry 2^-8 to 2^-11 of
# rounding per entry.
TOL = {torch.float32: (1e-4, 1e-5), torch.float16: (1e-2, 1e-3), torch.bfloat16: (2e-2, 4e-3)}


def rel_err(actual, expected):
    """max |actual − expected| / max |expected| (expected in float64); 0 when both are all zero."""
    diff = (actual.double().cpu() - expected.double().cpu()).abs().max().item()
    scale = expected.double().abs().max().item()
    return diff / scale if scale > 0 else diff


def assert_close_per_entry(actual, expected, rtol, atol, what):
    """Entry by entry, |actual − expected| ≤ rtol·|expected| + atol·max|expected|.

    Each entry is held to its own size (rtol), with a floor (atol, relative to the largest entry)
    for entries that are zero up to rounding: a norm-relative check would let a small entry be
    wrong by several times its size. An all-zero expected tensor must be matched exactly."""
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    assert a.shape == e.shape, f"{what}: shape {tuple(a.shape)}, expected {tuple(e.shape)}"
    assert torch.isfinite(a).all(), f"{what}: {int((~torch.isfinite(a)).sum())} entries not finite"
    bound = rtol * e.abs() + atol * e.abs().max()
    diff = (a - e).abs()
    bad = diff > bound
    if bad.any():
        ratio = torch.where(bad, diff / bound.clamp_min(1e-300), torch.zeros_like(diff))
        i = tuple(int(k) for k in torch.unravel_index(ratio.argmax(), ratio.shape))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {e.numel()} entries off (rtol {rtol:g}, atol {atol:g}); "
            f"worst at {i}: {a[i].item():.6e} vs {e[i].item():.6e}, |diff| {diff[i].item():.2e} > "
            f"{bound[i].item():.2e} (max |expected| {e.abs().max().item():.2e})")


#: Regimes of the inputs: "moderate" (``random_inputs``), "underflow" (δ ≈ 3, A ≤ −8: every
#: exp(δA) between about 1e-3 and 1e-40, so h_t ≈ b_t) and "unit" (δ ≈ 0.003: exp(δA) ≈ 1, the
#: state keeps nearly all of its past).
REGIMES = ("moderate", "underflow", "unit")


def _apply_regime(kw, regime, seed):
    if regime == "moderate":
        return kw
    g = torch.Generator().manual_seed(seed + 7)
    delta, A = kw["delta"], kw["A"]
    centre = 3.0 if regime == "underflow" else -6.0
    raw = centre + torch.randn(delta.shape, generator=g, dtype=torch.float64)
    if not kw["delta_softplus"]:                 # δ is used as given: make it a positive step
        raw = torch.nn.functional.softplus(raw)
    if kw["delta_bias"] is not None:             # the bias shifts δ by at most 0.2
        raw = raw - kw["delta_bias"].double().cpu()[:, None]
    kw["delta"] = raw.to(dtype=delta.dtype, device=delta.device)
    if regime == "underflow":
        A_new = -(8.0 + 8.0 * torch.rand(A.shape, generator=g, dtype=torch.float64))
        kw["A"] = A_new.to(dtype=A.dtype, device=A.device)
    return kw


def run_and_compare(batch, dim, L, N, groups, options, dtype=torch.float32, block_t=None,
                    block_d=None, check_grads=True, regime="moderate", config=None):
    seed = random.randrange(2**31)
    D, z, bias, softplus = options
    kw = random_inputs(batch, dim, L, N, groups, D=D, z=z, delta_bias=bias, delta_softplus=softplus,
                       dtype=dtype, device=DEVICE, seed=seed)
    kw = _apply_regime(kw, regime, seed)
    rtol, atol = TOL[dtype]
    names = [n for n in GRAD_NAMES if kw[n] is not None]
    for n in names:
        kw[n].requires_grad_(True)
    out, last = kernels.selective_scan_triton(**kw, return_last_state=True, block_t=block_t,
                                              block_d=block_d, config=config)
    assert out.dtype == dtype and out.shape == (batch, dim, L)
    assert last.dtype == torch.float32 and last.shape == (batch, dim, N)

    # The oracle sees exactly the same (rounded) numbers, upcast to float64, on the CPU.
    kw64 = {k: (v.detach().double().cpu().requires_grad_(True) if isinstance(v, torch.Tensor) else v)
            for k, v in kw.items()}
    out64, last64 = selective_scan_ref(**kw64, return_last_state=True)
    where = f"(seed {seed}, shape {(batch, dim, L, N, groups)}, options {options}, {dtype}, {regime})"
    assert_close_per_entry(out, out64, rtol, atol, f"output {where}")
    assert_close_per_entry(last, last64, *TOL[torch.float32], f"last state {where}")
    if not check_grads:
        return
    # The upstream gradient is rounded to the input dtype first, so both sides see the same one.
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
    grads = torch.autograd.grad(out, [kw[n] for n in names], g.to(DEVICE))
    grads64 = torch.autograd.grad(out64, [kw64[n] for n in names], g.double())
    for n, gr, gr64 in zip(names, grads, grads64):
        assert gr.shape == kw[n].shape and gr.dtype == kw[n].dtype, n
        assert_close_per_entry(gr, gr64, rtol, atol, f"gradient of {n} {where}")


# (batch, dim, L, N, groups, block_t): L = 1, L not a multiple of the chunk, odd N, several
# chunks, the shared (groups = 0) and grouped layouts, one group per channel, N = 256.
SHAPES = [
    (1, 1, 1, 1, 0, None),
    (2, 3, 1, 5, 0, None),
    (2, 3, 9, 5, 0, 4),
    (2, 4, 33, 3, 2, 8),
    (1, 4, 17, 5, 4, 4),
    (1, 2, 32, 4, 0, 8),
    (2, 3, 33, 2, 0, None),
]
# (D, z, delta_bias, delta_softplus): each option on and off at least once.
OPTIONS = [(True, True, True, True), (False, False, False, False), (True, False, False, True),
           (False, True, True, False)]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "".join("DzbS"[i] if v else "-"
                                                                 for i, v in enumerate(o)))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_all_gradients_match_oracle(shape, options):
    *dims, block_t = shape
    run_and_compare(*dims, options, block_t=block_t)


def test_large_state_is_masked_not_padded():
    # N = 200 is padded to 256 lanes inside the kernel; the 56 extra lanes must not leak in.
    run_and_compare(1, 2, 9, 200, 0, OPTIONS[0], block_t=8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 9, 5, 0, 4), (1, 4, 17, 3, 2, 8)], ids=str)
def test_half_precision_inputs(shape, dtype):
    *dims, block_t = shape
    run_and_compare(*dims, OPTIONS[0], dtype=dtype, block_t=block_t)


@pytest.mark.parametrize("block_d", [1, 2])
def test_channel_block_sizes_agree(block_d):
    # Several channels per program must give the same result as one.
    run_and_compare(2, 4, 10, 3, 0, OPTIONS[0], block_t=4, block_d=block_d)


def test_selective_scan_dispatches_to_triton():
    kw = random_inputs(2, 3, 7, 4, device=DEVICE, seed=random.randrange(2**31))
    a = selective_scan(**kw, backend="triton")
    b = kernels.selective_scan_triton(**kw)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    if DEVICE == "cuda":
        torch.testing.assert_close(selective_scan(**kw), b, rtol=0, atol=0)  # "auto" on CUDA


def test_triton_rejects_float64_and_bad_blocks():
    kw = random_inputs(1, 4, 5, 3, groups=2, device=DEVICE, dtype=torch.float64, seed=0)
    with pytest.raises(ValueError, match="u must be float32, float16 or bfloat16"):
        selective_scan(**kw, backend="triton")
    kw = random_inputs(1, 4, 5, 3, groups=2, device=DEVICE, seed=0)
    with pytest.raises(ValueError, match="block_d must divide dim // groups = 2"):
        kernels.selective_scan_triton(**kw, block_d=4)
    with pytest.raises(ValueError, match="powers of two"):
        kernels.selective_scan_triton(**kw, block_t=3)
    with pytest.raises(ValueError, match=r"A must have shape \(dim, N\)"):
        kernels.selective_scan_triton(**{**kw, "A": kw["A"][:3]})


def test_cpu_tensors_without_interpreter_are_refused(monkeypatch):
    monkeypatch.setattr(ks.common, "interpreting", lambda: False)
    kw = random_inputs(1, 2, 3, 2, seed=0)
    with pytest.raises(ValueError, match="u must be a CUDA tensor for the compiled Triton kernels"):
        kernels.selective_scan_triton(**kw)
    kw = random_inputs(1, 2, 3, 2, seed=0, dtype=torch.float64)
    with pytest.raises(ValueError, match="u must be float32, float16 or bfloat16"):
        kernels.selective_scan_triton(**kw)


def test_choose_blocks_respects_groups_and_budget():
    for dim, groups in [(6, 3), (12, 4), (64, 1), (5, 1), (48, 2)]:
        for N in (1, 5, 16, 256):
            bd, bt, bn = kernels.choose_blocks(dim, 100, N, groups)
            assert bn >= N and bn & (bn - 1) == 0
            assert bd * bt * bn <= max(ks.TILE_BUDGET, bt * bn)
            if groups > 1:
                assert (dim // groups) % bd == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is for machines without CUDA")
def test_importing_kernels_switches_on_the_interpreter():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = "import os, ssmbook.kernels; print(os.environ.get('TRITON_INTERPRET'))"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "1"


@settings(max_examples=6, deadline=None)
@given(batch=st.integers(1, 2), dim=st.integers(1, 4), L=st.integers(1, 24), N=st.integers(1, 6),
       groups=st.sampled_from([0, 1, "dim"]), options=st.sampled_from(OPTIONS),
       block_t=st.sampled_from([None, 2, 4, 8]))
def test_random_shapes_match_oracle(batch, dim, L, N, groups, options, block_t):
    G = dim if groups == "dim" else groups
    run_and_compare(batch, dim, L, N, G, options, block_t=block_t)


# ---- KernelConfig: the launch choices, passed explicitly to each call ---------------------------


def test_kernel_config_defaults_and_derived_configs():
    cfg = KernelConfig()
    assert dataclasses.asdict(cfg) == dict(
        forward="auto", loop_block_d=None, unroll=None, fwd_warps=None, bwd_warps=2,
        backward="auto", bwd_loop_block_d=None, bwd_unroll=None, bwd_loop_t=None, packed_bc=None,
        cache_hints=None, segments=None, bwd_segments=None)
    loop = dataclasses.replace(cfg, forward="loop", unroll=4)
    assert (loop.forward, loop.unroll, cfg.forward, cfg.unroll) == ("loop", 4, "auto", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.forward = "loop"
    with pytest.raises(ValueError, match="unroll must be a power of two"):
        dataclasses.replace(cfg, unroll=6)        # a derived config is checked too


@pytest.mark.parametrize("field, value", [
    ("forward", "fast"), ("backward", None), ("loop_block_d", 0), ("unroll", 2.0), ("fwd_warps", 3),
    ("bwd_warps", True), ("bwd_loop_block_d", -2), ("bwd_unroll", "4"), ("bwd_loop_t", 12),
    ("packed_bc", 1), ("cache_hints", "yes"), ("segments", 0), ("segments", 2.5),
    ("bwd_segments", 0), ("bwd_segments", False)])
def test_kernel_config_rejects_each_bad_field_by_name(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must be .*, got {value!r}"):
        KernelConfig(**{field: value})


def test_config_must_be_a_kernel_config():
    kw = random_inputs(1, 2, 3, 2, seed=0)
    with pytest.raises(TypeError, match="config must be a KernelConfig or None, got dict"):
        kernels.selective_scan_triton(**kw, config=dict(forward="loop"))


@pytest.mark.parametrize("forward, kernel", [("loop", "recurrent_fwd_kernel"),
                                             ("chunked", "chunk_fwd_kernel")])
def test_kernel_config_picks_the_launch(forward, kernel):
    # Recorded launches (nothing runs): the config's forward picks the kernel, its unroll and
    # segments reach the loop kernel's constexprs; a default config leaves them to the rules.
    from ssmbook.kernels import targets

    kw = random_inputs(1, 4, 64, 4, seed=0)
    log = []
    with targets._recording(log):
        kernels.selective_scan_triton(**kw, config=KernelConfig(forward=forward, unroll=2, segments=1))
    assert [name for name, *_ in log] == [kernel]
    if forward == "loop":
        assert log[0][3]["UNROLL"] == 2 and log[0][3]["SEGMENTED"] is False
        log = []
        with targets._recording(log):
            kernels.selective_scan_triton(**random_inputs(1, 4, 128, 4, seed=0),
                                          config=KernelConfig(forward="loop"))
        # the rules: 16 steps per iteration (float32, N <= 16) and 2 segments of 64 steps (the
        # shortest the rule makes), so a summary launch comes first
        assert [meta["SUMMARY"] for *_, meta in log] == [True, False]
        assert all(meta["UNROLL"] == 16 and meta["SEGMENTED"] for *_, meta in log)


def test_default_forward_follows_the_gradient_below_4096_channels():
    # Recorded launches: with few channels, an inference call of 8 segments' length or more takes
    # the loop forward in segments (summary launch first), and a call whose inputs need a gradient
    # the chunked forward (then the backward of the rules).
    from ssmbook.kernels import targets

    for grad, kernel in [(False, "recurrent_fwd_kernel"), (True, "chunk_fwd_kernel")]:
        kw = random_inputs(1, 4, 512, 4, seed=0)
        for key in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias"):
            kw[key] = kw[key].detach().requires_grad_(grad)
        log = []
        with targets._recording(log):
            kernels.selective_scan_triton(**kw)
        names = [name for name, *_ in log]
        assert names[-1] == kernel, names
        if not grad:
            assert [meta["SUMMARY"] for *_, meta in log] == [True, False]
            assert log[0][3]["CHECKPOINTS"] is False


# ---- GPU only: realistic sizes -------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(2, 64, 1000, 16, 0, None), (2, 32, 4100, 16, 4, None),
                                   (1, 16, 300, 64, 2, None), (1, 8, 129, 256, 0, None),
                                   (3, 24, 2049, 7, 3, None)], ids=str)
def test_gpu_sizes(shape, dtype):
    *dims, block_t = shape
    run_and_compare(*dims, OPTIONS[0], dtype=dtype, block_t=block_t)


@pytest.mark.gpu
@pytest.mark.parametrize("options", OPTIONS[1:], ids=str)
def test_gpu_options(options):
    run_and_compare(2, 48, 777, 16, 0, options)


def test_sections_cover_the_chunked_kernels():
    # The chapters show the kernels part by part with ssmbook.show(kernel, section=title): the
    # parts of ssmbook.sections put together are the whole source, each titled and not empty.
    import inspect

    import ssmbook

    for kern in (ks.chunk_fwd_kernel, ks.chunk_bwd_kernel):
        sections = ssmbook.sections(kern)
        assert "".join(code for _, code in sections) == inspect.getsource(kern.fn)
        assert sections[0][0] == "signature" and len(sections) >= 6
        assert all(title and code.strip() for title, code in sections)
    titles = [t for t, _ in ssmbook.sections(ks.chunk_fwd_kernel)]
    assert any("Solve the recurrence inside the chunk" in t for t in titles)
    pytest.importorskip("IPython")  # show() returns an IPython Markdown object
    for title in titles:
        assert ssmbook.show(ks.chunk_fwd_kernel, section=title).data.startswith("```python")


# ---- The recurrent forward kernel (a channel per thread, walking time) and the kernel choice ----


@pytest.mark.parametrize("options", OPTIONS[:2], ids=lambda o: "".join("DzbS"[i] if v else "-"
                                                                     for i, v in enumerate(o)))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_loop_forward_matches_oracle(shape, options):
    # Force the loop kernel (small problems pick the chunked one): forward, last state, and the
    # gradients, which the backward computes from the loop kernel's checkpoints.
    *dims, block_t = shape
    run_and_compare(*dims, options, block_t=block_t, config=KernelConfig(forward="loop"))


@pytest.mark.parametrize("unroll", [1, 2, 8])
@pytest.mark.parametrize("loop_block_d", [None, 1, 2])
def test_loop_forward_unroll_and_block_sizes(unroll, loop_block_d):
    # L = 11 is not a multiple of the unroll nor of the chunk; 4 groups of 2 channels; N = 5 odd.
    config = KernelConfig(forward="loop", unroll=unroll, loop_block_d=loop_block_d)
    run_and_compare(2, 8, 11, 5, 4, OPTIONS[0], block_t=4, config=config)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_loop_forward_half_precision(dtype):
    run_and_compare(2, 3, 9, 16, 0, OPTIONS[0], dtype=dtype, block_t=4, config=KernelConfig(forward="loop"))


def test_loop_and_chunked_forward_agree():
    # The two forward kernels on the same inputs: same outputs and checkpoints up to rounding.
    kw = random_inputs(2, 5, 37, 7, groups=0, device=DEVICE, seed=random.randrange(2**31))
    res = {}
    for method in ("loop", "chunked"):
        res[method] = kernels.selective_scan_triton(**kw, return_last_state=True, block_t=8,
                                                    config=KernelConfig(forward=method))
    for a, b in zip(res["loop"], res["chunked"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_loop_configuration_errors():
    kw = random_inputs(1, 4, 5, 3, groups=2, device=DEVICE, seed=0)
    with pytest.raises(ValueError, match="loop_block_d must divide dim // groups = 2"):
        kernels.selective_scan_triton(**kw, config=KernelConfig(forward="loop", loop_block_d=4))
    with pytest.raises(ValueError, match="loop_block_d must be a power of two"):
        KernelConfig(forward="loop", loop_block_d=3)
    with pytest.raises(ValueError, match="loop_block_d must be a power of two"):
        ks.choose_loop_block(12, block_d=3)
    with pytest.raises(ValueError, match="unroll must be a power of two"):
        KernelConfig(forward="loop", unroll=3)
    with pytest.raises(ValueError, match="forward must be 'auto', 'loop' or 'chunked'"):
        KernelConfig(forward="parallel")


def test_choose_forward_and_loop_block():
    assert ks.choose_forward(8, 2048, 16) == "loop"       # enough channels for one warp per scheduler
    assert ks.choose_forward(2, 2048, 16) == "loop"       # 4096 channels: loop, in segments (NOTES 3-4)
    assert ks.choose_forward(2, 1024, 16) == "chunked"    # fewer: the chunked kernel parallelises time
    # ... but an inference forward long enough for 8 segments of 64 steps takes the loop, split
    assert ks.choose_forward(2, 1024, 16, 512, inference=True) == "loop"
    assert ks.choose_forward(2, 1024, 16, 511, inference=True) == "chunked"
    assert ks.choose_forward(2, 1024, 16, 4096) == "chunked"  # with a gradient to come: chunked
    assert ks.choose_forward(1, 4, 16, 100000, inference=True) == "loop"
    assert ks.choose_forward(1, 4, 64) == "loop"          # N = 64: the chunked kernel is far slower
    assert ks.choose_forward(8, 2048, 256) == "chunked"   # 256 states do not fit in one thread
    assert ks.choose_loop_block(2048) == (32, 1)
    assert ks.choose_loop_block(12, groups=4) == (1, 1)   # 3 channels per group: one per program
    assert ks.choose_loop_block(48, groups=3) == (16, 1)


#: Small random problems for the loop kernels: shared, single-group and per-channel B/C, every
#: option set, and the chunk length and unroll factor drawn too (None: the choosers decide).
random_loop_problems = given(
    batch=st.integers(1, 2), dim=st.integers(1, 4), L=st.integers(1, 24), N=st.integers(1, 6),
    groups=st.sampled_from([0, 1, "dim"]), options=st.sampled_from(OPTIONS),
    block_t=st.sampled_from([None, 2, 4, 8]), unroll=st.sampled_from([None, 1, 2, 4]))


@settings(max_examples=4, deadline=None)
@random_loop_problems
def test_random_shapes_loop_forward(batch, dim, L, N, groups, options, block_t, unroll):
    G = dim if groups == "dim" else groups
    run_and_compare(batch, dim, L, N, G, options, block_t=block_t,
                    config=KernelConfig(forward="loop", unroll=unroll))


# GPU shapes of the loop kernels: shared B/C, groups, odd N, N = 32 and 64, L past a power of two
GPU_LOOP_SHAPES = [(2, 64, 1000, 16, 0, None), (1, 16, 300, 64, 2, None), (3, 24, 2049, 7, 3, None),
                   (1, 32, 777, 32, 0, None)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", GPU_LOOP_SHAPES, ids=str)
def test_gpu_loop_forward(shape, dtype):
    *dims, block_t = shape
    run_and_compare(*dims, OPTIONS[0], dtype=dtype, block_t=block_t, config=KernelConfig(forward="loop"))


def test_sections_cover_the_recurrent_kernels():
    import inspect

    import ssmbook

    for kern, at_least in ((ks.recurrent_fwd_kernel, 5), (ks.recurrent_bwd_kernel, 4)):
        sections = ssmbook.sections(kern)
        assert "".join(code for _, code in sections) == inspect.getsource(kern.fn)
        assert sections[0][0] == "signature" and len(sections) >= at_least
        assert all(title and code.strip() for title, code in sections)
    titles = [t for t, _ in ssmbook.sections(ks.recurrent_fwd_kernel)]
    assert any("one step at a time" in t for t in titles)
    titles = [t for t, _ in ssmbook.sections(ks.recurrent_bwd_kernel)]
    assert any("Walk the chunk backwards" in t for t in titles)


# ---- Tiles and channel blocks chosen per shape and dtype (measured on the H100) --------------


def test_tuned_tiles_respect_groups_and_length():
    assert ks.choose_blocks(2048, 4096, 64, batch=8, dtype=torch.float32) == (4, 8, 64)
    assert ks.choose_blocks(2048, 4096, 64, batch=8, dtype=torch.bfloat16, has_z=True) == \
        ks.choose_blocks(2048, 4096, 64)                   # bf16 with z: the (8, 4) tile was slower
    assert ks.choose_blocks(2048, 16384, 16, batch=2, dtype=torch.float32) == (4, 32, 16)
    assert ks.choose_blocks(2048, 4096, 16, batch=8, dtype=torch.bfloat16) == (2, 16, 16)
    # batch 8, fp32, N = 16: the generic rule (measured best there)
    assert ks.choose_blocks(2048, 4096, 16, batch=8, dtype=torch.float32) == ks.choose_blocks(2048, 4096, 16)
    for dim, groups in [(6, 3), (12, 4), (64, 1), (5, 1), (48, 2), (2, 2)]:
        for N in (1, 5, 16, 40, 64, 256):
            for L in (1, 3, 100):
                bd, bt, bn = ks.choose_blocks(dim, L, N, groups, batch=2, dtype=torch.float16)
                assert bn >= N and bn & (bn - 1) == 0 and bt & (bt - 1) == 0 and bd & (bd - 1) == 0
                assert bt <= max(triton_next_pow2(L), 2)
                if groups > 1:
                    assert (dim // groups) % bd == 0


def triton_next_pow2(n):
    return 1 << (n - 1).bit_length()


def test_tuned_loop_blocks():
    assert ks.choose_loop_block(2048, batch=2, block_n=16, dtype=torch.float32) == (16, 1)
    assert ks.choose_segments(2, 2048, 16, 512, 16, torch.float32) == 8    # 4096 channels: split
    assert ks.choose_segments(8, 2048, 16, 128, 16, torch.float32) == 1    # 16384: no split
    assert ks.choose_segments(8, 2048, 8, 128, 64, torch.float32) == 1
    assert ks.choose_loop_block(2048, batch=8, block_n=16, dtype=torch.float32) == (16, 1)
    assert ks.choose_loop_block(2048, batch=8, block_n=16, dtype=torch.bfloat16) == (8, 1)
    assert ks.choose_loop_block(2048, batch=8, block_n=64, dtype=torch.float32) == (8, 1)
    assert ks.choose_loop_block(2048, batch=8, block_n=64, dtype=torch.bfloat16) == (16, 1)
    assert ks.choose_unroll(64, torch.float32) == 4 and ks.choose_unroll(64, torch.bfloat16) == 4
    assert ks.choose_loop_block(12, groups=4, batch=8, block_n=16, dtype=torch.float32) == (1, 1)
    assert ks.choose_loop_block(3, batch=1, block_n=16, dtype=torch.float32) == (4, 1)


@pytest.mark.parametrize("forward", ["loop", "chunked"])
@pytest.mark.parametrize("shape", [(1, 8, 13, 40, 2), (2, 6, 37, 16, 3), (1, 4, 1, 33, 0)], ids=str)
def test_tuned_tiles_match_oracle(shape, forward):
    # No block override: the tuned tiles of choose_blocks (N in (16, 64] -> (8, 4); few channels,
    # N <= 16 -> (32, 4)) and the tuned loop blocks, forward and all gradients against the oracle.
    run_and_compare(*shape, OPTIONS[0], config=KernelConfig(forward=forward))


def test_tuned_tiles_half_precision():
    # 16-bit inputs with many channels take the (16, 2) backward tile and 8-channel loop blocks.
    bd, bt, _ = kernels.choose_blocks(4096, 40, 16, batch=2, dtype=torch.bfloat16)
    assert (bd, bt) == (2, 16)
    run_and_compare(1, 8, 21, 16, 0, OPTIONS[0], dtype=torch.bfloat16, block_t=16, block_d=2)


# ---- The recurrent backward (a channel per thread, states recomputed per chunk) ----------------


def _loop_backward(**fields):
    """A KernelConfig forcing the loop backward, with ``fields`` set too."""
    return KernelConfig(backward="loop", **fields)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "".join("DzbS"[i] if v else "-"
                                                                 for i, v in enumerate(o)))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_loop_backward_matches_oracle(shape, options):
    # Small problems pick the chunked backward: force the loop one. Every gradient against the
    # float64 oracle, at L = 1, L not a multiple of the chunk, odd N, grouped and shared B/C.
    config = _loop_backward()
    *dims, block_t = shape
    run_and_compare(*dims, options, block_t=block_t, config=config)


@pytest.mark.parametrize("unroll", [1, 2, 8])
@pytest.mark.parametrize("block_d", [1, 2, 4])
def test_loop_backward_unroll_and_block_sizes(unroll, block_d):
    # 12 channels in 3 groups of 4: blocks of 1, 2 and 4 channels, and 37 steps in chunks of 8
    # with unrolled iterations of 1, 2 and 8 steps (the last chunk is partly past L).
    config = _loop_backward(bwd_unroll=unroll, bwd_loop_block_d=block_d)
    run_and_compare(2, 12, 37, 5, 3, OPTIONS[0], block_t=8, config=config)


@pytest.mark.parametrize("forward", ["loop", "chunked"])
def test_loop_backward_after_either_forward(forward):
    # The backward reads the checkpoints of whichever forward ran; its default chunk is its own.
    config = _loop_backward(forward=forward)
    run_and_compare(1, 6, 70, 16, 0, OPTIONS[0], config=config)
    run_and_compare(2, 4, 45, 33, 2, OPTIONS[3], config=config)


@pytest.mark.parametrize("regime", ["moderate", "underflow", "unit"])
@pytest.mark.parametrize("segments", [2, 3, 50])
@pytest.mark.parametrize("shape", [(2, 4, 37, 5, 2, 4), (1, 3, 33, 16, 0, 8), (1, 2, 9, 3, 0, 4)],
                         ids=str)
def test_segmented_loop_backward_matches_oracle(shape, segments, regime):
    # The loop backward split into segments (50: more than there are chunks, so one per chunk):
    # every gradient, per entry, against the float64 oracle, with every option on, where the decays
    # underflow and where they are about 1 (the carries composed across segments matter most).
    *dims, block_t = shape
    config = _loop_backward(bwd_segments=segments)
    run_and_compare(*dims, OPTIONS[0], block_t=block_t, regime=regime, config=config)


@pytest.mark.parametrize("options", OPTIONS[1:], ids=lambda o: "".join("DzbS"[i] if v else "-"
                                                                     for i, v in enumerate(o)))
def test_segmented_loop_backward_options(options):
    # the remaining combinations of D, z, bias and softplus, after the chunked forward too
    run_and_compare(2, 6, 45, 7, 3, options, block_t=8,
                    config=_loop_backward(bwd_segments=4, forward="chunked"))


def _backwards_agree(L, block_t, configs):
    """Same inputs (batch 2, dim 8, N 6, two groups, every option on) through each KernelConfig of
    ``configs``: every gradient agrees with the first config's to float32 rounding, entry by entry."""
    kw = random_inputs(2, 8, L, 6, groups=2, D=True, z=True, delta_bias=True, delta_softplus=True,
                       device=DEVICE, seed=random.randrange(2**31))
    names = [n for n in GRAD_NAMES if kw[n] is not None]
    g = torch.randn(2, 8, L, device=DEVICE)
    results = []
    for config in configs:
        leaves = {n: kw[n].detach().clone().requires_grad_(True) for n in names}
        out = kernels.selective_scan_triton(**{**kw, **leaves}, block_t=block_t, config=config)
        results.append(torch.autograd.grad(out, list(leaves.values()), g))
    for other in results[1:]:
        for n, a, b in zip(names, results[0], other):
            assert_close_per_entry(a, b, *TOL[torch.float32], f"gradient of {n}")


def test_segmented_loop_backward_agrees_with_unsplit():
    # same inputs, 1 and 5 segments: the gradients agree to float32 rounding, entry by entry
    _backwards_agree(77, 8, [_loop_backward(bwd_segments=s) for s in (1, 5)])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_loop_backward_half_precision(dtype):
    config = _loop_backward()
    run_and_compare(1, 4, 17, 3, 2, OPTIONS[0], dtype=dtype, block_t=8, config=config)


def test_loop_and_chunked_backward_agree():
    # Same inputs, both backward kernels: the gradients agree to float32 rounding.
    _backwards_agree(50, 16, [KernelConfig(backward=b) for b in ("loop", "chunked")])


def test_loop_backward_configuration_errors():
    with pytest.raises(ValueError, match="backward must be 'auto', 'loop' or 'chunked'"):
        KernelConfig(backward="sideways")
    big = random_inputs(1, 2, 5, 65, device=DEVICE, seed=0)
    with pytest.raises(ValueError, match="the loop backward holds at most 64 states"):
        kernels.selective_scan_triton(**big, config=KernelConfig(backward="loop"))
    with pytest.raises(ValueError, match="bwd_loop_block_d must be a power of two"):
        ks.choose_loop_backward(12, 1, 16, block_d=3)
    with pytest.raises(ValueError, match="bwd_loop_block_d must divide dim // groups = 2"):
        ks.choose_loop_backward(4, 2, 16, block_d=4)
    with pytest.raises(ValueError, match="bwd_unroll must be a power of two"):
        ks.choose_loop_backward(4, 1, 16, unroll=3)
    with pytest.raises(ValueError, match="bwd_unroll must be a power of two"):
        KernelConfig(bwd_unroll=3)


def test_choose_backward_and_loop_backward_blocks():
    assert ks.choose_backward(8, 2048, 16) == "loop"
    assert ks.choose_backward(2, 2048, 16) == "chunked"   # 4096 channels: too few warps at N = 16
    assert ks.choose_backward(2, 2048, 64) == "loop"
    assert ks.choose_backward(1, 8, 16) == "chunked"      # too few channels to fill the GPU
    assert ks.choose_backward(8, 2048, 256) == "chunked"  # 256 states do not fit in one thread
    # below 8192 channels at N = 16: the loop where it is split into segments, i.e. L long enough
    assert ks.choose_backward(2, 2048, 16, L=16384) == "loop"
    assert ks.choose_backward(2, 2048, 16, L=512) == "loop"        # 32 chunks: 2 segments
    assert ks.choose_backward(2, 2048, 16, L=384) == "chunked"     # 24 chunks: unsplit
    assert ks.choose_backward(1, 1536, 16, L=256) == "chunked"
    assert ks.choose_loop_backward(2048, 1, 16) == (16, 4, 1)
    assert ks.choose_loop_backward(2048, 1, 64) == (8, 1, 1)
    assert ks.choose_loop_backward(12, 4, 16) == (1, 4, 1)  # 3 channels per group: one per program
    assert ks.choose_loop_backward(5, 1, 8) == (8, 4, 1)


@settings(max_examples=4, deadline=None)
@random_loop_problems
def test_random_shapes_loop_backward(batch, dim, L, N, groups, options, block_t, unroll):
    G = dim if groups == "dim" else groups
    run_and_compare(batch, dim, L, N, G, options, block_t=block_t,
                    config=KernelConfig(backward="loop", bwd_unroll=unroll))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", GPU_LOOP_SHAPES, ids=str)
def test_gpu_loop_backward(shape, dtype):
    config = _loop_backward()
    *dims, block_t = shape
    run_and_compare(*dims, OPTIONS[0], dtype=dtype, block_t=block_t, config=config)


@pytest.mark.parametrize("forward", ["loop", "chunked"])
@pytest.mark.parametrize("packed", [True, False])
def test_forward_without_gradients_skips_checkpoints(forward, packed, monkeypatch):
    # No input needs a gradient: the forward stores only the last state, and output and last state
    # still match the oracle (L not a multiple of the chunk, odd N, z and D on).
    config = KernelConfig(forward=forward, packed_bc=packed)
    seed = random.randrange(2**31)
    kw = random_inputs(2, 6, 23, 5, groups=2, D=True, z=True, delta_bias=True, delta_softplus=True,
                       device=DEVICE, seed=seed)
    calls = []
    real = ks.interface._forward
    monkeypatch.setattr(ks.interface, "_forward",
                        lambda *a, **k: calls.append(k["checkpoints"]) or real(*a, **k))
    out, last = kernels.selective_scan_triton(**kw, return_last_state=True, block_t=4, config=config)
    kw64 = {k: (v.double().cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    out64, last64 = selective_scan_ref(**kw64, return_last_state=True)
    assert calls == [False], calls
    assert_close_per_entry(out, out64, *TOL[torch.float32], f"output (seed {seed})")
    assert_close_per_entry(last, last64, *TOL[torch.float32], f"last state (seed {seed})")
    kw["u"].requires_grad_(True)                     # now a gradient can be asked for
    kernels.selective_scan_triton(**kw, block_t=4, config=config)
    assert calls == [False, True]


@pytest.mark.parametrize("options", OPTIONS[:2], ids=lambda o: "".join("DzbS"[i] if v else "-"
                                                                     for i, v in enumerate(o)))
@pytest.mark.parametrize("shape", [(2, 4, 33, 3, 2, 8), (2, 3, 33, 2, 0, None), (1, 2, 9, 20, 0, 4)],
                         ids=str)
def test_loop_forward_packed_and_separate_rows(shape, options):
    # The loop forward reads B and C either packed (L, N, 2) or as two (L, N) tensors, with or
    # without eviction hints on its loads: all four right.
    *dims, block_t = shape
    for packed, hints in [(True, False), (False, True), (True, True), (False, False)]:
        config = KernelConfig(forward="loop", packed_bc=packed, cache_hints=hints)
        run_and_compare(*dims, options, block_t=block_t, config=config)


@pytest.mark.parametrize("segments", [2, 3, 7])
@pytest.mark.parametrize("options", OPTIONS[:3], ids=lambda o: "".join("DzbS"[i] if v else "-"
                                                                     for i, v in enumerate(o)))
def test_segmented_loop_forward_matches_oracle(segments, options):
    # The sequence split into segments walked by separate programs, each starting from the state
    # the earlier segments' summaries compose to: output, last state and (through the checkpoints
    # it writes) every gradient. 37 steps in chunks of 4: 10 chunks, so 7 segments cannot all be
    # equal and the last chunk is partly past L.
    run_and_compare(2, 6, 37, 5, 2, options, block_t=4,
                    config=KernelConfig(forward="loop", segments=segments))


@pytest.mark.parametrize("packed", [True, False])
def test_segmented_loop_forward_without_gradients(packed):
    # No checkpoints: only the last segment writes the final state.
    config = KernelConfig(forward="loop", segments=4, packed_bc=packed)
    seed = random.randrange(2**31)
    kw = random_inputs(1, 4, 50, 16, D=True, z=True, delta_bias=True, delta_softplus=True,
                       device=DEVICE, seed=seed)
    out, last = kernels.selective_scan_triton(**kw, return_last_state=True, block_t=8, config=config)
    kw64 = {k: (v.double().cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    out64, last64 = selective_scan_ref(**kw64, return_last_state=True)
    assert_close_per_entry(out, out64, *TOL[torch.float32], f"output (seed {seed})")
    assert_close_per_entry(last, last64, *TOL[torch.float32], f"last state (seed {seed})")


def test_choose_segments_gives_a_positive_count():
    for batch, dim, n_chunks in [(8, 2048, 128), (2, 2048, 512), (1, 4, 1)]:
        s = ks.choose_segments(batch, dim, 16, n_chunks, 16, torch.float32)
        assert isinstance(s, int) and 1 <= s <= n_chunks


def test_choose_segments_falls_with_the_channels():
    # along batch at dim 2048 the count falls step by step, not from 8 straight to 1 (the cliff
    # of NOTES section 9), and never splits a short sequence into more segments than chunks
    counts = [ks.choose_segments(b, 2048, 16, 512, 16, torch.float32) for b in range(1, 9)]
    assert counts == [16, 8, 5, 4, 1, 1, 1, 1], counts
    # fewer channels, more segments, up to 32; but none shorter than 64 steps
    assert ks.choose_segments(1, 1536, 16, 256, 16, torch.float32) == 21
    assert ks.choose_segments(1, 768, 16, 256, 16, torch.bfloat16) == 32
    assert ks.choose_segments(1, 1536, 16, 16, 16, torch.float32) == 4      # L = 256
    assert ks.choose_segments(1, 1536, 16, 8, 16, torch.float32, 32) == 4   # 32-step chunks
    assert ks.choose_segments(1, 1536, 16, 3, 16, torch.float32) == 1       # L = 48: one segment
    assert ks.choose_segments(1, 1536, 16, 12, 16, torch.float32) == 3
    assert ks.choose_segments(1, 16, 16, 2, 16, torch.float32, 128) == 2    # never above n_chunks
    # N = 64: the loop backward's rule, up to about 4096 programs and only 8 segments or more
    assert ks.choose_segments(1, 768, 8, 1024, 64, torch.float32) == 32      # 96 programs
    assert ks.choose_segments(2, 1536, 16, 512, 64, torch.bfloat16) == 21   # 192
    assert ks.choose_segments(4, 3072, 16, 188, 64, torch.bfloat16) == 1    # 768: no split
    assert ks.choose_segments(1, 768, 8, 40, 64, torch.float32) == 2        # 16 chunks a segment


def test_choose_bwd_segments():
    # along batch at dim 2048, N = 16 (programs of 16 channels), L = 2048 (128 chunks of 16): the
    # count falls with the programs, capped by 16 chunks a segment, then no split from 5 on
    counts = [ks.choose_bwd_segments(b, 2048, 16, 128) for b in range(1, 7)]
    assert counts == [8, 8, 8, 8, 1, 1], counts
    assert ks.choose_bwd_segments(2, 2048, 16, 1024) == 16      # 256 programs, L = 16384
    assert ks.choose_bwd_segments(1, 768, 8, 1024) == 32        # 96 programs: at most 32
    assert ks.choose_bwd_segments(1, 1536, 16, 16) == 1         # L = 256: segments too short
    assert ks.choose_bwd_segments(8, 2048, 16, 256) == 1        # 1024 programs: no split
    for batch, dim, block_d, n_chunks in [(1, 4, 4, 1), (1, 1, 1, 31), (3, 5120, 8, 7)]:
        s = ks.choose_bwd_segments(batch, dim, block_d, n_chunks)
        assert isinstance(s, int) and 1 <= s <= max(n_chunks, 1)


def test_default_backward_is_segmented_where_the_rule_says(monkeypatch):
    # With no config, a short-channel long sequence takes the loop backward in segments (the
    # rule's count reaches the launch through the config) and every gradient matches the oracle.
    seen = []
    real = ks.interface.recurrent_backward

    def spy(*args, **kw):
        seen.append(args[13].bwd_segments)   # the config argument
        return real(*args, **kw)

    monkeypatch.setattr(ks.interface, "recurrent_backward", spy)
    # 1 x 4 channels, N = 5 (programs of 4 channels), 600 steps: 38 chunks of 16, so 2 segments
    run_and_compare(1, 4, 600, 5, 0, OPTIONS[0])
    assert seen == [2]


# ---- Every kernel pair the choosers can pick, per entry, where exp(δA) underflows or is ≈ 1 ----

# (batch, dim, L, N, groups, block_t): L = 1; L not a multiple of the chunk (several chunks, the
# last one partial); odd N; grouped B/C; N = 16 (the chunked backward's default at chapter sizes)
# with its own tile choice
REGIME_SHAPES = [
    (1, 2, 1, 3, 0, None),
    (2, 4, 19, 5, 2, 8),
    (1, 3, 13, 7, 0, 4),
    (1, 4, 40, 16, 0, None),
]


@pytest.mark.parametrize("regime", ["underflow", "unit"])
@pytest.mark.parametrize("backward", ["chunked", "loop"])
@pytest.mark.parametrize("forward", ["chunked", "loop"])
@pytest.mark.parametrize("shape", REGIME_SHAPES, ids=str)
def test_extreme_regimes_every_gradient_per_entry(shape, forward, backward, regime):
    # The output, the last state and all eight gradients, each entry against the float64 oracle
    # relative to its own size: in the underflow regime the gradient of A is a sum of tiny terms
    # a_t h_{t-1} λ_t δ_t, which must not be swamped by the rounding of the O(1) states.
    *dims, block_t = shape
    options = OPTIONS[0] if dims[2] % 2 else OPTIONS[3]   # with and without softplus
    run_and_compare(*dims, options, block_t=block_t, regime=regime,
                    config=KernelConfig(forward=forward, backward=backward))


@pytest.mark.parametrize("regime", ["underflow", "unit"])
@pytest.mark.parametrize("backward", ["chunked", "loop"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_extreme_regimes_half_precision(dtype, backward, regime):
    run_and_compare(1, 4, 21, 5, 2, OPTIONS[0], dtype=dtype, block_t=8, regime=regime,
                    config=KernelConfig(backward=backward))


# ---- GPUs older than Ampere (Colab's T4, sm_75): no bfloat16, no cache-policy hints --------------


def _pretend_gpu(monkeypatch, name, capability):
    """Make the kernels' capability checks (and the setup line) see a CUDA GPU of this name and
    capability. Only ``gpu_of`` is replaced (where the checks call it, and where the setup line
    does): on a real GPU, Triton must still compile for the GPU that is there."""
    fake = lambda device: (name, capability)  # noqa: E731
    monkeypatch.setattr(ks.common, "gpu_of", fake)
    monkeypatch.setattr(ks, "gpu_of", fake)


def test_bfloat16_on_a_t4_is_refused_with_what_to_use(monkeypatch):
    _pretend_gpu(monkeypatch, "Tesla T4", (7, 5))
    kw = random_inputs(1, 2, 5, 3, dtype=torch.bfloat16, device=DEVICE, seed=0)
    with pytest.raises(ValueError, match=r"u has dtype torch\.bfloat16, which the Triton kernels "
                       r"do not take on Tesla T4 \(sm_75.*pass float16 or float32 inputs, or use "
                       r"backend='torch'"):
        kernels.selective_scan_triton(**kw)
    # float16 and float32 still take the kernel (here through the interpreter)
    run_and_compare(1, 2, 5, 3, 0, OPTIONS[0], dtype=torch.float16)
    run_and_compare(1, 2, 5, 3, 0, OPTIONS[0])


def test_bfloat16_from_ampere_on(monkeypatch):
    _pretend_gpu(monkeypatch, "NVIDIA A100-SXM4-40GB", (8, 0))
    run_and_compare(1, 2, 5, 3, 0, OPTIONS[0], dtype=torch.bfloat16)


@pytest.mark.parametrize("capability, hints", [((7, 5), ""), ((8, 0), "evict_last"),
                                               ((9, 0), "evict_last")])
def test_cache_hints_only_from_ampere_on(capability, hints, monkeypatch):
    # The loop forward's default eviction hints (float32, N <= 16) are cache policies from
    # sm_80 on; below, they are left out. Recorded launches: nothing runs.
    from ssmbook.kernels import targets

    _pretend_gpu(monkeypatch, "GPU", capability)
    log = []
    kw = random_inputs(8, 2048, 16, 16, seed=0)
    with targets._recording(log):
        kernels.selective_scan_triton(**kw, config=KernelConfig(forward="loop"))
    (name, _, _, meta), = log
    assert name == "recurrent_fwd_kernel" and meta["EV_ROWS"] == hints


@pytest.mark.parametrize("name, capability, line", [
    ("Tesla T4", (7, 5),
     "cuda: Tesla T4 (sm_75) — selective scan: Triton kernel, float32/float16 (no bfloat16 on this GPU)"),
    ("NVIDIA H200", (9, 0),
     "cuda: NVIDIA H200 (sm_90) — selective scan: Triton kernel, float32/float16/bfloat16"),
])
def test_setup_line_names_the_path(name, capability, line, monkeypatch):
    from ssmbook.notebook import describe_device

    _pretend_gpu(monkeypatch, name, capability)
    assert describe_device(torch.device("cuda", 0)) == line


def test_setup_line_on_cpu(capsys):
    import ssmbook
    from ssmbook.notebook import describe_device

    assert kernels.gpu_of("cpu") is None
    assert kernels.triton_dtypes("cpu") == (torch.float32, torch.float16, torch.bfloat16)
    assert describe_device(torch.device("cpu")) == "cpu — selective scan: PyTorch path"
    ssmbook.setup(device="cpu")
    assert "· cpu — selective scan: PyTorch path ·" in capsys.readouterr().out


@pytest.mark.gpu
def test_auto_backend_routes_bfloat16_to_torch_below_ampere(monkeypatch):
    # On a real GPU, pretend it is a T4: backend="auto" warns and takes the torch path (same
    # numbers as backend="torch"); backend="triton" refuses.
    _pretend_gpu(monkeypatch, "Tesla T4", (7, 5))
    kw = random_inputs(1, 4, 9, 3, dtype=torch.bfloat16, device="cuda", seed=0)
    with pytest.warns(UserWarning, match="no bfloat16 on this GPU"):
        out = selective_scan(**kw)
    torch.testing.assert_close(out, selective_scan(**kw, backend="torch"), rtol=0, atol=0)
    with pytest.raises(ValueError, match="do not take on Tesla T4"):
        selective_scan(**kw, backend="triton")
