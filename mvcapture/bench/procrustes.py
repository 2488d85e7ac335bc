"""`mvcapture bench procrustes`: batched torch Procrustes (sequence mode) against a per-sequence numpy SVD
loop, measured side by side on the same random poses, with the largest difference between the two."""

from __future__ import annotations

import numpy as np

from mvcapture.cli import add_json_option, write_json


def register(bench_sub) -> None:
    parser = bench_sub.add_parser("procrustes", help="batched torch Procrustes vs a per-sequence numpy loop")
    parser.add_argument("--sequences", type=int, default=1024, help="batch size B (default 1024)")
    parser.add_argument("--frames", type=int, default=243, help="frames per sequence T (default 243)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant, median kept")
    add_json_option(parser)
    parser.set_defaults(func=run)


def numpy_loop(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Reference: one similarity Procrustes per sequence with numpy's SVD; (B, T, J, 3) → aligned src."""
    out = np.empty_like(src)
    for i in range(src.shape[0]):
        x, y = src[i].reshape(-1, 3), dst[i].reshape(-1, 3)
        mu_x, mu_y = x.mean(0), y.mean(0)
        xc, yc = x - mu_x, y - mu_y
        U, S, Vt = np.linalg.svd(xc.T @ yc)
        d = np.sign(np.linalg.det(U @ Vt))
        S[2] *= d
        U[:, 2] *= d
        R = U @ Vt
        s = S.sum() / (xc * xc).sum()
        out[i] = (s * xc @ R + mu_y).reshape(src.shape[1:])
    return out


def run(args) -> int:
    import torch

    from mvcapture.bench.common import hardware, time_call
    from mvcapture.core.procrustes import procrustes_torch

    B, T, J = args.sequences, args.frames, 17
    rng = np.random.default_rng(0)
    src = rng.normal(scale=0.3, size=(B, T, J, 3))
    dst = src @ np.linalg.qr(rng.normal(size=(3, 3)))[0] * 1.3 + rng.normal(scale=0.01, size=src.shape) + 0.5

    print(f"Procrustes, sequence mode, B={B} sequences x T={T} frames x J={J} joints")
    hw = hardware()
    print(f"hardware: {hw['cpu']} ({hw['cpu_cores']} cores, torch {hw['torch_threads']} threads)"
          + (f", GPU {hw['cuda']}" if hw["cuda"] else ", no CUDA"))
    ref_aligned = numpy_loop(src, dst)
    t_numpy = time_call(lambda: numpy_loop(src, dst), repeats=args.repeats, warmup=0)
    print(f"numpy per-sequence loop (float64, CPU): {t_numpy * 1e3:9.1f} ms")
    results = {"hardware": hw, "B": B, "T": T, "J": J, "numpy_loop_s": t_numpy, "torch": []}

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results["memory_floor"] = []
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else None
        for dtype in (torch.float64, torch.float32):
            x = torch.from_numpy(src).to(device=device, dtype=dtype)
            y = torch.from_numpy(dst).to(device=device, dtype=dtype)
            with torch.no_grad():
                t = time_call(lambda: procrustes_torch(x, y), repeats=args.repeats, warmup=1, sync=sync)
                aligned = procrustes_torch(x, y).aligned.double().cpu().numpy()
            diff = float(np.abs(aligned - ref_aligned).max())
            name = str(dtype).replace("torch.", "")
            print(f"torch batched ({name}, {device}): {t * 1e3:9.1f} ms   speed-up x{t_numpy / t:7.1f}   "
                  f"max |diff| vs numpy {diff:.2e}")
            results["torch"].append({"device": device, "dtype": name, "seconds": t,
                                     "speedup_vs_numpy": t_numpy / t, "max_abs_diff": diff})
            # The least any batched version must do: read src and dst once, write one aligned array.
            floor = time_call(lambda: torch.add(x, y), repeats=args.repeats, warmup=1, sync=sync)
            print(f"  memory floor ({name}, {device}: read src + dst, write one array): {floor * 1e3:9.1f} ms   "
                  f"= the most any batched version can gain here: x{t_numpy / floor:7.1f}")
            results["memory_floor"].append({"device": device, "dtype": name, "seconds": floor,
                                            "max_speedup_vs_numpy": t_numpy / floor})
    write_json(args.json, results)
    return 0
