"""Shared parts of the selective-scan kernels: the @triton.jit helpers and the host's device checks.

The jit helpers are inlined into every kernel that calls them: ``combine`` (the scan operator of a
first-order linear recurrence), ``softplus`` and ``sigmoid`` written with the math the interpreter
has, ``load_delta`` (Δ with its bias and softplus, the identity step where masked) and
``channel_params`` (the per-channel bias and skip weight). The host helpers say whether Triton's
interpreter runs (``interpreting``), which GPU a device is (``gpu_of``), which input dtypes the
kernels take there (``triton_dtypes``), and refuse what the kernels cannot run.
"""
import functools
import os

import torch
import triton
import triton.language as tl

# --- jit helpers, inlined into the kernels ---


@triton.jit
def combine(a_earlier, b_earlier, a_later, b_later):
    # The scan operator of a first-order linear recurrence: first apply the earlier step
    # h -> a_earlier h + b_earlier, then the later one. It is associative, which is all
    # tl.associative_scan needs.
    return a_later * a_earlier, a_later * b_earlier + b_later


@triton.jit
def softplus(x):
    # softplus(x) = log(1 + e^x), written out because the interpreter has no libdevice log1p.
    # Like torch, return x itself above 20. The factor e / (w - 1) corrects the rounding of
    # w = 1 + e (a classic log1p trick), so tiny values of e^x keep their precision.
    e = tl.exp(tl.minimum(x, 20.0))
    w = 1.0 + e
    wm1 = w - 1.0
    lp = tl.where(wm1 == 0.0, e, tl.log(w) * (e / tl.where(wm1 == 0.0, 1.0, wm1)))
    return tl.where(x > 20.0, x, lp)


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def load_delta(delta_ptr, offs, mask, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
               EV: tl.constexpr):
    # Returns (raw = delta + bias, δ = softplus(raw) or raw), both float32, δ = 0 where masked:
    # δ = 0 makes a masked step the identity of the scan (a = e^0 = 1, b = 0). ``bias`` comes
    # shaped to broadcast against the tile (channels along axis 0 or 1); EV: eviction policy.
    raw = tl.load(delta_ptr + offs, mask=mask, other=0.0, eviction_policy=EV).to(tl.float32)
    if HAS_BIAS:
        raw = raw + bias
    dt = raw
    if SOFTPLUS:
        dt = softplus(raw)
    return raw, tl.where(mask, dt, 0.0)


@triton.jit
def channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr,
                   BLOCK_D: tl.constexpr):
    # The Δ bias and the skip weight D of a block of channels, float32 (zeros when absent)
    bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dskip = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_D:
        Dskip = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    return bias, Dskip



#: log2(e): the loop kernels compute exp(δA) as exp2(δ · A log2 e), one multiply and one ex2.
LOG2E = tl.constexpr(1.4426950408889634)


# --- host helpers: the interpreter, the device and its capability ---


def interpreting():
    """Whether Triton runs through its interpreter (``TRITON_INTERPRET=1``, CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def check_device(x, name="u"):
    """Refuse a CPU tensor ``x`` (the argument ``name``) unless the interpreter runs: the compiled
    kernels need CUDA."""
    if not x.is_cuda and not interpreting():
        raise ValueError(
            f"{name} must be a CUDA tensor for the compiled Triton kernels, got device {x.device}; for CPU "
            "tensors set TRITON_INTERPRET=1 before triton is imported (importing ssmbook.kernels "
            "first does it on machines without CUDA), or use backend='torch'"
        )


#: Compute capability from which the Triton path takes bfloat16 inputs and the loop forward uses
#: eviction hints. Below it (Colab's T4 is sm_75) bfloat16 has no arithmetic units; the kernels
#: would only load and store it, in conversions Triton emulates on a GPU generation that Triton >= 3.3
#: does not list as supported, and the hints compile to plain L1 loads (no ``createpolicy``).
AMPERE = (8, 0)


def gpu_of(device):
    """(name, (major, minor)) of a CUDA device, or None for any other device."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return _cuda_gpu(device.index if device.index is not None else torch.cuda.current_device())


@functools.lru_cache(maxsize=None)
def _cuda_gpu(i):
    # a device's name and capability do not change while the process runs; asking the driver
    # on every call cost microseconds of host time per launch
    return torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i))


def triton_dtypes(device):
    """The input dtypes the Triton path takes on ``device``: float32 and float16 everywhere,
    bfloat16 from compute capability 8.0 (Ampere) on."""
    gpu = gpu_of(device)
    if gpu is not None and gpu[1] < AMPERE:
        return (torch.float32, torch.float16)
    return (torch.float32, torch.float16, torch.bfloat16)


def check_capability(u):
    """Refuse an input dtype the kernels do not take on u's GPU (bfloat16 before Ampere), saying
    what to use instead. Not a silent fallback: an explicit backend="triton" gets the kernel or
    an error; ssmbook.selective's backend="auto" routes such inputs to torch itself."""
    gpu = gpu_of(u.device)
    if gpu is None or u.dtype in triton_dtypes(u.device):
        return
    name, (major, minor) = gpu
    raise ValueError(
        f"u has dtype {u.dtype}, which the Triton kernels do not take on {name} (sm_{major}{minor}, "
        f"compute capability {major}.{minor}; bfloat16 needs {AMPERE[0]}.{AMPERE[1]} or newer): "
        "pass float16 or float32 inputs, or use backend='torch' (which computes in float32)")


def hints_supported(device):
    """Whether eviction hints are cache policies on ``device`` (Ampere on, and the interpreter)."""
    gpu = gpu_of(device)
    return gpu is None or gpu[1] >= AMPERE


# --- host helpers: the arguments of a launch ---


def launch_flags(D, z, delta_bias, delta_softplus):
    """The constexpr flags of the optional inputs, shared by all four kernels."""
    return dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                SOFTPLUS=bool(delta_softplus))


def or_dummy(dummy, *tensors):
    """The optional tensors, each absent one replaced by ``dummy``: it stands in for a pointer
    that is never read (the constexpr flag of that input is off)."""
    return tuple(t if t is not None else dummy for t in tensors)


def forward_outputs(u, N, n_chunks, checkpoints):
    """The buffers a forward kernel writes: the output (like ``u``) and the checkpoints, float32
    (batch, dim, n_chunks, N) with ``checkpoints`` (the state at every chunk end, for the backward
    pass), else (batch, dim, 1, N), only the last state."""
    batch, dim, _ = u.shape
    ckpt = torch.empty(batch, dim, n_chunks if checkpoints else 1, N, device=u.device,
                       dtype=torch.float32)
    return torch.empty_like(u), ckpt
