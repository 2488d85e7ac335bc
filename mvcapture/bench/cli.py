"""`mvcapture bench NAME`: each benchmark module registers one sub-command here."""

from __future__ import annotations

import importlib

# Benchmark modules; each exposes `register(bench_subparsers)`.
BENCH_MODULES: list[str] = [
    "mvcapture.bench.procrustes",
    "mvcapture.bench.lifter",
    "mvcapture.bench.sync",
    "mvcapture.bench.live",
    "mvcapture.bench.finetune",
    "mvcapture.bench.stereo",
]


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark (ratios side by side, hardware named)")
    bench_sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name in BENCH_MODULES:
        importlib.import_module(name).register(bench_sub)
