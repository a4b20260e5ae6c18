"""Compile every kernel variant offline and compare the PTX of two versions of the kernels.

    PYTHONPATH=$PWD python scripts/ptx_diff.py dump /tmp/ptx_before      # every variant, one .ptx each
    PYTHONPATH=$PWD python scripts/ptx_diff.py compare /tmp/ptx_before /tmp/ptx_after

``dump`` runs the host code over the cases of ``ssmbook.kernels.targets`` with the kernels replaced
by recorders, compiles each distinct launch for one target (``--arch``, default sm_90) and writes its
PTX with an index (``index.json``: a stable key per variant -> file). ``compare`` matches the
variants of two dumps by key and compares their PTX after normalising what a move of the code may
change without changing the machine code: the names of the kernels and jit helpers (``--rename``
pairs, by default the old private names -> the public ones of the package) and the source
positions (``.loc``/``.file`` lines and the debug sections, which carry file names and line
numbers). It prints one line per variant and exits 1 when any differs or is missing.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import re
import sys

#: Old names of the kernels and jit helpers -> their names in kernels/selective_scan/.
RENAMES = {
    "_selective_scan_fwd_loop_kernel": "recurrent_fwd_kernel",
    "_selective_scan_bwd_loop_kernel": "recurrent_bwd_kernel",
    "_selective_scan_fwd_kernel": "chunk_fwd_kernel",
    "_selective_scan_bwd_kernel": "chunk_bwd_kernel",
    "_combine": "combine",
    "_softplus": "softplus",
    "_sigmoid": "sigmoid",
    "_load_delta": "load_delta",
    "_channel_params": "channel_params",
}


def _canonical(name):
    return RENAMES.get(name, name)


def variant_key(variant):
    """A key naming a variant independently of where its kernel lives: the kernel's (new) name,
    the dtypes and specialisations of its arguments, its constexprs and options."""
    import torch

    fn, args, meta = variant["fn"], variant["args"], variant["meta"]
    sig = []
    for p, a in zip(fn.arg_names, args):
        if isinstance(a, torch.Tensor):
            sig.append(f"{p}:{str(a.dtype).replace('torch.', '')}")
        elif a == 1 and p not in getattr(fn, "do_not_specialize", ()):
            sig.append(f"{p}=1")
    flags = ",".join(f"{k}={v}" for k, v in sorted(meta.items()))
    return f"{_canonical(variant['kernel'])}|{' '.join(sig)}|{flags}"


def dump(out_dir, arch):
    from ssmbook.kernels import targets

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = {}
    variants = targets.record_launches()
    for i, v in enumerate(variants):
        key = variant_key(v)
        res = targets.compile_variant(v, ("cuda", arch, 32), cubin=False)
        name = f"{i:02d}_{_canonical(v['kernel'])}_{hashlib.sha1(key.encode()).hexdigest()[:10]}.ptx"
        (out / name).write_text(res["ptx"])
        index[key] = dict(file=name, kernel=v["kernel"], describe=targets.describe(v),
                          cases=v["cases"])
        print(f"{i:2d} {v['kernel']:34} {targets.describe(v)}", flush=True)
    (out / "index.json").write_text(json.dumps(dict(arch=arch, variants=index), indent=1))
    print(f"{len(index)} variants -> {out}")


def normalise(ptx, renames=RENAMES):
    """PTX without source positions (``.loc``/``.file`` lines and the ``.debug_*`` sections, which
    hold file names, line numbers and the names of inlined helpers) and the ``$L__tmpN`` labels
    only they refer to, without ``//`` comments (the
    compiler aligns them after the names, so a rename moves them), and with the old names of the
    kernels and helpers replaced by the new ones (also inside ``<name>_param_0`` and the like)."""
    lines, in_debug = [], False
    for ln in ptx.splitlines():
        if in_debug:
            in_debug = ln.strip() != "}"
            continue
        if re.match(r"\s*\.section\s+\.debug_", ln):
            in_debug = "}" not in ln
            continue
        if re.match(r"\s*\.(loc|file)\b", ln):
            continue
        if re.fullmatch(r"\$L__tmp\d+:", ln.strip()):
            continue   # labels that only the debug sections refer to (an inlined helper adds some)
        code = re.sub(r"\s*//.*$", "", ln)   # comments: the assembler's, padded to a column
        if code.strip() or not ln.strip():
            lines.append(code)
    text = "\n".join(lines)
    for old in sorted(renames, key=len, reverse=True):   # a longer name first, replaced whole
        text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(old)}(?![A-Za-z0-9])", renames[old], text)
    return text


def compare(before, after):
    a_dir, b_dir = pathlib.Path(before), pathlib.Path(after)
    a = json.loads((a_dir / "index.json").read_text())["variants"]
    b = json.loads((b_dir / "index.json").read_text())["variants"]
    same = differ = 0
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            where = "only before" if key in a else "only after"
            print(f"MISSING ({where}) {key}")
            differ += 1
            continue
        pa = normalise((a_dir / a[key]["file"]).read_text())
        pb = normalise((b_dir / b[key]["file"]).read_text())
        if pa == pb:
            same += 1
            print(f"same    {_canonical(a[key]['kernel']):22} {a[key]['describe']}")
        else:
            differ += 1
            la, lb = pa.splitlines(), pb.splitlines()
            first = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
            print(f"DIFFERS {_canonical(a[key]['kernel']):22} {a[key]['describe']} (first at line "
                  f"{first + 1}: {la[first:first + 1]} vs {lb[first:first + 1]})")
    print(json.dumps(dict(compared=same + differ, identical=same, different=differ)))
    return differ == 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="compile every variant and write its PTX")
    d.add_argument("out")
    d.add_argument("--arch", type=int, default=90)
    c = sub.add_parser("compare", help="compare two dumps")
    c.add_argument("before")
    c.add_argument("after")
    args = p.parse_args(argv)
    if args.cmd == "dump":
        dump(args.out, args.arch)
        return 0
    return 0 if compare(args.before, args.after) else 1


if __name__ == "__main__":
    # the compiling Triton, not its interpreter (importing ssmbook.kernels would switch it on
    # on a machine without CUDA), and a fresh cache so that every variant is compiled here
    if os.environ.get("TRITON_INTERPRET") != "0" and sys.argv[1:2] == ["dump"]:
        import subprocess
        import tempfile

        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": cache}
            sys.exit(subprocess.run([sys.executable, *sys.argv], env=env).returncode)
    sys.exit(main())
