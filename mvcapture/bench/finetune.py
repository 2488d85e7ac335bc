"""`mvcapture bench finetune`: training throughput (view-windows per second) per lifter config.

Times full optimizer steps of the fine-tuning loop (forward of every view, reprojection + consistency
losses, backward, clipping, Adam) on synthetic windows; on CUDA also bf16 autocast against fp32. On the
CPU each config is timed with torch's default threads and with the thread policy's training budget
(`mvcapture.threads`), alone and beside one competing busy process (a CPU-burning child, time-bounded and
killed after the measurement), as on a laptop where the app itself keeps a core busy. Goal: the policy's
step with a competing process ≤ 1.3 × the single-thread step alone.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys

from mvcapture.cli import add_json_option, write_json


def register(bench_subparsers) -> None:
    p = bench_subparsers.add_parser("finetune", help="fine-tuning samples/s per config (CPU; GPU bf16 vs fp32)")
    p.add_argument("--configs", nargs="+", default=["tiny", "small"], help="lifter configs to time")
    p.add_argument("--batch-size", type=int, default=4, help="windows per step (each with --views views)")
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--frames", type=int, default=None, help="window length (default: the config's maxlen)")
    p.add_argument("--variant", default="l2d_con")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-compete", dest="compete", action="store_false",
                   help="CPU: time alone only (no run beside a competing busy process)")
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


GOAL_COMPETING_OVER_ALONE = 1.3
# upper bound of a competing process's life: it is killed after its measurement, this only guards a crash
BUSY_MAX_S = 600


@contextlib.contextmanager
def busy_process(seconds: float = BUSY_MAX_S):
    """One competing process keeping a core busy (pure-Python spin loop) while the block runs; killed after."""
    code = f"import time\nend = time.monotonic() + {float(seconds)}\nwhile time.monotonic() < end:\n    pass\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def measure(config_name: str, device: str, amp: bool, batch_size: int, views: int, frames: int | None,
            variant: str, repeats: int, threads: int | None = None, competing: bool = False) -> dict:
    """Median seconds per optimizer step and samples (view-windows) per second.

    `threads`: torch CPU threads for this measurement (None: as set); `competing`: beside one busy process.
    """
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
    if threads is not None:
        torch.set_num_threads(threads)
    with busy_process() if competing else contextlib.nullcontext():
        seconds = time_call(lambda: trainer.train_step(batch), repeats=repeats, warmup=1, sync=sync)
    params = sum(p.numel() for p in model.parameters())
    return {"config": config_name, "device": device, "dtype": "bf16" if amp and device == "cuda" else "fp32",
            "params": params, "frames": frames, "views": views, "batch_size": batch_size,
            "threads": torch.get_num_threads() if device == "cpu" else None, "competing": competing,
            "step_s": seconds, "samples_per_s": batch_size * views / seconds,
            "frames_per_s": batch_size * views * frames / seconds}


def cpu_settings(default_threads: int, policy_threads: int, compete: bool) -> list[tuple[int, bool]]:
    """(threads, competing) pairs to time on the CPU: default and policy threads alone, one thread alone
    (the goal's reference), and default and policy threads beside a busy process."""
    alone = list(dict.fromkeys([default_threads, policy_threads, 1]))
    both = list(dict.fromkeys([default_threads, policy_threads])) if compete else []
    return [(n, False) for n in alone] + [(n, True) for n in both]


def competing_ratio(rows: list[dict], name: str, policy_threads: int) -> float | None:
    """Step time of the policy's threads beside a busy process over the one-thread step alone."""
    cpu = {(r["threads"], r["competing"]): r for r in rows if r["config"] == name and r["device"] == "cpu"}
    if (policy_threads, True) not in cpu or (1, False) not in cpu:
        return None
    return cpu[(policy_threads, True)]["step_s"] / cpu[(1, False)]["step_s"]


def run(args: argparse.Namespace) -> int:
    import torch

    from mvcapture import threads
    from mvcapture.bench.common import hardware

    default_threads = torch.get_num_threads()
    policy_threads = threads.budget("train", live=False)
    rows = []
    for name in args.configs:
        for n, competing in cpu_settings(default_threads, policy_threads, args.compete):
            rows.append(measure(name, "cpu", False, args.batch_size, args.views, args.frames, args.variant,
                                args.repeats, threads=n, competing=competing))
        if torch.cuda.is_available():
            for amp in (False, True):
                rows.append(measure(name, "cuda", amp, args.batch_size, args.views, args.frames, args.variant,
                                    args.repeats))
    torch.set_num_threads(default_threads)
    hw = hardware()
    print(f"fine-tuning step ({args.variant}, {args.views} views, batch {args.batch_size}) on "
          f"{hw['cpu']} ({threads.physical_cores()} physical cores; torch default {default_threads} threads, "
          f"policy {policy_threads})" + (f", GPU {hw['cuda']}" if hw["cuda"] else ""))
    print(f"{'config':<8}{'device':<7}{'dtype':<6}{'threads':>8}{'busy':>6}{'params':>11}{'frames':>8}"
          f"{'step s':>9}{'samples/s':>11}{'frames/s':>11}")
    for r in rows:
        print(f"{r['config']:<8}{r['device']:<7}{r['dtype']:<6}{str(r['threads'] or '-'):>8}"
              f"{'yes' if r['competing'] else 'no':>6}{r['params']:>11,}{r['frames']:>8}{r['step_s']:>9.3f}"
              f"{r['samples_per_s']:>11.1f}{r['frames_per_s']:>11.0f}")
    ratios = {}
    for name in args.configs:
        ratios[name] = {}
        competing = competing_ratio(rows, name, policy_threads)
        if competing is not None:
            old = competing_ratio(rows, name, default_threads)
            ratios[name].update(policy_competing_vs_1thread_alone=competing,
                                default_competing_vs_1thread_alone=old)
            print(f"{name}: with a competing busy process, policy ({policy_threads} thr) = {competing:.2f}x and "
                  f"default ({default_threads} thr) = {old:.2f}x the 1-thread step alone "
                  f"(goal <= {GOAL_COMPETING_OVER_ALONE})")
        fp32 = next((r for r in rows if r["config"] == name and r["device"] == "cuda" and r["dtype"] == "fp32"), None)
        bf16 = next((r for r in rows if r["config"] == name and r["device"] == "cuda" and r["dtype"] == "bf16"), None)
        cpu = next(r for r in rows if r["config"] == name and r["device"] == "cpu"
                   and r["threads"] == policy_threads and not r["competing"])
        if fp32 and bf16:
            ratios[name].update(bf16_vs_fp32=bf16["samples_per_s"] / fp32["samples_per_s"],
                                gpu_bf16_vs_cpu=bf16["samples_per_s"] / cpu["samples_per_s"])
            print(f"{name}: GPU bf16 / fp32 = {ratios[name]['bf16_vs_fp32']:.2f}x, "
                  f"GPU bf16 / CPU = {ratios[name]['gpu_bf16_vs_cpu']:.1f}x")
    write_json(args.json, {"hardware": hw, "variant": args.variant, "default_threads": default_threads,
                           "policy_threads": policy_threads, "physical_cores": threads.physical_cores(),
                           "goal_competing_over_alone": GOAL_COMPETING_OVER_ALONE, "results": rows,
                           "ratios": ratios})
    return 0
