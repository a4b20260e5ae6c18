import cProfile, pstats, sys, time, io
sys.path.insert(0, 'benchmarks'); import common
common.ensure_importable()
import torch, triton, triton.language as tl
from ssmbook.kernels.selective_scan import selective_scan_triton

@triton.jit
def empty_kernel(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, X1: tl.constexpr, X2: tl.constexpr):
    pass

x = torch.zeros(16, device="cuda")
def launch(): empty_kernel[(1,)](x, x, x, x, x, x, x, x, x, x, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, X1=1, X2=2)
def per_call_us(fn, n=500):
    for _ in range(20): fn()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): fn()
    dt = (time.perf_counter() - t) / n * 1e6; torch.cuda.synchronize(); return round(dt, 1)
y = torch.zeros(1 << 16, device="cuda"); w = torch.empty_like(y)
print("empty triton launch us", per_call_us(launch))
print("torch.empty us", per_call_us(lambda: torch.empty(1000, device="cuda")))
print("small copy_ us", per_call_us(lambda: w.copy_(y)))
print("small sum us", per_call_us(lambda: y.sum()))
print("gpu_of us", per_call_us(lambda: torch.cuda.get_device_name(0)))
for shape, z in [((32, 768, 256, 16), False), ((1, 1536, 256, 16), True)]:
    kw = common.make_inputs(*shape, torch.float32, z, "cuda")
    leaves = common.leaves_of(kw); kw2 = {**kw, **leaves}; lv = list(leaves.values())
    dout = torch.randn_like(kw["u"])
    f = lambda: selective_scan_triton(**kw)
    fb = lambda: torch.autograd.grad(selective_scan_triton(**kw2), lv, dout)
    print(shape, "fwd us", per_call_us(f, 200), "fwd+bwd us", per_call_us(fb, 200))
    for name, fn in (("fwd", f), ("fwd+bwd", fb)):
        pr = cProfile.Profile(); pr.enable()
        for _ in range(100): fn()
        pr.disable(); torch.cuda.synchronize()
        s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(22)
        print("=== cProfile", shape, name); print("\n".join(s.getvalue().splitlines()[6:32]))
