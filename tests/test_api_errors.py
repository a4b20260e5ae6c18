"""Every public function and class of ``ssmbook`` meets bad input with a clear error.

``CASES`` maps each public callable (``module.name``) to a list of misuses ``(label, call, arg)``;
each call must raise a ``ValueError`` or ``TypeError`` whose message names ``arg`` as its
subject (``"<arg> must ..."``), so the error blames the argument that is wrong.  A public
callable missing from the table fails :func:`test_every_public_callable_has_cases`, so new API
cannot slip through without its misuse cases.  Callables that take no argument are listed in
``NO_ARGUMENTS``.  The walk runs per module (``-k hmm`` selects one) and counts each case as
clear, unclear (an error that does not name the argument, or of another type) or silent (no
error at all); :func:`test_counts_summary` prints the table of counts per module and in total,
and ``python tests/test_api_errors.py`` prints the same table.
"""
import functools
import pkgutil
import re

import numpy as np
import pytest
import sympy as sp
import torch

import ssmbook
from ssmbook import (adjoint, baselines, benchmarks, delta, derive, discretize, hmm, lm, mamba, mambaout, measure, rwkv, s4,
                     scan, selective, ssd, ssm, tasks, train)

MODULES = {m.__name__.split(".")[-1]: m for m in
           (adjoint, baselines, benchmarks, delta, derive, discretize, hmm, lm, mamba, mambaout, measure, rwkv, s4, scan,
            selective, ssd, ssm, tasks, train)}
# Modules whose misuse tables live elsewhere: the chapter helpers (notebook, plot), the sliders
# (tests/test_widgets.py) and the Triton kernels (tests/test_kernels.py).
ELSEWHERE = {"notebook", "plot", "widgets", "kernels"}

NO_ARGUMENTS = {"derive.symbols", "derive.zoh_scalar", "derive.discretization_rules",
                "mambaout.long_sequence_criterion"}


def public_callables(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")
                 and getattr(getattr(module, n), "__module__", None) == module.__name__]
    return sorted(n for n in names if callable(getattr(module, n)))


f32 = torch.float32


