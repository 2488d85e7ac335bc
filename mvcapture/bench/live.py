"""`mvcapture bench live`: time per frame of each live stage for two sources played as live cameras, and the
share of the frame time spent outside the 2D detector (goal: at most 10 %)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mvcapture import threads
from mvcapture.cli import add_json_option, write_json
from mvcapture.errors import ModelNotFoundError

# Share of the frame time the stages after the detector may take.
GOAL_OUTSIDE_DETECTOR = 0.10


def register(bench_subparsers) -> None:
    parser = bench_subparsers.add_parser(
        "live", help="per-stage time per frame of live mode on two sources",
        description="Play two videos as live cameras (default: the demo recording) through the live pipeline "
                    "and report each stage's time per frame pair and the share spent outside the detector.")
    parser.add_argument("--videos", type=Path, nargs=2, default=None, metavar=("A", "B"),
                        help="two videos to play as cameras (default: resources/demo cam01 and cam04)")
    parser.add_argument("--frames", type=int, default=100, help="frame pairs to process (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="frame pairs left out of the statistics")
    parser.add_argument("--mode", default="balanced",
                        help="detector mode: lightweight, balanced (default), performance (rtmlib's sizes; also "
                             "the size of the stand-in without real weights) or rtmo")
    parser.add_argument("--standin", choices=("matched", "tiny"), default="matched",
                        help="detector used when the real weights are absent: 'matched' (default) = random-weight "
                             "models of the real ones' inputs, outputs and compute for --mode; 'tiny' = the tiny "
                             "test models (about 2 ms)")
    parser.add_argument("--model-dir", type=Path, default=None, help="folder with the detector's ONNX models")
    parser.add_argument("--model", default=None, metavar="SPEC",
                        help="lifter (default: the shipped default, else an untrained 'small' one)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--lift-stride", type=int, default=4, metavar="K",
                        help="lift every K frame pairs, the 3D K-1 pairs late (default 4, as live mode; 1 = every "
                             "pair)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: one live window gains nothing from more, and extra "
                             "threads spin against the capture threads; 0 = torch's own choice)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def _detector(args, workdir: Path):
    """The real rtmlib detector when its weights are on this computer, else generated stand-in models
    (`--standin`): cost-matched ones for `--mode` (`mvcapture.detect.standin`) or the tiny test models.

    Returns:
        (detector, note for the report or None, stand-in description for the JSON or None).
    """
    from mvcapture.detect.backends import RTMPoseDetector, create_detector
    from mvcapture.detect.models import model_specs
    from mvcapture.errors import MvcaptureError

    try:
        return create_detector(args.mode, model_dir=args.model_dir, device=args.device, download=False), None, None
    except ModelNotFoundError:
        pass
    import importlib.util

    import numpy as np

    if importlib.util.find_spec("onnx") is None:  # the stand-ins are built with it (a test dependency)
        raise MvcaptureError("no rtmlib detector weights on this computer and no `onnx` package to build stand-in "
                             "models: give the real weights with --model-dir (or put them in rtmlib's cache), "
                             "or pip install onnx")
    from mvcapture.detect import standin

    real = ("with the real weights (rtmlib's download cache, or --model-dir FOLDER holding the ONNX files) this "
            "bench times the real detector")
    if args.standin == "matched" and args.mode in standin.MODE_SIZES:
        specs = model_specs(args.mode)
        paths = standin.make_standins(args.mode, workdir)
        names = standin.model_names(args.mode)
        counted = {role: standin.count_macs(m) / 1e9
                   for role, m in standin.standin_models(args.mode, weights=False).items()}
        target = standin.mode_target_gmacs(args.mode)
        published = {role: standin.PUBLISHED_GFLOPS[name.lower()] for role, name in names.items()}
        det_h, det_w = specs["det"].input_size
        pose_w, pose_h = specs["pose"].input_size
        note = (f"no rtmlib detector weights on this computer: the detector is a RANDOM-WEIGHT STAND-IN for mode "
                f"{args.mode!r} ({names['det']} {det_w}x{det_h} + {names['pose']} {pose_w}x{pose_h}, "
                f"mvcapture.detect.standin) with the real models' inputs, outputs and approximate compute "
                f"({names['det']} {counted['det']:.2f} G multiply-adds, published {published['det']:g} GFLOPs = "
                f"{target['det']:.3g} G multiply-adds; {names['pose']} {counted['pose']:.2f} G, published "
                f"{published['pose']:g} GFLOPs = {target['pose']:.3g} G multiply-adds) and known answers (the box "
                f"of the bright pixels, fixed keypoints). Its timings are a PROXY for the real models'; {real}")
        info = {"kind": "matched", "mode": args.mode, "models": names, "gmacs": counted, "target_gmacs": target,
                "published_gflops": published}
        return RTMPoseDetector(paths["pose"], paths["det"], device=args.device), note, info
    from mvcapture.detect.testing import make_rtmpose, make_yolox_rectangles

    specs = model_specs("balanced")
    pose = make_rtmpose(workdir / specs["pose"].onnx_name, np.arange(17) * 5 + 3, np.arange(17) * 7 + 2, (48, 64))
    det = make_yolox_rectangles(workdir / specs["det"].onnx_name, (64, 64))
    why = ("" if args.standin == "tiny" else
           f"there is no cost-matched stand-in for mode {args.mode!r} (only {', '.join(standin.MODE_SIZES)}), so ")
    note = (f"no rtmlib detector weights on this computer: {why}the detector is the tiny generated test models of "
            "mvcapture.detect.testing (64x64 box model, 48x64 pose model), far faster than a real RTMPose, so the "
            f"share outside the detector is much larger than with real weights; {real}")
    info = {"kind": "tiny", "mode": None, "models": {"det": "rectangles 64x64", "pose": "constant 48x64"}}
    return RTMPoseDetector(pose, det, device=args.device), note, info


def _lifter(args):
    from mvcapture.lifter import create_lifter, load_lifter
    from mvcapture.lifter.runtime import Lifter

    if args.model:
        return load_lifter(args.model, device=args.device), None
    try:
        return load_lifter("default", device=args.device), None
    except ModelNotFoundError:
        note = "resources/lifter/default.pt is missing: an untrained 'small' lifter (same cost) is timed"
        return Lifter(create_lifter("small"), device=args.device), note


def run(args: argparse.Namespace) -> int:
    from mvcapture.bench.common import hardware
    from mvcapture.capture.sources import FileSource
    from mvcapture.pipeline.demo import DEMO_CAMERAS, demo_resources
    from mvcapture.pipeline.live import LIVE_STAGES, LivePipeline

    if args.threads:
        threads.apply("live", args.threads)
    videos = args.videos or [demo_resources() / f"{cam}.mp4" for cam in DEMO_CAMERAS]
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        detector, note, standin = _detector(args, Path(tmp))
        notes += [note] if note else []
        lifter, note = _lifter(args)
        notes += [note] if note else []
        pipeline = LivePipeline(detector, lifter, lift_stride=args.lift_stride)
        sources = [FileSource(v, loop=True) for v in videos]
        try:
            pairs = pipeline.run(sources, max_frames=args.frames + args.warmup)
        finally:
            for s in sources:
                s.stop()
    summary = pipeline.timing_summary(skip=args.warmup)
    total = summary["total"]["mean_ms"]
    outside = total - summary["detect"]["mean_ms"]
    share = outside / total if total > 0 else 0.0
    hw = hardware()
    print(f"live pipeline, 2 sources ({', '.join(Path(v).name for v in videos)}), {pairs - args.warmup} frame pairs "
          f"timed after {args.warmup} warm-up; {hw['cpu']} ({hw['cpu_cores']} cores, torch {hw['torch_threads']} "
          f"threads), device {args.device}" + (f", GPU {hw['cuda']}" if hw["cuda"] else ""))
    print(f"detector {detector.model_id} on {detector.provider}; lifter {lifter.name} ({lifter.config_name}, "
          f"window {lifter.window}), lifting every {args.lift_stride} pair(s): 3D {pipeline.delay} pair(s) late")
    print(f"{'stage':<8} {'mean ms':>9} {'median ms':>10} {'share':>7}")
    for stage in (*LIVE_STAGES, "total"):
        s = summary[stage]
        print(f"{stage:<8} {s['mean_ms']:>9.2f} {s['median_ms']:>10.2f} {s['mean_ms'] / total:>7.1%}")
    verdict = "meets" if share <= GOAL_OUTSIDE_DETECTOR else "misses"
    print(f"outside the detector: {outside:.2f} ms of {total:.2f} ms per frame pair = {share:.1%} "
          f"({verdict} the goal of at most {GOAL_OUTSIDE_DETECTOR:.0%}); throughput {1e3 / total:.1f} pairs/s")
    dropped = {s.name: s.frames_dropped for s in sources}
    for note in notes:
        print(f"note: {note}")
    write_json(args.json, {
        "videos": [str(v) for v in videos], "pairs_timed": pairs - args.warmup, "warmup": args.warmup,
        "stages_ms": summary, "outside_detector_ms": outside, "outside_detector_share": share,
        "goal_outside_detector_share": GOAL_OUTSIDE_DETECTOR, "meets_goal": share <= GOAL_OUTSIDE_DETECTOR,
        "pairs_per_s": 1e3 / total if total > 0 else None, "frames_dropped": dropped,
        "detector": {"model_id": detector.model_id, "provider": detector.provider, "standin": standin},
        "lifter": {"name": lifter.name, "config": lifter.config_name, "window": lifter.window,
                   "lift_stride": args.lift_stride, "delay_pairs": pipeline.delay},
        "device": args.device, "hardware": hw, "notes": notes})
    return 0
