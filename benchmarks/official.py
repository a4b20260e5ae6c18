"""Build and load the official mamba_ssm selective-scan CUDA extension (benchmark peer only).

The official kernel is not part of ssmbook: it is the peer our Triton kernel is measured against.
Its PyPI sdist (``mamba_ssm-2.3.2.post1.tar.gz``) is downloaded on a machine with internet, unpacked
under ``.device/`` (git-ignored) and carried to the GPU machine, where only the ``selective_scan_cuda``
extension is compiled, for sm_90 alone, with the compile flags its ``setup.py`` uses.  Nothing from
that project is copied into this repository: its Python wrapper ``selective_scan_fn`` is loaded from
the unpacked sdist at run time, with stub modules for the imports it does not need here.

    python benchmarks/official.py build --src .device/mamba_ssm-2.3.2.post1 --out $OUT/ext
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
import time
import types

import common

SOURCES = [
    "selective_scan.cpp",
    "selective_scan_fwd_fp32.cu",
    "selective_scan_fwd_fp16.cu",
    "selective_scan_fwd_bf16.cu",
    "selective_scan_bwd_fp32_real.cu",
    "selective_scan_bwd_fp32_complex.cu",
    "selective_scan_bwd_fp16_real.cu",
    "selective_scan_bwd_fp16_complex.cu",
    "selective_scan_bwd_bf16_real.cu",
    "selective_scan_bwd_bf16_complex.cu",
]

# The nvcc flags of mamba_ssm 2.3.2's setup.py, minus the diagnostics (-lineinfo, ptxas -v) and with a
# single target: sm_90 (H100 / H200).  A full multi-architecture build takes far longer.
NVCC_FLAGS = [
    "-O3",
    "-std=c++17",
    "-U__CUDA_NO_HALF_OPERATORS__",
    "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT16_OPERATORS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT162_OPERATORS__",
    "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
    "--expt-relaxed-constexpr",
    "--expt-extended-lambda",
    "--use_fast_math",
    "-gencode",
    "arch=compute_90,code=sm_90",
]
CXX_FLAGS = ["-O3", "-std=c++17"]


def build(src: pathlib.Path, out: pathlib.Path, verbose: bool = True) -> pathlib.Path:
    """Compile csrc/selective_scan of the unpacked sdist ``src`` into ``out``; return the .so path."""
    from torch.utils import cpp_extension

    os.environ.setdefault("MAX_JOBS", "16")
    os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0"  # keeps cpp_extension from adding other targets
    csrc = pathlib.Path(src) / "csrc" / "selective_scan"
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cpp_extension.load(
        name="selective_scan_cuda",
        sources=[str(csrc / s) for s in SOURCES],
        extra_cflags=CXX_FLAGS,
        extra_cuda_cflags=NVCC_FLAGS,
        extra_include_paths=[str(csrc)],
        build_directory=str(out),
        verbose=verbose,
    )
    so = next(out.glob("selective_scan_cuda*.so"))
    print(f"built {so} ({so.stat().st_size / 2**20:.1f} MiB) in {time.time() - t0:.0f} s", flush=True)
    return so


def join_parts(parts_dir: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """Reassemble ``selective_scan_cuda.so.part*`` (gzip, split to pass a 16 MiB transfer limit)."""
    import gzip

    parts = sorted(pathlib.Path(parts_dir).glob("selective_scan_cuda.so.part*"))
    if not parts:
        raise FileNotFoundError(f"no selective_scan_cuda.so.part* under {parts_dir}")
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(gzip.decompress(b"".join(p.read_bytes() for p in parts)))
    return dest


def split_file(path: pathlib.Path, out_dir: pathlib.Path, chunk: int = 15 * 2**20) -> list:
    path, out_dir = pathlib.Path(path), pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = path.read_bytes()
    names = []
    for i in range(0, len(data), chunk):
        p = out_dir / f"selective_scan_cuda.so.part{i // chunk:02d}"
        p.write_bytes(data[i:i + chunk])
        names.append(p)
    return names


def load_selective_scan_fn(so_path, src):
    """Import the compiled extension and the sdist's ``selective_scan_fn`` without installing mamba_ssm.

    ``selective_scan_interface.py`` imports ``mamba_ssm.utils.torch`` (loaded from the sdist),
    ``mamba_ssm.ops.triton.layer_norm`` (stubbed: only the fused Mamba block uses it), einops and
    the extension module ``selective_scan_cuda``.
    """
    import torch  # noqa: F401  (the extension links libtorch: torch must be loaded first)

    src = pathlib.Path(src)
    spec = importlib.util.spec_from_file_location("selective_scan_cuda", str(so_path))
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    sys.modules["selective_scan_cuda"] = ext

    for name in ["mamba_ssm", "mamba_ssm.utils", "mamba_ssm.ops", "mamba_ssm.ops.triton"]:
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = []
            sys.modules[name] = pkg
    utils_spec = importlib.util.spec_from_file_location(
        "mamba_ssm.utils.torch", str(src / "mamba_ssm" / "utils" / "torch.py"))
    utils = importlib.util.module_from_spec(utils_spec)
    utils_spec.loader.exec_module(utils)
    sys.modules["mamba_ssm.utils.torch"] = utils
    ln = types.ModuleType("mamba_ssm.ops.triton.layer_norm")
    ln._layer_norm_fwd = None
    sys.modules["mamba_ssm.ops.triton.layer_norm"] = ln

    iface_spec = importlib.util.spec_from_file_location(
        "official_selective_scan_interface",
        str(src / "mamba_ssm" / "ops" / "selective_scan_interface.py"))
    iface = importlib.util.module_from_spec(iface_spec)
    iface_spec.loader.exec_module(iface)
    return iface.selective_scan_fn


def check(fn, device="cuda", sizes=((2, 24, 37, 16), (1, 8, 1, 4), (2, 16, 300, 8))):
    """Compare ``fn`` (forward and gradients) with the float64 loop oracle of ssmbook on fresh inputs."""
    import torch

    common.ensure_importable()
    from ssmbook.selective import selective_scan_ref

    report = []
    for (b, d, L, n) in sizes:
        for dtype in (torch.float32, torch.bfloat16):
            for with_z in (False, True):
                kw = common.make_inputs(b, d, L, n, dtype, with_z, device, seed=b * 1000 + L)
                grad_names = ["u", "delta", "A", "B", "C", "D", "delta_bias"]
                x = {k: (v.detach().clone().requires_grad_(k in grad_names) if isinstance(v, torch.Tensor)
                         else v) for k, v in kw.items()}
                x64 = {k: (v.detach().double().cpu().requires_grad_(k in grad_names)
                           if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
                out = fn(**x)
                ref = selective_scan_ref(**x64)
                dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
                out.backward(dout.to(out.device, out.dtype))
                ref.backward(dout.double())
                errs = {"out": common.rel_err(out, ref)}
                for k in grad_names:
                    errs["d" + k] = common.rel_err(x[k].grad, x64[k].grad)
                tol = 1e-4 if dtype == torch.float32 else 3e-2
                worst = max(errs.values())
                ok = worst < tol and all(v == v for v in errs.values())
                report.append(dict(shape=(b, d, L, n), dtype=str(dtype), z=with_z, ok=ok, worst=worst, **errs))
                print(f"check {(b, d, L, n)} {dtype} z={with_z}: worst rel err {worst:.2e} "
                      f"{'OK' if ok else 'FAIL'}", flush=True)
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["build", "check"])
    ap.add_argument("--src", default=str(common.OFFICIAL_SRC))
    ap.add_argument("--out", required=True, help="build directory (holds the .so for 'check')")
    ap.add_argument("--split", default=None, help="also split the .so into 15 MiB parts in this folder")
    args = ap.parse_args(argv)
    if args.action == "build":
        so = build(pathlib.Path(args.src), pathlib.Path(args.out))
        if args.split:
            import gzip

            gz = pathlib.Path(str(so) + ".gz")
            gz.write_bytes(gzip.compress(so.read_bytes(), compresslevel=6))
            for p in split_file(gz, pathlib.Path(args.split)):
                print("part", p, p.stat().st_size)
    else:
        so = next(pathlib.Path(args.out).glob("selective_scan_cuda*.so"))
        fn = load_selective_scan_fn(so, pathlib.Path(args.src))
        rep = check(fn)
        if not all(r["ok"] for r in rep):
            sys.exit("official kernel disagrees with the float64 oracle")


if __name__ == "__main__":
    main()