def T(*shape, dtype=f32, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def ids(*shape, high=5):
    return torch.randint(0, high, shape)


# small, valid objects the misuse cases start from --------------------------------------------
CASINO = hmm.dishonest_casino()
OBS = np.array([0, 1, 5, 2])
torch.manual_seed(0)
MBLOCK = mamba.MambaBlock(8, d_state=4, backend="torch")
MLM = mamba.MambaLM(11, 8, 1, d_state=4, backend="torch")
S4LM_ = mamba.S4LM(11, 8, 1, d_state=4)
S4L = s4.S4Layer(3, 4)
S4C = s4.S4Classifier(5, 2, d_model=8, d_state=4)
TM4 = rwkv.TimeMix(8)
TM6 = rwkv.TimeMix6(8, 2, decay_rank=4)
CMIX = rwkv.ChannelMix(8)
RBLK = rwkv.RWKVBlock(8)
RLM = rwkv.RWKVLM(11, 8, 1)
RLM6 = rwkv.RWKVLM(11, 8, 1, version=6, n_head=2)
TLM = baselines.TransformerLM(11, 8, 1, n_head=2, max_len=16)
GCNN = mambaout.GatedCNNBlock(8, kernel_size=3)
MHA = baselines.MultiHeadAttention(8, 2)
TBLK = baselines.TransformerBlock(8, 2)
VIT = mambaout.TinyViT(image_size=8, patch_size=2, dim=8, depth=1, heads=2)
TMO = mambaout.TinyMambaOut(dims=(8, 8))
DOWN = mambaout.Downsample(4, 8)
MMIX = mambaout.MambaMixerBlock(8, d_state=4)
CSSM = ssm.spring_mass_damper()
W, U = -torch.rand(3).log(), T(3)
K4, V4 = T(2, 7, 3), T(2, 7, 3, seed=1)
R6, LW6, K6, V6, U6 = T(2, 5, 2, 3), -torch.rand(2, 5, 2, 3), T(2, 5, 2, 3), T(2, 5, 2, 4), T(2, 3)
MNOSCAN = mambaout.MambaNoScanMixerBlock(8)
GOUT = T(2, 3, 5, seed=2)
QD, KD, VD = T(2, 2, 5, 3), T(2, 2, 5, 3, seed=1), T(2, 2, 5, 4, seed=2)
BETA, WD = torch.rand(2, 2, 5), torch.rand(2, 2, 5, 3) * 0.5 + 0.5
DNET = delta.DeltaNetBlock(8, n_heads=2, head_dim=4)
RLMD = lm.ResidualLM(11, 8, 1, lambda d: delta.DeltaNetBlock(d, n_heads=2, head_dim=4))
XS, AS, BS, CS = T(2, 5, 2, 3), -torch.rand(2, 5, 2), T(2, 5, 2, 4, seed=1), T(2, 5, 2, 4, seed=2)
XC, BC, CC = T(2, 2, 3, 2, 3), T(2, 2, 3, 2, 4, seed=1), T(2, 2, 3, 2, 4, seed=2)
AC = -torch.rand(2, 2, 2, 3)
STATES = T(2, 2, 2, 3, 4, seed=3)
M2B = ssd.Mamba2Block(8, d_state=4, head_dim=4, chunk=4)
M2LM = ssd.Mamba2LM(11, 8, 1, d_state=4, head_dim=4)
LAM, PT, BT, _V = s4.hippo_legs_dplr(4)
SEL = selective.random_inputs(2, 3, 5, 4, seed=0)
A2, B2, C2 = np.array([[0.9, 0.1], [0.0, 0.5]]), np.ones(2), np.array([1.0, -1.0])


def sel(**over):
    kw = dict(SEL)
    kw.pop("delta_softplus")
    kw.update(over)
    return kw


def _steps(p, q):
    return p + q


RUN = benchmarks.benchmark_results()[0]
REC = RUN["selective_scan"][0]


class _NotAxes:
    pass


class _FakeAxes:  # passes the Axes check, so that the case reaches the argument after it
    def plot(self, *a, **k):
        raise AssertionError("the bad argument should have been caught before drawing")

    set_xlabel = bar = axhline = plot


CASES = {
    # ---------------------------------------------------------------------------------- benchmarks
    "benchmarks.benchmark_results": [("device_only not a bool", lambda: benchmarks.benchmark_results(device_only="no"), "device_only")],
    "benchmarks.load_results": [("missing folder", lambda: benchmarks.load_results("/nonexistent/results"), "folder"),
                                ("device_only not a bool", lambda: benchmarks.load_results(device_only=1), "device_only")],
    "benchmarks.label": [("a list for run", lambda: benchmarks.label([RUN]), "run")],
    "benchmarks.records": [("unknown pass", lambda: benchmarks.records(RUN, "bwd"), "pass_"),
                           ("unknown dtype", lambda: benchmarks.records(RUN, "fwd", "fp8"), "dtype"),
                           ("N = 0", lambda: benchmarks.records(RUN, "fwd", N=0), "N"),
                           ("z not a bool", lambda: benchmarks.records(RUN, "fwd", z="yes"), "z"),
                           ("a record for run", lambda: benchmarks.records(REC), "run")],
    "benchmarks.median": [("unknown implementation", lambda: benchmarks.median(REC, "cuda"), "impl"),
                          ("a run for rec", lambda: benchmarks.median(RUN, "triton"), "rec")],
    "benchmarks.ratio_table": [("unknown num", lambda: benchmarks.ratio_table(RUN, "fast"), "num"),
                               ("unknown den", lambda: benchmarks.ratio_table(RUN, "triton", "cuda"), "den")],
    "benchmarks.markdown_ratio_table": [("unknown den", lambda: benchmarks.markdown_ratio_table(RUN, den="x"), "den"),
                                        ("None for run", lambda: benchmarks.markdown_ratio_table(None), "run")],
    "benchmarks.markdown_summary": [("a string for run", lambda: benchmarks.markdown_summary("run.json"), "run")],
    "benchmarks.floor_factors": [("three numbers for shape", lambda: benchmarks.floor_factors(RUN, shape=(8, 2048, 4096)), "shape"),
                                 ("unknown dtype", lambda: benchmarks.floor_factors(RUN, dtype="half"), "dtype"),
                                 ("unknown pass", lambda: benchmarks.floor_factors(RUN, pass_="bwd"), "pass_")],
    "benchmarks.plot_bandwidth": [("not an Axes", lambda: benchmarks.plot_bandwidth(_NotAxes(), RUN), "ax"),
                                  ("a string for impls", lambda: benchmarks.plot_bandwidth(_FakeAxes(), RUN, impls="triton"), "impls")],
    "benchmarks.plot_time_per_token": [("not an Axes", lambda: benchmarks.plot_time_per_token(None, RUN), "ax"),
                                       ("graphs not a bool", lambda: benchmarks.plot_time_per_token(_FakeAxes(), RUN, graphs=1), "graphs")],
    "benchmarks.plot_time_per_token_channel": [("unknown dtype", lambda: benchmarks.plot_time_per_token_channel(_FakeAxes(), RUN, dtype="int8"), "dtype"),
                                               ("unknown pass", lambda: benchmarks.plot_time_per_token_channel(_FakeAxes(), RUN, pass_="bwd"), "pass_")],
    # ---------------------------------------------------------------------------------- derive
    "derive.example_matrix": [("unknown kind", lambda: derive.example_matrix("triangular"), "kind")],
    "derive.ode_solution": [("non-square A", lambda: derive.ode_solution(sp.Matrix([[1, 2, 3]])), "A"),
                            ("numpy A", lambda: derive.ode_solution(np.eye(2)), "A")],
    "derive.zoh_derivation": [("non-square A", lambda: derive.zoh_derivation(sp.Matrix([[1, 2]])), "A")],
    "derive.pade_exp": [("negative m", lambda: derive.pade_exp(-1, 2), "m"),
                        ("float n", lambda: derive.pade_exp(1, 1.5), "n")],
    "derive.local_error": [("order 0", lambda: derive.local_error(1 + derive.symbols()["z"], order=0), "order"),
                           ("string R", lambda: derive.local_error("1 + z"), "R")],
    # ---------------------------------------------------------------------------------- discretize
    **{f"discretize.{f}": [
        ("B of another N", lambda f=f: getattr(discretize, f)(A2, np.ones(3), 0.1), "B"),
        ("non-square A", lambda f=f: getattr(discretize, f)(np.ones((2, 3)), B2, 0.1), "A"),
        ("negative delta", lambda f=f: getattr(discretize, f)(A2, B2, -0.1), "delta"),
        ("NaN in A", lambda f=f: getattr(discretize, f)(A2 * np.nan, B2, 0.1), "A"),
        ("string delta", lambda f=f: getattr(discretize, f)(A2, B2, "0.1"), "delta"),
    ] for f in ("zoh", "bilinear", "euler")},
    **{f"discretize.{f}": [
        ("2-D a", lambda f=f: getattr(discretize, f)(A2, B2, 0.1), "a"),
        ("B of another N", lambda f=f: getattr(discretize, f)(np.array([-1.0, -2.0]), np.ones(3), 0.1), "B"),
        ("NaN delta", lambda f=f: getattr(discretize, f)(np.array([-1.0]), np.ones(1), np.nan), "delta"),
        ("inf in a", lambda f=f: getattr(discretize, f)(np.array([-np.inf]), np.ones(1), 0.1), "a"),
    ] for f in ("zoh_diag", "bilinear_diag", "euler_diag")},
    **{f"discretize.{f}": [
        ("b of another shape", lambda f=f: getattr(discretize, f)(-torch.rand(2, 3), torch.ones(3), 0.1), "b"),
        ("negative tensor delta", lambda f=f: getattr(discretize, f)(-torch.rand(2, 3), torch.ones(2, 3),
                                                                     torch.tensor([0.1, -0.1])), "delta"),
        ("delta of a wrong shape", lambda f=f: getattr(discretize, f)(-torch.rand(2, 3), torch.ones(2, 3),
                                                                      torch.ones(3)), "delta"),
        ("integer a", lambda f=f: getattr(discretize, f)(torch.ones(2, dtype=torch.int64),
                                                         torch.ones(2), 0.1), "a"),
        ("numpy a", lambda f=f: getattr(discretize, f)(np.ones(2), torch.ones(2), 0.1), "a"),
    ] for f in ("zoh_diag_torch", "bilinear_diag_torch")},
    "discretize.phi1": [("string z", lambda: discretize.phi1(np.array(["a"])), "z"),
                        ("a tensor z", lambda: discretize.phi1(torch.ones(2)), "z")],
    # ---------------------------------------------------------------------------------- hmm
    "hmm.HMM": [
        ("pi not summing to 1", lambda: hmm.HMM([0.5, 0.6], np.eye(2), np.eye(2)), "pi"),
        ("non-square A", lambda: hmm.HMM([0.5, 0.5], np.ones((2, 3)) / 3, np.eye(2)), "A"),
        ("B with another N", lambda: hmm.HMM([0.5, 0.5], np.eye(2), np.ones((3, 2)) / 2), "B"),
        ("NaN in A", lambda: hmm.HMM([0.5, 0.5], np.full((2, 2), np.nan), np.eye(2)), "A"),
        ("forward: symbol out of range", lambda: CASINO.forward([0, 6]), "obs"),
        ("forward: float symbols", lambda: CASINO.forward(np.array([0.0, 1.0])), "obs"),
        ("forward: bad prior", lambda: CASINO.forward(OBS, prior=[1.0, 1.0]), "prior"),
        ("log_likelihood: unknown method", lambda: CASINO.log_likelihood(OBS, method="exact"), "method"),
        ("sample: T = 0", lambda: CASINO.sample(0), "T"),
        ("viterbi: 2-D obs", lambda: CASINO.viterbi(OBS[None]), "obs"),
        ("posterior: empty obs", lambda: CASINO.posterior([]), "obs"),
        ("backward: c of another length", lambda: CASINO.backward(OBS, c=np.ones(3)), "c"),
        ("log_joint: states of another length", lambda: CASINO.log_joint([0, 1], OBS), "states"),
        ("log_joint: state out of range", lambda: CASINO.log_joint([0, 1, 2, 0], OBS), "states"),
        ("transition_matrices: negative symbol", lambda: CASINO.transition_matrices([0, -1]), "obs"),
        ("forward_as_scan: symbol out of range", lambda: CASINO.forward_as_scan([7]), "obs"),
    ],
    **{f"hmm.{f}": [
        ("not an HMM", lambda f=f: getattr(hmm, f)("casino", OBS), "hmm"),
        ("symbol out of range", lambda f=f: getattr(hmm, f)(CASINO, [0, 9]), "obs"),
    ] for f in ("brute_force_likelihood", "brute_force_posterior", "brute_force_viterbi")},
    "hmm.combine_scaled": [("not a pair", lambda: hmm.combine_scaled(np.ones((1, 2, 2)), (np.ones((1, 2, 2)), np.zeros(1))), "earlier"),
                           ("logs of another shape", lambda: hmm.combine_scaled((np.ones((1, 2, 2)), np.zeros(1)), (np.ones((1, 2, 2)), np.zeros(2))), "later")],
    "hmm.tree_scan": [("non-square mats", lambda: hmm.tree_scan(np.ones((3, 2, 3)), np.zeros(3)), "mats"),
                      ("logs of another length", lambda: hmm.tree_scan(np.ones((3, 2, 2)), np.zeros(2)), "logs"),
                      ("combine not callable", lambda: hmm.tree_scan(np.ones((3, 2, 2)), np.zeros(3), combine=1), "combine")],
    "hmm.dishonest_casino": [("probability 1.5", lambda: hmm.dishonest_casino(1.5), "p_fair_to_loaded"),
                             ("NaN probability", lambda: hmm.dishonest_casino(0.1, np.nan), "p_loaded_to_fair"),
                             ("negative probability", lambda: hmm.dishonest_casino(p_six_loaded=-0.1), "p_six_loaded")],
    "hmm.log_matmul": [("mismatched inner dims", lambda: hmm.log_matmul(np.zeros((2, 3)), np.zeros((2, 2))), "X"),
                       ("1-D Y", lambda: hmm.log_matmul(np.zeros((2, 2)), np.zeros(2)), "Y"),
                       ("NaN in X", lambda: hmm.log_matmul(np.full((2, 2), np.nan), np.zeros((2, 2))), "X")],
    "hmm.prefix_products": [("non-square mats", lambda: hmm.prefix_products(np.ones((3, 2, 3))), "mats"),
                            ("negative mats", lambda: hmm.prefix_products(-np.ones((3, 2, 2))), "mats"),
                            ("logs of another length", lambda: hmm.prefix_products(np.ones((3, 2, 2)), np.zeros(2)), "logs"),
                            ("NaN logs", lambda: hmm.prefix_products(np.ones((1, 2, 2)), np.array([np.nan])), "logs")],
    # ---------------------------------------------------------------------------------- mamba
    "mamba.MambaBlock": [
        ("d_model 0", lambda: mamba.MambaBlock(0), "d_model"),
        ("d_state above the kernel's limit", lambda: mamba.MambaBlock(4, d_state=selective.MAX_STATE + 1), "d_state"),
        ("unknown backend", lambda: mamba.MambaBlock(4, backend="cuda"), "backend"),
        ("dt_min > dt_max", lambda: mamba.MambaBlock(4, dt_min=0.5, dt_max=0.1), "dt_min"),
        ("forward: last dim not d_model", lambda: MBLOCK(T(2, 5, 7)), "x"),
        ("forward: float64 input, float32 block", lambda: MBLOCK(T(2, 5, 8, dtype=torch.float64)), "x"),
        ("forward: empty batch", lambda: MBLOCK(T(0, 5, 8)), "x"),
        ("step: x_t 3-D", lambda: MBLOCK.step(T(2, 1, 8), MBLOCK.allocate_state(2)), "x_t"),
        ("step: state for another batch", lambda: MBLOCK.step(T(2, 8), MBLOCK.allocate_state(3)), "state"),
        ("step: float64 x_t", lambda: MBLOCK.step(T(2, 8, dtype=torch.float64), MBLOCK.allocate_state(2)), "x_t"),
        ("allocate_state: batch 0", lambda: MBLOCK.allocate_state(0), "batch"),
    ],
    "mamba.MambaLM": [
        ("vocab_size 0", lambda: mamba.MambaLM(0, 8, 1), "vocab_size"),
        ("d_state above the kernel's limit", lambda: mamba.MambaLM(5, 8, 1, d_state=10_000), "d_state"),
        ("forward: token out of range", lambda: MLM(ids(2, 4, high=12) + 11), "tokens"),
        ("forward: negative token", lambda: MLM(-ids(2, 4) - 1), "tokens"),
        ("forward: float tokens", lambda: MLM(T(2, 4)), "tokens"),
        ("forward: empty batch", lambda: MLM(ids(0, 4)), "tokens"),
        ("step: token out of range", lambda: MLM.step(torch.tensor([3, 11]), MLM.allocate_state(2)), "token_t"),
        ("step: state for another batch", lambda: MLM.step(ids(2), MLM.allocate_state(3)), "state"),
    ],
    "mamba.MambaState": [("conv not a tensor", lambda: mamba.MambaState(conv=[0.0], ssm=torch.zeros(1, 2, 3)), "conv"),
                         ("ssm of another batch", lambda: mamba.MambaState(conv=torch.zeros(1, 2, 4),
                                                                           ssm=torch.zeros(2, 2, 3)), "ssm")],
    "mamba.S4Mixer": [("d_model 0", lambda: mamba.S4Mixer(0), "d_model"),
                      ("forward: last dim not d_model", lambda: mamba.S4Mixer(8, 4)(T(2, 5, 7)), "x")],
    "mamba.S4LM": [("vocab_size 0", lambda: mamba.S4LM(0, 8, 1), "vocab_size"),
                   ("forward: token out of range", lambda: S4LM_(ids(2, 4) + 11), "tokens"),
                   ("forward: 1-D tokens", lambda: S4LM_(ids(4)), "tokens")],
    "mamba.dt_bias_init": [("d_inner 0", lambda: mamba.dt_bias_init(0), "d_inner"),
                           ("dt_min > dt_max", lambda: mamba.dt_bias_init(4, dt_min=0.5, dt_max=0.1), "dt_min")],
    "mamba.s4d_real_A_log": [("d_inner 0", lambda: mamba.s4d_real_A_log(0, 4), "d_inner"),
                             ("d_state -1", lambda: mamba.s4d_real_A_log(4, -1), "d_state")],
    # ---------------------------------------------------------------------------------- baselines
    "baselines.attention": [("3-D q", lambda: baselines.attention(T(1, 4, 8), T(1, 4, 8), T(1, 4, 8)), "q"),
                           ("k of another shape", lambda: baselines.attention(T(1, 2, 4, 8), T(1, 2, 5, 8), T(1, 2, 4, 8)), "k"),
                            ("causal=True with a mask", lambda: baselines.attention(T(1, 4, 2, 3), T(1, 4, 2, 3), T(1, 4, 2, 3),
                                                                                  torch.ones(4, 4, dtype=torch.bool), causal=True), "mask"),
                            ("causal: k of another length", lambda: baselines.attention(T(1, 4, 2, 3), T(1, 5, 2, 3), T(1, 4, 2, 3), causal=True), "k"),
                            ("string causal", lambda: baselines.attention(T(1, 4, 2, 3), T(1, 4, 2, 3), T(1, 4, 2, 3), causal="yes"), "causal")],
    "baselines.attention_ref": [("3-D q", lambda: baselines.attention_ref(T(1, 4, 8), T(1, 4, 8), T(1, 4, 8)), "q"),
                               ("mask of another size", lambda: baselines.attention_ref(T(1, 1, 3, 2), T(1, 1, 3, 2), T(1, 1, 3, 2),
                                                                                        torch.ones(2, 2, dtype=torch.bool)), "mask")],
    "baselines.attention_step": [("4-D q", lambda: baselines.attention_step(T(1, 1, 2, 3), T(1, 4, 2, 3), T(1, 4, 2, 3)), "q"),
                            ("v_cache of another length", lambda: baselines.attention_step(T(1, 2, 3), T(1, 4, 2, 3), T(1, 5, 2, 3)), "v_cache")],
    "baselines.MultiHeadAttention": [("heads not dividing dim", lambda: baselines.MultiHeadAttention(8, 3), "heads"),
                                    ("forward: last dim not dim", lambda: MHA(T(1, 4, 7)), "x")],
    "baselines.TransformerBlock": [("dim 0", lambda: baselines.TransformerBlock(0, 1), "dim"),
                                  ("forward: last dim not dim", lambda: TBLK(T(1, 4, 7)), "x")],
    "baselines.TransformerLM": [("vocab_size 0", lambda: baselines.TransformerLM(0, 8, 1, n_head=2), "vocab_size"),
                           ("n_head not dividing d_model", lambda: baselines.TransformerLM(5, 8, 1, n_head=3), "n_head"),
                           ("forward: token out of range", lambda: TLM(ids(2, 4) + 11), "tokens"),
                           ("forward: longer than max_len", lambda: TLM(ids(1, 17)), "tokens")],
    # ---------------------------------------------------------------------------------- lm
    "lm.RMSNorm": [("d 0", lambda: lm.RMSNorm(0), "d"),
                   ("forward: last dim not d", lambda: lm.RMSNorm(4)(T(2, 3)), "x")],
    "lm.ResidualLM": [
        ("vocab_size 0", lambda: lm.ResidualLM(0, 8, 1, delta.DeltaNetBlock), "vocab_size"),
        ("n_layer 0", lambda: lm.ResidualLM(11, 8, 0, delta.DeltaNetBlock), "n_layer"),
        ("make_block not callable", lambda: lm.ResidualLM(11, 8, 1, "delta"), "make_block"),
        ("forward: token out of range", lambda: RLMD(ids(2, 4) + 11), "tokens"),
        ("forward: negative token", lambda: RLMD(-ids(2, 4) - 1), "tokens"),
        ("forward: float tokens", lambda: RLMD(T(2, 4)), "tokens"),
        ("forward: 1-D tokens", lambda: RLMD(ids(4)), "tokens"),
        ("forward: empty batch", lambda: RLMD(ids(0, 4)), "tokens"),
        ("step: token out of range", lambda: MLM.step(torch.tensor([3, 11]), MLM.allocate_state(2)), "token_t"),
        ("step: state of another length", lambda: MLM.step(ids(2), []), "state"),
    ],
    # ---------------------------------------------------------------------------------- measure
    "measure.count_parameters": [("not a module", lambda: measure.count_parameters("model"), "model")],
    "measure.count_flops": [("not a module", lambda: measure.count_flops("block", T(1, 4, 8)), "module")],
    "measure.kv_cache_floats": [("negative t", lambda: measure.kv_cache_floats(-1, 8), "t"),
                                 ("D 0", lambda: measure.kv_cache_floats(3, 0), "D")],
    "measure.mamba_state_floats": [("negative D", lambda: measure.mamba_state_floats(-1), "D")],
    "measure.n_tokens": [("height 0", lambda: measure.n_tokens(0, 8), "height"),
                          ("patch 0", lambda: measure.n_tokens(8, 8, 0), "patch")],
    "measure.transformer_block_flops": [("negative L", lambda: measure.transformer_block_flops(-1, 8), "L"),
                                         ("string D", lambda: measure.transformer_block_flops(4, "8"), "D")],
    "measure.peak_memory": [("fn not callable", lambda: measure.peak_memory("f"), "fn")],
    "measure.count_ops": [("fn not callable", lambda: measure.count_ops(3), "fn")],
    "measure.saved_for_backward": [("no argument needs a gradient", lambda: measure.saved_for_backward(torch.exp, T(3)), "args")],
    # ---------------------------------------------------------------------------------- tasks
    "tasks.char_corpus": [("n_chars 1", lambda: tasks.char_corpus(1), "n_chars")],
    "tasks.lm_batch": [("float ids", lambda: tasks.lm_batch(T(100), 2, 8), "ids"),
                       ("ids shorter than seq_len", lambda: tasks.lm_batch(ids(5), 2, 8), "ids"),
                       ("batch 0", lambda: tasks.lm_batch(ids(100), 0, 8), "batch")],
    "tasks.train_lm": [("float train_ids", lambda: tasks.train_lm(RLM, T(100), ids(100), steps=1), "train_ids"),
                      ("steps 0", lambda: tasks.train_lm(RLM, ids(100), ids(100), steps=0), "steps"),
                      ("train_ids shorter than seq_len", lambda: tasks.train_lm(RLM, ids(10), ids(100), steps=1), "train_ids")],
    "tasks.selective_copying_batch": [("batch 0", lambda: tasks.selective_copying_batch(0), "batch"),
                                      ("n_data > n_context", lambda: tasks.selective_copying_batch(2, n_context=3, n_data=5), "n_data")],
    "tasks.train_selective_copying": [("steps 0", lambda: tasks.train_selective_copying(MLM, 0), "steps"),
                                      ("not a module", lambda: tasks.train_selective_copying("model", 1), "model"),
                                      ("n_eval 0", lambda: tasks.train_selective_copying(MLM, 1, n_eval=0), "n_eval")],
    "tasks.marker_copy_batch": [("batch 0", lambda: tasks.marker_copy_batch(0, 8, 4, True), "batch"),
                             ("L 1 (no room for the token after the marker)", lambda: tasks.marker_copy_batch(2, 1, 4, True), "L")],
    "tasks.associative_recall_batch": [
        ("batch 0", lambda: tasks.associative_recall_batch(0), "batch"),
        ("n_pairs > n_keys", lambda: tasks.associative_recall_batch(2, n_pairs=20, n_keys=16), "n_pairs"),
        ("n_queries > n_pairs", lambda: tasks.associative_recall_batch(2, n_pairs=4, n_queries=5), "n_queries"),
        ("string repeat_keys", lambda: tasks.associative_recall_batch(2, repeat_keys="yes"), "repeat_keys"),
        ("generator not a torch.Generator", lambda: tasks.associative_recall_batch(2, generator=0), "generator"),
    ],
    "tasks.train_associative_recall": [
        ("steps 0", lambda: tasks.train_associative_recall(RLMD, 0), "steps"),
        ("not a module", lambda: tasks.train_associative_recall("model", 1), "model"),
        ("negative lr", lambda: tasks.train_associative_recall(RLMD, 1, lr=-1.0), "lr"),
        ("batch 0", lambda: tasks.train_associative_recall(RLMD, 1, batch=0), "batch"),
        ("vocabulary larger than the model's", lambda: tasks.train_associative_recall(RLMD, 1, n_keys=16, n_values=16), "model"),
    ],
    "tasks.DigitsSplit": [("x_train not a tensor", lambda: tasks.DigitsSplit([1], torch.zeros(1), torch.zeros(1, 1, 8, 8), torch.zeros(1)), "x_train")],
    "tasks.load_digits_split": [("test_fraction 1.5", lambda: tasks.load_digits_split(1.5), "test_fraction")],
    "tasks.train_digits": [("data not a DigitsSplit", lambda: tasks.train_digits(TMO, "digits"), "data"),
                                  ("epochs 0", lambda: tasks.train_digits(TMO, tasks.DigitsSplit(
                                      torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64),
                                      torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64)), epochs=0), "epochs")],
    # ---------------------------------------------------------------------------------- train
    "train.accuracy": [("labels of another length", lambda: train.accuracy(TMO, T(4, 1, 8, 8), torch.zeros(3, dtype=torch.int64)), "targets"),
                          ("not a module", lambda: train.accuracy("m", T(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64)), "model")],
    "train.cross_entropy": [("1-D output", lambda: train.cross_entropy(T(4), torch.zeros(4, dtype=torch.int64)), "output"),
                            ("float target", lambda: train.cross_entropy(T(4, 3), T(4)), "target"),
                            ("target longer than the sequence", lambda: train.cross_entropy(T(2, 3, 5), torch.zeros(2, 4, dtype=torch.int64)), "target")],
    "train.fit": [("steps 0", lambda: train.fit(S4C, lambda: None, 0), "steps"),
                            ("not a module", lambda: train.fit("model", lambda: None, 1), "model"),
                   ("unknown schedule", lambda: train.fit(S4C, lambda: None, 1, schedule="cosine"), "schedule"),
                   ("make_batch not callable", lambda: train.fit(S4C, None, 1), "make_batch")],
    # ---------------------------------------------------------------------------------- mambaout
    "mambaout.Downsample": [("in_chans 0", lambda: mambaout.Downsample(0, 4), "in_chans"),
                            ("forward: wrong channels", lambda: DOWN(T(1, 8, 8, 3)), "x")],
    "mambaout.GatedCNNBlock": [("dim 0", lambda: mambaout.GatedCNNBlock(0), "dim"),
                               ("forward: last dim not dim", lambda: GCNN(T(1, 4, 4, 7)), "x")],
    "mambaout.MambaMixerBlock": [("dim 0", lambda: mambaout.MambaMixerBlock(0), "dim"),
                                 ("forward: last dim not dim", lambda: MMIX(T(1, 4, 4, 7)), "x")],
    "mambaout.TinyMambaOut": [("unknown mixer", lambda: mambaout.TinyMambaOut(mixer="lstm"), "mixer"),
                              ("forward: wrong channels", lambda: TMO(T(2, 3, 8, 8)), "images")],
    "mambaout.TinyViT": [("patch not dividing the image", lambda: mambaout.TinyViT(image_size=7, patch_size=2), "patch_size"),
                         ("forward: wrong image size", lambda: VIT(T(2, 1, 6, 6)), "images")],
    "mambaout.gated_cnn_block_ref": [("not a GatedCNNBlock", lambda: mambaout.gated_cnn_block_ref(MHA, T(1, 4, 4, 8)), "block"),
                                     ("x with another dim", lambda: mambaout.gated_cnn_block_ref(GCNN, T(1, 4, 4, 7)), "x")],
    "mambaout.influence_matrix": [("L 0", lambda: mambaout.influence_matrix(MHA, 0, 8), "L"),
                                  ("mixer not callable", lambda: mambaout.influence_matrix("mixer", 3, 8), "mixer")],
    "mambaout.make_model": [("unknown name", lambda: mambaout.make_model("lstm", 0), "name")],
    "mambaout.run_digits_experiment": [("unknown model name", lambda: mambaout.run_digits_experiment(names=["lstm"], data="x"), "names")],
    "mambaout.token_mixing_mask": [("L 0", lambda: mambaout.token_mixing_mask(0), "L"),
                                   ("unknown mode", lambda: mambaout.token_mixing_mask(3, "bidirectional"), "mode")],
    # ---------------------------------------------------------------------------------- rwkv
    **{f"rwkv.{f}": [
        ("k as (batch, C, T)", lambda f=f: getattr(rwkv, f)(W, U, K4.transpose(1, 2), V4), "k"),
        ("w of another size", lambda f=f: getattr(rwkv, f)(torch.ones(4), U, K4, V4), "w"),
        ("v of another shape", lambda f=f: getattr(rwkv, f)(W, U, K4, V4[:, :3]), "v"),
        ("integer k", lambda f=f: getattr(rwkv, f)(W, U, K4.long(), V4), "k"),
        ("empty batch", lambda f=f: getattr(rwkv, f)(W, U, K4[:0], V4[:0]), "k"),
    ] for f in ("wkv_reference", "wkv_naive", "wkv_recurrent", "wkv_parallel", "wkv_chunked")},
    "rwkv.wkv_init_state": [("batch 0", lambda: rwkv.wkv_init_state(0, 3), "batch"),
                            ("channels -1", lambda: rwkv.wkv_init_state(2, -1), "channels")],
    **{f"rwkv.{f}": [
        ("k as (batch, H, T, K)", lambda f=f: getattr(rwkv, f)(R6, LW6, K6.transpose(1, 2), V6, U6), "k"),
        ("u of another shape", lambda f=f: getattr(rwkv, f)(R6, LW6, K6, V6, U6.T), "u"),
        ("v of another length", lambda f=f: getattr(rwkv, f)(R6, LW6, K6, V6[:, :3], U6), "v"),
        ("positive log_w", lambda f=f: getattr(rwkv, f)(R6, -LW6 + 1, K6, V6, U6), "log_w"),
        ("NaN log_w", lambda f=f: getattr(rwkv, f)(R6, LW6 * np.nan, K6, V6, U6), "log_w"),
    ] for f in ("wkv6_reference", "wkv6_recurrent", "wkv6_parallel", "wkv6_chunked")},
    "rwkv.TimeMix": [("d_model 0", lambda: rwkv.TimeMix(0), "d_model"),
                     ("unknown wkv_mode", lambda: rwkv.TimeMix(8, wkv_mode="fast"), "wkv_mode"),
                     ("chunk 0", lambda: rwkv.TimeMix(8, chunk=0), "chunk"),
                     ("forward: last dim not d_model", lambda: TM4(T(2, 5, 7)), "x"),
                     ("forward: state for another batch", lambda: TM4(T(2, 5, 8), TM4.allocate_state(3)), "state"),
                     ("forward: float64 x", lambda: TM4(T(2, 5, 8, dtype=torch.float64)), "x")],
    "rwkv.TimeMix6": [("n_head not dividing d_model", lambda: rwkv.TimeMix6(8, 3), "n_head"),
                      ("n_head 0", lambda: rwkv.TimeMix6(8, 0), "n_head"),
                      ("forward: last dim not d_model", lambda: TM6(T(2, 5, 7)), "x"),
                      ("forward: state for another batch", lambda: TM6(T(2, 5, 8), TM6.allocate_state(3)), "state")],
    "rwkv.ChannelMix": [("d_model 0", lambda: rwkv.ChannelMix(0), "d_model"),
                        ("forward: last dim not d_model", lambda: CMIX(T(2, 5, 7)), "x"),
                        ("forward: state for another batch", lambda: CMIX(T(2, 5, 8), CMIX.allocate_state(3)), "state")],
    "rwkv.RWKVBlock": [("version 5", lambda: rwkv.RWKVBlock(8, version=5), "version"),
                       ("d_model 0", lambda: rwkv.RWKVBlock(0), "d_model"),
                       ("forward: last dim not d_model", lambda: RBLK(T(2, 5, 7)), "x")],
    "rwkv.RWKVLM": [("vocab_size 0", lambda: rwkv.RWKVLM(0, 8, 1), "vocab_size"),
                    ("n_layer 0", lambda: rwkv.RWKVLM(5, 8, 0), "n_layer"),
                    ("forward: token out of range", lambda: RLM(ids(2, 4) + 11), "tokens"),
                    ("forward: empty batch", lambda: RLM(ids(0, 4)), "tokens"),
                    ("step: token out of range", lambda: RLM.step(torch.tensor([1, 99]), RLM.allocate_state(2)), "token"),
                    ("step: state for another batch", lambda: RLM.step(ids(2), RLM.allocate_state(3)), "state"),
                    ("step (v6): state for another batch", lambda: RLM6.step(ids(2), RLM6.allocate_state(3)), "state")],
    # ---------------------------------------------------------------------------------- s4
    **{f"s4.{f}": [("N 0", lambda f=f: getattr(s4, f)(0), "N"), ("float N", lambda f=f: getattr(s4, f)(2.0), "N")]
       for f in ("hippo_legs", "hippo_legs_nplr", "hippo_legs_diagonal")},
    "s4.legs_online": [("2-D f", lambda: s4.legs_online(np.ones((3, 2)), 4), "f"),
                       ("N 0", lambda: s4.legs_online(np.ones(3), 0), "N"),
                       ("NaN in f", lambda: s4.legs_online(np.array([1.0, np.nan]), 2), "f")],
    "s4.legs_project": [("negative t", lambda: s4.legs_project(np.sin, -1.0, 4), "t"),
                        ("fn not callable", lambda: s4.legs_project(3, 1.0, 4), "fn")],
    "s4.legendre_reconstruct": [("s outside [0, 1]", lambda: s4.legendre_reconstruct(np.ones(3), np.array([1.5])), "s"),
                                ("NaN in c", lambda: s4.legendre_reconstruct(np.array([np.nan]), np.array([0.5])), "c")],
    "s4.legs_lti_kernel": [("negative lag", lambda: s4.legs_lti_kernel(np.array([-1.0]), 3), "r")],
    "s4.kernel": [("L 0", lambda: s4.kernel(A2, B2, C2, 0), "L"),
                  ("Bb of another N", lambda: s4.kernel(A2, np.ones(3), C2, 4), "Bb"),
                  ("NaN in Ab", lambda: s4.kernel(A2 * np.nan, B2, C2, 4), "Ab")],
    "s4.kernel_diag": [("dB of another N", lambda: s4.kernel_diag(np.ones(2) * 0.5, np.ones(3), np.ones(2), 4), "dB"),
                       ("L 0", lambda: s4.kernel_diag(np.ones(2) * 0.5, np.ones(2), np.ones(2), 0), "L")],
    "s4.conv_matrix": [("2-D K", lambda: s4.conv_matrix(np.ones((2, 2))), "K"),
                       ("L 0", lambda: s4.conv_matrix(np.ones(3), 0), "L")],
    "s4.causal_conv": [("K of another channel count", lambda: s4.causal_conv(T(2, 3, 8), T(4, 8)), "K"),
                       ("NaN in u", lambda: s4.causal_conv(np.array([np.nan, 1.0]), np.ones(2)), "u"),
                       ("integer u tensor", lambda: s4.causal_conv(torch.ones(4, dtype=torch.int64), T(4)), "u")],
    "s4.causal_conv_direct": [("0-d u", lambda: s4.causal_conv_direct(np.float64(1.0), np.ones(2)), "u"),
                              ("K with leading dims not in u", lambda: s4.causal_conv_direct(np.ones((2, 5)), np.ones((3, 5))), "K")],
    "s4.recurrent": [("h0 of another batch", lambda: s4.recurrent(A2, B2, C2, np.ones((2, 4)), h0=np.zeros((3, 2))), "h0"),
                     ("non-square Ab", lambda: s4.recurrent(np.ones((2, 3)), B2, C2, np.ones(4)), "Ab")],
    "s4.s4d_kernel": [("2-D log_dt", lambda: s4.s4d_kernel(torch.zeros(2, 1), torch.zeros(2, 3), torch.zeros(2, 3),
                                                             torch.zeros(2, 3, dtype=torch.complex64), 4), "log_dt"),
                      ("real C", lambda: s4.s4d_kernel(torch.zeros(2), torch.zeros(2, 3), torch.zeros(2, 3),
                                                        torch.zeros(2, 3), 4), "C")],
    "s4.S4Layer": [("d_model 0", lambda: s4.S4Layer(0), "d_model"),
                   ("unknown init", lambda: s4.S4Layer(3, init="hippo"), "init"),
                   ("forward: wrong H", lambda: S4L(T(2, 4, 5)), "u"),
                   ("forward: empty batch", lambda: S4L(T(0, 3, 5)), "u"),
                   ("step: state for another batch", lambda: S4L.step(T(2, 3), S4L.initial_state(3)), "state"),
                   ("forward_recurrent: state for another batch", lambda: S4L.forward_recurrent(T(2, 3, 5), S4L.initial_state(3)), "state")],
    "s4.S4Classifier": [("vocab 0", lambda: s4.S4Classifier(0, 2), "vocab"),
                        ("forward: token out of range", lambda: S4C(ids(2, 6) + 5), "tokens"),
                        ("forward: float tokens", lambda: S4C(T(2, 6)), "tokens")],
    # ---------------------------------------------------------------------------------- scan
    "scan.ScanStats": [("negative combines", lambda: scan.ScanStats(combines=-1), "combines")],
    **{f"scan.{f}": [
        ("op not callable", lambda f=f: getattr(scan, f)("add", T(5)), "op"),
        ("empty xs", lambda f=f: getattr(scan, f)(scan.add_op, ()), "xs"),
        ("axis out of range", lambda f=f: getattr(scan, f)(scan.add_op, T(5), axis=2), "axis"),
        ("parts of unequal length", lambda f=f: getattr(scan, f)(scan.affine_op, (T(5), T(4))), "xs"),
    ] for f in ("sequential", "hillis_steele", "blelloch", "scan")},
    "scan.linear_recurrence": [("b of another shape", lambda: scan.linear_recurrence(T(2, 5), T(2, 4)), "b"),
                               ("h0 of another shape", lambda: scan.linear_recurrence(T(2, 5), T(2, 5), T(3)), "h0"),
                               ("unknown method", lambda: scan.linear_recurrence(T(2, 5), T(2, 5), method="fast"), "method")],
    "scan.linear_recurrence_ref": [("b of another dtype", lambda: scan.linear_recurrence_ref(T(5), T(5, dtype=torch.float64)), "b"),
                                   ("numpy a", lambda: scan.linear_recurrence_ref(np.ones(5), T(5)), "a")],
    "scan.affine_op": [("p not a pair", lambda: scan.affine_op(T(3), (T(3), T(3))), "p")],
    "scan.add_op": [("q not a tensor", lambda: scan.add_op(T(3), "x"), "q")],
    "scan.matmul_op": [("mismatched inner dims", lambda: scan.matmul_op(T(2, 3), T(2, 3)), "q")],
    "scan.maxplus_op": [("mismatched inner dims", lambda: scan.maxplus_op(T(2, 3), T(3, 3)), "q"),
                        ("1-D p", lambda: scan.maxplus_op(T(3), T(3, 3)), "p")],
    "scan.interval_op": [("q not a pair", lambda: scan.interval_op((T(2), T(2)), T(2)), "q")],
    "scan.trace_intervals": [("L 0", lambda: scan.trace_intervals(0), "L"),
                             ("unknown method", lambda: scan.trace_intervals(4, "fast"), "method")],
    "scan.work_closed_form": [("unknown method", lambda: scan.work_closed_form("fast", 4), "method"),
                              ("L -1", lambda: scan.work_closed_form("blelloch", -1), "L")],
    "scan.depth_closed_form": [("unknown method", lambda: scan.depth_closed_form("fast", 4), "method"),
                               ("L 0", lambda: scan.depth_closed_form("blelloch", 0), "L")],
    # ---------------------------------------------------------------------------------- selective
    **{f"selective.{f}": [
        ("u as (batch, L, dim)", lambda f=f: getattr(selective, f)(**sel(u=SEL["u"].transpose(1, 2))), "u"),
        ("delta of another shape", lambda f=f: getattr(selective, f)(**sel(delta=SEL["delta"][..., :3])), "delta"),
        ("A with N above the kernel's limit", lambda f=f: getattr(selective, f)(**sel(A=-torch.ones(3, selective.MAX_STATE + 1))), "A"),
        ("B as (batch, L, N)", lambda f=f: getattr(selective, f)(**sel(B=SEL["B"].transpose(1, 2))), "B"),
        ("integer u", lambda f=f: getattr(selective, f)(**sel(u=SEL["u"].long())), "u"),
        ("empty batch", lambda f=f: getattr(selective, f)(**{k: (v[:0] if k in "u delta B C z" else v) for k, v in sel().items()}), "u"),
    ] for f in ("selective_scan", "selective_scan_ref", "check_inputs")},
    "selective.random_inputs": [("batch 0", lambda: selective.random_inputs(0, 3, 5, 4), "batch"),
                                ("groups not dividing dim", lambda: selective.random_inputs(1, 3, 5, 4, groups=2), "groups"),
                                ("N above the kernel's limit", lambda: selective.random_inputs(1, 3, 5, selective.MAX_STATE + 1), "N")],
    # ---------------------------------------------------------------------------------- ssm
    "ssm.ContinuousSSM": [("non-square A", lambda: ssm.ContinuousSSM(np.ones((2, 3)), B2, C2), "A"),
                          ("B of another N", lambda: ssm.ContinuousSSM(A2, np.ones(3), C2), "B"),
                          ("C of another N", lambda: ssm.ContinuousSSM(A2, B2, np.ones(3)), "C"),
                          ("NaN in A", lambda: ssm.ContinuousSSM(A2 * np.nan, B2, C2), "A"),
                          ("impulse_response: 2-D t", lambda: CSSM.impulse_response(np.ones((2, 2))), "t"),
                          ("simulate: x of another length", lambda: CSSM.simulate(np.ones(4), np.linspace(0, 1, 5)), "x"),
                          ("simulate: unknown method", lambda: CSSM.simulate(np.ones(5), np.linspace(0, 1, 5), method="rk4"), "method")],
    "ssm.is_stable": [("non-square A", lambda: ssm.is_stable(np.ones((2, 3))), "A"),
                      ("NaN margin", lambda: ssm.is_stable(A2, margin=np.nan), "margin")],
    "ssm.recurrence": [("2-D x", lambda: ssm.recurrence(A2, B2, C2, np.ones((2, 2))), "x"),
                       ("h0 of another N", lambda: ssm.recurrence(A2, B2, C2, np.ones(3), h0=np.ones(3)), "h0"),
                       ("NaN D", lambda: ssm.recurrence(A2, B2, C2, np.ones(3), D=np.nan), "D")],
    "ssm.recurrence_diag": [("2-D ab", lambda: ssm.recurrence_diag(A2, B2, C2, np.ones(3)), "ab"),
                            ("c of another N", lambda: ssm.recurrence_diag(B2 * 0.5, B2, np.ones(3), np.ones(3)), "c")],
    "ssm.kernel": [("L 0", lambda: ssm.kernel(A2, B2, C2, 0), "L"),
                   ("Bb of another N", lambda: ssm.kernel(A2, np.ones(3), C2, 3), "Bb")],
    "ssm.causal_convolve": [("x of another length", lambda: ssm.causal_convolve(np.ones(3), np.ones(4)), "x"),
                            ("NaN in K", lambda: ssm.causal_convolve(np.array([np.nan]), np.ones(1)), "K")],
    "ssm.diagonal_ssm": [("N 0", lambda: ssm.diagonal_ssm(0), "N"),
                         ("slowest > fastest", lambda: ssm.diagonal_ssm(3, slowest=2.0, fastest=1.0), "slowest")],
    "ssm.spring_mass_damper": [("negative m", lambda: ssm.spring_mass_damper(m=-1.0), "m"),
                               ("NaN k", lambda: ssm.spring_mass_damper(k=np.nan), "k")],
    # ---------------------------------------------------------------------------------- adjoint
    "adjoint.selective_scan_backward": [
        ("u as (batch, L, dim)", lambda: adjoint.selective_scan_backward(**sel(u=SEL["u"].transpose(1, 2)), gout=GOUT), "u"),
        ("delta of another shape", lambda: adjoint.selective_scan_backward(**sel(delta=SEL["delta"][..., :3]), gout=GOUT), "delta"),
        ("B as (batch, L, N)", lambda: adjoint.selective_scan_backward(**sel(B=SEL["B"].transpose(1, 2)), gout=GOUT), "B"),
        ("gout of another shape", lambda: adjoint.selective_scan_backward(**sel(), gout=GOUT[..., :3]), "gout"),
        ("gout as (batch, L, dim)", lambda: adjoint.selective_scan_backward(**sel(), gout=GOUT.transpose(1, 2)), "gout"),
        ("integer gout", lambda: adjoint.selective_scan_backward(**sel(), gout=GOUT.long()), "gout"),
        ("gout not a tensor", lambda: adjoint.selective_scan_backward(**sel(), gout=GOUT.numpy()), "gout"),
        ("NaN in gout", lambda: adjoint.selective_scan_backward(**sel(), gout=GOUT * np.nan), "gout"),
        ("string delta_softplus", lambda: adjoint.selective_scan_backward(**sel(), gout=GOUT, delta_softplus="yes"), "delta_softplus"),
    ],
    # ---------------------------------------------------------------------------------- delta
    **{f"delta.{f}": [
        ("q as (batch, L, heads, d_k)", lambda f=f: getattr(delta, f)(QD.transpose(1, 2), KD, VD, BETA), "q"),
        ("3-D q", lambda f=f: getattr(delta, f)(QD[0], KD, VD, BETA), "q"),
        ("k of another d_k", lambda f=f: getattr(delta, f)(QD, KD[..., :2], VD, BETA), "k"),
        ("v of another length", lambda f=f: getattr(delta, f)(QD, KD, VD[:, :, :4], BETA), "v"),
        ("v of another batch", lambda f=f: getattr(delta, f)(QD, KD, VD[:1], BETA), "v"),
        ("float64 k, float32 q", lambda f=f: getattr(delta, f)(QD, KD.double(), VD, BETA), "k"),
        ("integer q", lambda f=f: getattr(delta, f)(QD.long(), KD, VD, BETA), "q"),
        ("NaN in q", lambda f=f: getattr(delta, f)(QD * np.nan, KD, VD, BETA), "q"),
        ("beta of another heads", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA[:, :1]), "beta"),
        ("NaN beta", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA * np.nan), "beta"),
        ("gate above 1", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA, gate=BETA + 1), "gate"),
        ("gate 0", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA, gate=BETA * 0), "gate"),
        ("NaN gate", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA, gate=BETA * np.nan), "gate"),
        ("initial_state for another batch", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA, initial_state=torch.zeros(3, 2, 4, 3)), "initial_state"),
        ("initial_state as (batch, heads, d_k, d_v)", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA, initial_state=torch.zeros(2, 2, 3, 4)), "initial_state"),
        ("integer initial_state", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA, initial_state=torch.zeros(2, 2, 4, 3, dtype=torch.int64)), "initial_state"),
        ("NaN initial_state", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA, initial_state=torch.full((2, 2, 4, 3), np.nan)), "initial_state"),
        ("string return_final_state", lambda f=f: getattr(delta, f)(QD, KD, VD, BETA, return_final_state="yes"), "return_final_state"),
    ] + ([("chunk 0", lambda: delta.delta_rule(QD, KD, VD, BETA, chunk=0), "chunk"),
          ("float chunk", lambda: delta.delta_rule(QD, KD, VD, BETA, chunk=2.0), "chunk")] if f == "delta_rule" else [])
       for f in ("delta_rule", "delta_rule_ref")},
    "delta.linear_attention_ref": [
        ("q as (batch, L, heads, d_k)", lambda: delta.linear_attention_ref(QD.transpose(1, 2), KD, VD), "q"),
        ("k of another shape", lambda: delta.linear_attention_ref(QD, KD[:, :1], VD), "k"),
        ("v not a tensor", lambda: delta.linear_attention_ref(QD, KD, VD.numpy()), "v"),
        ("NaN in v", lambda: delta.linear_attention_ref(QD, KD, VD * np.nan), "v"),
        ("initial_state for another batch", lambda: delta.linear_attention_ref(QD, KD, VD, initial_state=torch.zeros(1, 2, 4, 3)), "initial_state"),
    ],
    "delta.rwkv7_ref": [
        ("r as (batch, L, heads, d_k)", lambda: delta.rwkv7_ref(QD.transpose(1, 2), WD, KD, VD, -KD, KD), "r"),
        ("w of another shape", lambda: delta.rwkv7_ref(QD, WD[..., :2], KD, VD, -KD, KD), "w"),
        ("w above 1", lambda: delta.rwkv7_ref(QD, WD + 1, KD, VD, -KD, KD), "w"),
        ("NaN w", lambda: delta.rwkv7_ref(QD, WD * np.nan, KD, VD, -KD, KD), "w"),
        ("a of another shape", lambda: delta.rwkv7_ref(QD, WD, KD, VD, -KD[:1], KD), "a"),
        ("integer b", lambda: delta.rwkv7_ref(QD, WD, KD, VD, -KD, KD.long()), "b"),
        ("float64 a, float32 r", lambda: delta.rwkv7_ref(QD, WD, KD, VD, -KD.double(), KD), "a"),
        ("initial_state of another d_v", lambda: delta.rwkv7_ref(QD, WD, KD, VD, -KD, KD, initial_state=torch.zeros(2, 2, 3, 3)), "initial_state"),
    ],
    "delta.delta_rule_flops": [("L 0", lambda: delta.delta_rule_flops(0, 4, 4, 2), "L"),
                               ("negative d_k", lambda: delta.delta_rule_flops(8, -1, 4, 2), "d_k"),
                               ("float chunk", lambda: delta.delta_rule_flops(8, 4, 4, 2.0), "chunk")],
    "delta.DeltaNetBlock": [
        ("d_model 0", lambda: delta.DeltaNetBlock(0), "d_model"),
        ("n_heads -1", lambda: delta.DeltaNetBlock(8, n_heads=-1), "n_heads"),
        ("chunk 0", lambda: delta.DeltaNetBlock(8, chunk=0), "chunk"),
        ("unknown rule", lambda: delta.DeltaNetBlock(8, rule="lstm"), "rule"),
        ("forward: last dim not d_model", lambda: DNET(T(2, 5, 7)), "x"),
        ("forward: 2-D x", lambda: DNET(T(5, 8)), "x"),
        ("forward: integer x", lambda: DNET(T(2, 5, 8).long()), "x"),
        ("forward: float64 x, float32 block", lambda: DNET(T(2, 5, 8, dtype=torch.float64)), "x"),
        ("forward: empty batch", lambda: DNET(T(0, 5, 8)), "x"),
        ("forward: L 0", lambda: DNET(T(2, 0, 8)), "x"),
    ],
    # ---------------------------------------------------------------------------------- ssd
    **{f"ssd.{f}": [
        ("X as (batch, heads, L, head_dim)", lambda f=f: getattr(ssd, f)(XS.transpose(1, 2), AS, BS, CS), "X"),
        ("3-D X", lambda f=f: getattr(ssd, f)(XS[0], AS, BS, CS), "X"),
        ("integer X", lambda f=f: getattr(ssd, f)(XS.long(), AS, BS, CS), "X"),
        ("NaN in X", lambda f=f: getattr(ssd, f)(XS * np.nan, AS, BS, CS), "X"),
        ("A as (batch, heads, L)", lambda f=f: getattr(ssd, f)(XS, AS.transpose(1, 2), BS, CS), "A"),
        ("positive A", lambda f=f: getattr(ssd, f)(XS, -AS, BS, CS), "A"),
        ("NaN A", lambda f=f: getattr(ssd, f)(XS, AS * np.nan, BS, CS), "A"),
        ("B of another heads", lambda f=f: getattr(ssd, f)(XS, AS, BS[:, :, :1], CS), "B"),
        ("B of another batch", lambda f=f: getattr(ssd, f)(XS, AS, BS[:1], CS), "B"),
        ("C of another N", lambda f=f: getattr(ssd, f)(XS, AS, BS, CS[..., :3]), "C"),
        ("float64 C, float32 X", lambda f=f: getattr(ssd, f)(XS, AS, BS, CS.double()), "C"),
        ("NaN C", lambda f=f: getattr(ssd, f)(XS, AS, BS, CS * np.nan), "C"),
        ("initial_state for another batch", lambda f=f: getattr(ssd, f)(XS, AS, BS, CS, initial_state=torch.zeros(3, 2, 3, 4)), "initial_state"),
        ("initial_state as (batch, heads, N, head_dim)", lambda f=f: getattr(ssd, f)(XS, AS, BS, CS, initial_state=torch.zeros(2, 2, 4, 3)), "initial_state"),
        ("integer initial_state", lambda f=f: getattr(ssd, f)(XS, AS, BS, CS, initial_state=torch.zeros(2, 2, 3, 4, dtype=torch.int64)), "initial_state"),
        ("NaN initial_state", lambda f=f: getattr(ssd, f)(XS, AS, BS, CS, initial_state=torch.full((2, 2, 3, 4), np.nan)), "initial_state"),
        ("string return_final_state", lambda f=f: getattr(ssd, f)(XS, AS, BS, CS, return_final_state="yes"), "return_final_state"),
    ] + ([("chunk 0", lambda: ssd.ssd(XS, AS, BS, CS, chunk=0), "chunk"),
          ("float chunk", lambda: ssd.ssd(XS, AS, BS, CS, chunk=2.5), "chunk")] if f == "ssd" else [])
       for f in ("ssd", "ssd_ref", "ssd_quadratic")},
    "ssd.segsum": [("numpy A", lambda: ssd.segsum(np.ones(4)), "A"),
                   ("0-d A", lambda: ssd.segsum(torch.tensor(1.0)), "A"),
                   ("integer A", lambda: ssd.segsum(torch.ones(4, dtype=torch.int64)), "A"),
                   ("NaN A", lambda: ssd.segsum(torch.full((4,), np.nan)), "A")],
    "ssd.ssd_diag_blocks": [("4-D Xc", lambda: ssd.ssd_diag_blocks(XC[0], AC, BC, CC), "Xc"),
                            ("Ac of another chunk length", lambda: ssd.ssd_diag_blocks(XC, AC[..., :2], BC, CC), "Ac"),
                            ("Bc of another heads", lambda: ssd.ssd_diag_blocks(XC, AC, BC[..., :1, :], CC), "Bc"),
                            ("Cc of another N", lambda: ssd.ssd_diag_blocks(XC, AC, BC, CC[..., :3]), "Cc")],
    "ssd.ssd_chunk_states": [("Xc not a tensor", lambda: ssd.ssd_chunk_states(XC.numpy(), AC, BC), "Xc"),
                             ("Ac as (b, chunks, Q, h)", lambda: ssd.ssd_chunk_states(XC, AC.permute(0, 2, 3, 1), BC), "Ac"),
                             ("Bc of another batch", lambda: ssd.ssd_chunk_states(XC, AC, BC[:1]), "Bc")],
    "ssd.ssd_state_passing": [("4-D states", lambda: ssd.ssd_state_passing(STATES[0], AC.sum(-1)), "states"),
                              ("chunk_log_decay of another chunk count", lambda: ssd.ssd_state_passing(STATES, AC.sum(-1)[..., :1]), "chunk_log_decay"),
                              ("positive chunk_log_decay", lambda: ssd.ssd_state_passing(STATES, -AC.sum(-1)), "chunk_log_decay"),
                              ("initial_state of another N", lambda: ssd.ssd_state_passing(STATES, AC.sum(-1), torch.zeros(2, 2, 3, 3)), "initial_state")],
    "ssd.ssd_off_diag": [("Ac of another batch than Cc", lambda: ssd.ssd_off_diag(CC, AC[:1], STATES), "Ac"),
                         ("5-D Ac", lambda: ssd.ssd_off_diag(CC, AC[None], STATES), "Ac"),
                         ("entering of another N", lambda: ssd.ssd_off_diag(CC, AC, STATES[..., :3]), "entering"),
                         ("Ac of another heads", lambda: ssd.ssd_off_diag(CC, AC[:, :1], STATES), "Ac")],
    "ssd.ssd_flops": [("L 0", lambda: ssd.ssd_flops(0, 2, 4, 4, 2), "L"),
                      ("negative heads", lambda: ssd.ssd_flops(8, -2, 4, 4, 2), "heads"),
                      ("float N", lambda: ssd.ssd_flops(8, 2, 4, 4.0, 2), "N"),
                      ("chunk 0", lambda: ssd.ssd_flops(8, 2, 4, 4, 0), "chunk")],
    "ssd.GatedRMSNorm": [("d 0", lambda: ssd.GatedRMSNorm(0), "d"),
                         ("forward: last dim of y not d", lambda: ssd.GatedRMSNorm(4)(T(2, 3), T(2, 3)), "y"),
                         ("forward: z of another shape", lambda: ssd.GatedRMSNorm(4)(T(2, 4), T(3, 4)), "z"),
                         ("forward: integer z", lambda: ssd.GatedRMSNorm(4)(T(2, 4), T(2, 4).long()), "z")],
    "ssd.Mamba2State": [("conv not a tensor", lambda: ssd.Mamba2State(conv=[0.0], ssm=torch.zeros(1, 2, 3, 4)), "conv"),
                        ("ssm of another batch", lambda: ssd.Mamba2State(conv=torch.zeros(1, 2, 4), ssm=torch.zeros(2, 2, 3, 4)), "ssm"),
                        ("3-D ssm", lambda: ssd.Mamba2State(conv=torch.zeros(1, 2, 4), ssm=torch.zeros(1, 2, 3)), "ssm")],
    "ssd.Mamba2Block": [
        ("d_model 0", lambda: ssd.Mamba2Block(0), "d_model"),
        ("d_state -1", lambda: ssd.Mamba2Block(8, d_state=-1), "d_state"),
        ("chunk 0", lambda: ssd.Mamba2Block(8, chunk=0), "chunk"),
        ("head_dim not dividing d_inner", lambda: ssd.Mamba2Block(8, head_dim=5), "head_dim"),
        ("dt_min > dt_max", lambda: ssd.Mamba2Block(8, head_dim=4, dt_min=0.5, dt_max=0.1), "dt_min"),
        ("forward: last dim not d_model", lambda: M2B(T(2, 5, 7)), "u"),
        ("forward: integer u", lambda: M2B(T(2, 5, 8).long()), "u"),
        ("forward: float64 u, float32 block", lambda: M2B(T(2, 5, 8, dtype=torch.float64)), "u"),
        ("forward: empty batch", lambda: M2B(T(0, 5, 8)), "u"),
        ("step: u_t 3-D", lambda: M2B.step(T(2, 1, 8), M2B.allocate_state(2)), "u_t"),
        ("step: float64 u_t", lambda: M2B.step(T(2, 8, dtype=torch.float64), M2B.allocate_state(2)), "u_t"),
        ("step: state for another batch", lambda: M2B.step(T(2, 8), M2B.allocate_state(3)), "state"),
        ("step: state.ssm of another N", lambda: M2B.step(T(2, 8), ssd.Mamba2State(M2B.allocate_state(2).conv, torch.zeros(2, 4, 4, 3))), "state"),
        ("step: not a state", lambda: M2B.step(T(2, 8), (torch.zeros(2), torch.zeros(2))), "state"),
        ("allocate_state: batch 0", lambda: M2B.allocate_state(0), "batch"),
    ],
    "ssd.Mamba2LM": [
        ("vocab_size 0", lambda: ssd.Mamba2LM(0, 8, 1), "vocab_size"),
        ("n_layer 0", lambda: ssd.Mamba2LM(11, 8, 0), "n_layer"),
        ("d_state 0", lambda: ssd.Mamba2LM(11, 8, 1, d_state=0), "d_state"),
        ("forward: token out of range", lambda: M2LM(ids(2, 4) + 11), "tokens"),
        ("forward: negative token", lambda: M2LM(-ids(2, 4) - 1), "tokens"),
        ("forward: float tokens", lambda: M2LM(T(2, 4)), "tokens"),
        ("forward: 1-D tokens", lambda: M2LM(ids(4)), "tokens"),
        ("forward: empty batch", lambda: M2LM(ids(0, 4)), "tokens"),
    ],
    # ---------------------------------------------------------------------------------- additions to mambaout, s4
    "mambaout.MambaNoScanMixerBlock": [
        ("dim 0", lambda: mambaout.MambaNoScanMixerBlock(0), "dim"),
        ("expand 0", lambda: mambaout.MambaNoScanMixerBlock(8, expand=0), "expand"),
        ("float d_conv", lambda: mambaout.MambaNoScanMixerBlock(8, d_conv=2.0), "d_conv"),
        ("forward: last dim not dim", lambda: MNOSCAN(T(1, 4, 4, 7)), "x"),
        ("forward: 3-D x", lambda: MNOSCAN(T(1, 16, 8)), "x"),
        ("forward: integer x", lambda: MNOSCAN(T(1, 4, 4, 8).long()), "x"),
        ("forward: float64 x, float32 block", lambda: MNOSCAN(T(1, 4, 4, 8, dtype=torch.float64)), "x"),
        ("forward: empty batch", lambda: MNOSCAN(T(0, 4, 4, 8)), "x"),
    ],
    "mambaout.tiny_mamba_without_scan": [
        ("unknown keyword", lambda: mambaout.tiny_mamba_without_scan(width=8), "width"),
        ("mixer given", lambda: mambaout.tiny_mamba_without_scan(mixer="gated_cnn"), "mixer"),
    ],
    "s4.hippo_legs_dplr": [("N 0", lambda: s4.hippo_legs_dplr(0), "N"),
                           ("float N", lambda: s4.hippo_legs_dplr(2.0), "N"),
                           ("bool N", lambda: s4.hippo_legs_dplr(True), "N")],
    "s4.kernel_dplr": [
        ("2-D Lambda", lambda: s4.kernel_dplr(np.diag(LAM), PT, PT, BT, BT, 0.1, 8), "Lambda"),
        ("Lambda with Re >= 0", lambda: s4.kernel_dplr(-LAM, PT, PT, BT, BT, 0.1, 8), "Lambda"),
        ("NaN in Lambda", lambda: s4.kernel_dplr(LAM * np.nan, PT, PT, BT, BT, 0.1, 8), "Lambda"),
        ("empty Lambda", lambda: s4.kernel_dplr(LAM[:0], PT[:0], PT[:0], BT[:0], BT[:0], 0.1, 8), "Lambda"),
        ("tensor Lambda", lambda: s4.kernel_dplr(torch.from_numpy(LAM), PT, PT, BT, BT, 0.1, 8), "Lambda"),
        ("P of another N", lambda: s4.kernel_dplr(LAM, PT[:3], PT, BT, BT, 0.1, 8), "P"),
        ("Q of another rank than P", lambda: s4.kernel_dplr(LAM, PT, np.stack([PT, PT], 1), BT, BT, 0.1, 8), "Q"),
        ("NaN in Q", lambda: s4.kernel_dplr(LAM, PT, PT * np.nan, BT, BT, 0.1, 8), "Q"),
        ("B of another N", lambda: s4.kernel_dplr(LAM, PT, PT, BT[:3], BT, 0.1, 8), "B"),
        ("2-D C", lambda: s4.kernel_dplr(LAM, PT, PT, BT, BT[None], 0.1, 8), "C"),
        ("NaN in C", lambda: s4.kernel_dplr(LAM, PT, PT, BT, BT * np.nan, 0.1, 8), "C"),
        ("negative delta", lambda: s4.kernel_dplr(LAM, PT, PT, BT, BT, -0.1, 8), "delta"),
        ("NaN delta", lambda: s4.kernel_dplr(LAM, PT, PT, BT, BT, np.nan, 8), "delta"),
        ("string delta", lambda: s4.kernel_dplr(LAM, PT, PT, BT, BT, "0.1", 8), "delta"),
        ("L 0", lambda: s4.kernel_dplr(LAM, PT, PT, BT, BT, 0.1, 0), "L"),
        ("float L", lambda: s4.kernel_dplr(LAM, PT, PT, BT, BT, 0.1, 8.0), "L"),
        ("string C_is_tilde", lambda: s4.kernel_dplr(LAM, PT, PT, BT, BT, 0.1, 8, C_is_tilde="yes"), "C_is_tilde"),
    ],
}


