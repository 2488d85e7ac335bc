"""`mvcapture bench finetune`: training throughput (view-windows per second) per lifter config.

Times full optimizer steps of the fine-tuning loop (forward of every view, reprojection + consistency
losses, backward, clipping, Adam) on synthetic windows; on CUDA also bf16 autocast against fp32.
"""

from __future__ import annotations

import argparse

from mvcapture.cli import add_json_option, write_json


def register(bench_subparsers) -> None:
    p = bench_subparsers.add_parser("finetune", help="fine-tuning samples/s per config (CPU; GPU bf16 vs fp32)")
    p.add_argument("--configs", nargs="+", default=["tiny", "small"], help="lifter configs to time")
    p.add_argument("--batch-size", type=int, default=4, help="windows per step (each with --views views)")
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--frames", type=int, default=None, help="window length (default: the config's maxlen)")
    p.add_argument("--variant", default="l2d_con")
    p.add_argument("--repeats", type=int, default=3)
    add_json_option(p)
    p.set_defaults(func=run)


class _RandomWindows:
    """Synthetic dataset items shaped like WindowDataset's (2D input, confidences)."""

    def __init__(self, n: int, views: int, frames: int, seed: int = 0):
        import torch

        gen = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            xy = torch.randn(views, frames, 17, 2, generator=gen) * 0.3
            conf = torch.rand(views, frames, 17, generator=gen) * 0.5 + 0.5
            self.items.append({"input": torch.cat([xy, conf[..., None]], -1), "kp2d_norm": xy, "conf": conf})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def measure(config_name: str, device: str, amp: bool, batch_size: int, views: int, frames: int | None,
            variant: str, repeats: int) -> dict:
    """Median seconds per optimizer step and samples (view-windows) per second."""
    import torch

    from mvcapture.bench.common import time_call
    from mvcapture.lifter import create_lifter
    from mvcapture.train.finetune import Trainer, TrainConfig, seed_everything

    seed_everything(0)
    model = create_lifter(config_name)
    frames = frames or int(model.maxlen)
    data = _RandomWindows(batch_size, views, frames)
    config = TrainConfig(variant=variant, batch_size=batch_size, amp=amp)
    trainer = Trainer(model, data, data, config, device=torch.device(device))
    batch = list(range(batch_size))
    sync = torch.cuda.synchronize if device == "cuda" else None
    seconds = time_call(lambda: trainer.train_step(batch), repeats=repeats, warmup=1, sync=sync)
    params = sum(p.numel() for p in model.parameters())
    return {"config": config_name, "device": device, "dtype": "bf16" if amp and device == "cuda" else "fp32",
            "params": params, "frames": frames, "views": views, "batch_size": batch_size,
            "step_s": seconds, "samples_per_s": batch_size * views / seconds,
            "frames_per_s": batch_size * views * frames / seconds}


def run(args: argparse.Namespace) -> int:
    import torch

    from mvcapture.bench.common import hardware

    rows = []
    for name in args.configs:
        rows.append(measure(name, "cpu", False, args.batch_size, args.views, args.frames, args.variant, args.repeats))
        if torch.cuda.is_available():
            for amp in (False, True):
                rows.append(measure(name, "cuda", amp, args.batch_size, args.views, args.frames, args.variant,
                                    args.repeats))
    hw = hardware()
    print(f"fine-tuning step ({args.variant}, {args.views} views, batch {args.batch_size}) on "
          f"{hw['cpu']} ({hw['torch_threads']} torch threads)" + (f", GPU {hw['cuda']}" if hw["cuda"] else ""))
    print(f"{'config':<8}{'device':<7}{'dtype':<6}{'params':>11}{'frames':>8}{'step s':>9}{'samples/s':>11}"
          f"{'frames/s':>11}")
    for r in rows:
        print(f"{r['config']:<8}{r['device']:<7}{r['dtype']:<6}{r['params']:>11,}{r['frames']:>8}{r['step_s']:>9.3f}"
              f"{r['samples_per_s']:>11.1f}{r['frames_per_s']:>11.0f}")
    ratios = {}
    for name in args.configs:
        fp32 = next((r for r in rows if r["config"] == name and r["device"] == "cuda" and r["dtype"] == "fp32"), None)
        bf16 = next((r for r in rows if r["config"] == name and r["device"] == "cuda" and r["dtype"] == "bf16"), None)
        cpu = next(r for r in rows if r["config"] == name and r["device"] == "cpu")
        if fp32 and bf16:
            ratios[name] = {"bf16_vs_fp32": bf16["samples_per_s"] / fp32["samples_per_s"],
                            "gpu_bf16_vs_cpu": bf16["samples_per_s"] / cpu["samples_per_s"]}
            print(f"{name}: GPU bf16 / fp32 = {ratios[name]['bf16_vs_fp32']:.2f}x, "
                  f"GPU bf16 / CPU = {ratios[name]['gpu_bf16_vs_cpu']:.1f}x")
    write_json(args.json, {"hardware": hw, "variant": args.variant, "results": rows, "ratios": ratios})
    return 0
