"""Time the four steps of the chunked SSD algorithm (ssmbook.ssd) on a CUDA GPU.

    python benchmarks/bench_ssd.py OUT.json

For each dtype and chunk length: the median time of each step (diagonal blocks, chunk states, state
passing, off-diagonal read-out) and of the whole `ssd`, the operation counts of `ssd_flops`, and the
throughput of the matmul steps; plus the step-by-step recurrence (a loop of L small operations) once.
"""
import json
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common

common.ensure_importable()
from ssmbook import ssd as S


def median_ms(fn):
    """Median of ``triton.testing.do_bench`` on the GPU (common.bench_ms)."""
    return common.bench_ms(fn, "cuda")


def main(out):
    dev = torch.device("cuda")
    b, L, h, p, n = 4, 4096, 32, 64, 128
    results = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "shape": {"batch": b, "L": L, "heads": h, "head_dim": p, "N": n}, "runs": []}
    g = torch.Generator(device=dev).manual_seed(0)
    for dtype in (torch.bfloat16, torch.float32):
        X = torch.randn(b, L, h, p, device=dev, generator=g).to(dtype)
        A = (-torch.rand(b, L, h, device=dev, generator=g) * 0.1).to(dtype)
        B = torch.randn(b, L, h, n, device=dev, generator=g).to(dtype)
        C = torch.randn(b, L, h, n, device=dev, generator=g).to(dtype)
        for Q in (64, 256):
            c = L // Q
            Xc, Bc, Cc = (t.reshape(b, c, Q, *t.shape[2:]) for t in (X, B, C))
            Ac = A.reshape(b, c, Q, h).permute(0, 3, 1, 2)
            states = S.ssd_chunk_states(Xc, Ac, Bc)
            entering, _ = S.ssd_state_passing(states, Ac.sum(-1))
            t = {
                "diag_blocks": median_ms(lambda: S.ssd_diag_blocks(Xc, Ac, Bc, Cc)),
                "chunk_states": median_ms(lambda: S.ssd_chunk_states(Xc, Ac, Bc)),
                "state_passing": median_ms(lambda: S.ssd_state_passing(states, Ac.sum(-1))),
                "off_diag": median_ms(lambda: S.ssd_off_diag(Cc, Ac, entering)),
                "ssd_total": median_ms(lambda: S.ssd(X, A, B, C, chunk=Q)),
            }
            f = S.ssd_flops(L, h, p, n, Q)
            matmul_ms = t["diag_blocks"] + t["chunk_states"] + t["off_diag"]
            run = {"dtype": str(dtype).replace("torch.", ""), "chunk": Q, "median_ms": t,
                   "flops_per_sequence": f,
                   "matmul_tflops": b * f["chunked_matmul"] / (matmul_ms * 1e-3) / 1e12,
                   "scan_share_of_time": t["state_passing"] / (matmul_ms + t["state_passing"])}
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    # the recurrence, one step at a time (float32), for scale
    X, A, B, C = (t.float() for t in (X, A, B, C))

    def recurrence():
        H = torch.zeros(b, h, p, n, device=dev)
        for s in range(L):
            H = torch.exp(A[:, s])[..., None, None] * H + X[:, s, :, :, None] * B[:, s, :, None, :]
            (H * C[:, s, :, None, :]).sum(-1)
    results["recurrence_loop_ms_float32"] = median_ms(recurrence)
    print("recurrence loop (float32):", results["recurrence_loop_ms_float32"], "ms", flush=True)
    pathlib.Path(out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