def classify(call, arg):
    """'clear', 'unclear: ...' or 'silent'."""
    try:
        call()
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        # the argument must be the subject of the message: "<arg> must ...", "<arg>[i] must ..."
        if re.search(rf"(?<![\w.]){re.escape(arg)}(\[[^\]]*\])?(\s*\([^)]*\))?\s+must", msg):
            return "clear", msg
        return "unclear", f"{type(exc).__name__}: {msg}"
    except Exception as exc:                                   # IndexError, RuntimeError, ...
        return "unclear", f"{type(exc).__name__}: {exc}"
    return "silent", ""


def test_every_submodule_is_walked_or_listed():
    names = {m.name for m in pkgutil.iter_modules(ssmbook.__path__) if not m.name.startswith("_")}
    missing = names - set(MODULES) - ELSEWHERE
    assert not missing, f"public modules without a misuse table: {sorted(missing)}"


def test_every_public_callable_has_cases():
    missing = [f"{m}.{n}" for m, mod in MODULES.items() for n in public_callables(mod)
               if f"{m}.{n}" not in CASES and f"{m}.{n}" not in NO_ARGUMENTS]
    assert not missing, f"public callables without misuse cases: {missing}"
    stale = [k for k in CASES if not hasattr(MODULES[k.split(".")[0]], k.split(".")[1])]
    assert not stale, f"table entries for names that no longer exist: {stale}"


@functools.cache
def verdicts(module: str) -> tuple:
    """``(name, label, arg, verdict, detail)`` for every misuse case of ``module``'s callables."""
    return tuple((name, label, arg, *classify(call, arg))
                 for name, cases in CASES.items() if name.split(".")[0] == module
                 for label, call, arg in cases)


def counts_table() -> tuple[str, dict]:
    """The walk's counts per module and in total, as a text table, and the totals."""
    rows, total = [], {"cases": 0, "clear": 0, "unclear": 0, "silent": 0}
    for module in sorted(MODULES):
        found = [v[3] for v in verdicts(module)]
        row = {"cases": len(found), **{k: found.count(k) for k in ("clear", "unclear", "silent")}}
        rows.append(f"  {module:12s} {row['cases']:6d} {row['clear']:6d} {row['unclear']:8d} {row['silent']:7d}")
        total = {k: total[k] + row[k] for k in total}
    head = f"  {'module':12s} {'cases':>6s} {'clear':>6s} {'unclear':>8s} {'silent':>7s}"
    foot = f"  {'all':12s} {total['cases']:6d} {total['clear']:6d} {total['unclear']:8d} {total['silent']:7d}"
    return "\n".join(["api errors walk:", head, *rows, foot]), total


@pytest.mark.parametrize("module", sorted(MODULES))
def test_bad_input_gets_a_clear_error(module):
    found = verdicts(module)
    assert found, f"{module} has no misuse cases"
    bad = [f"{verdict:8s} {name} [{label}] (should name {arg!r}) {detail[:160]}"
           for name, label, arg, verdict, detail in found if verdict != "clear"]
    assert not bad, f"{len(bad)} of {len(found)} misuses of {module} without a clear error:\n" + "\n".join(bad)


def test_counts_summary(capsys):
    """Print the walk's counts (cases, clear, unclear, silent) per module and in total; the
    numbers add up, and every case has exactly one verdict."""
    table, total = counts_table()
    with capsys.disabled():
        print("\n" + table)
    assert total["cases"] == sum(len(c) for c in CASES.values())
    assert total["cases"] == total["clear"] + total["unclear"] + total["silent"]


@pytest.mark.parametrize("name", sorted(NO_ARGUMENTS))
def test_callables_without_arguments_reject_arguments(name):
    mod, attr = name.split(".")
    with pytest.raises(TypeError):
        getattr(MODULES[mod], attr)(object())


if __name__ == "__main__":
    print(counts_table()[0])
