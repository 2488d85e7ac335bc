"""`mvcapture bench live`: two sources played as live cameras through the live pipeline, every-frame detection
and tracking side by side: sustained frame pairs per second, capture-to-result latency (p50, p95), each
stage's time per pair, frames skipped; with `--minutes N` a soak run that reports memory (RSS) growth and
the drift of the time per pair."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from mvcapture import threads
from mvcapture.capture.standin import JPEG_QUALITY
from mvcapture.cli import add_json_option, write_json
from mvcapture.errors import ModelNotFoundError, MvcaptureError
from mvcapture.pipeline.live import DETECT_EVERY_S, live_lift_window

# Goals (issue 18) on a 2-core CPU with the lightweight models and tracking, 3D included.
GOAL_PAIRS_PER_S = {"lightweight": 25.0, "balanced": 8.0}
GOAL_P95_LATENCY_MS = 150.0
# Soak goals (issue 16) for an hour: memory growth and slowdown of the time per pair (last / first window).
GOAL_SOAK_GROWTH_MB = 50.0
GOAL_SOAK_SLOWDOWN = 1.10
DETECT_EVERY = 10
# The app's cameras are webcams: 1280x720 at 30 fps, MJPEG over USB.
DEFAULT_CAMERA = "720p30"
# Soak statistics are taken per window of this many seconds (a quarter of the soak when that is shorter).
SOAK_WINDOW_S = 30.0
# Soak memory growth is counted from the first window after this many seconds (start-up allocations).
SOAK_SETTLE_S = 60.0


def register(bench_subparsers) -> None:
    parser = bench_subparsers.add_parser(
        "live", help="live mode on two sources: pairs/s, latency and stage times, detection vs tracking",
        description="Play two videos as live cameras (default: the demo recording, looped) through the live "
                    "pipeline, once detecting on every frame and once tracking (detector every --detect-every-s "
                    "seconds or --detect-every pairs), and report the sustained frame pairs per second, the "
                    "capture-to-result latency and each stage's time per pair side by side. --minutes N adds a "
                    "soak run (tracking) reporting memory growth and the drift of the time per pair.")
    parser.add_argument("--videos", type=Path, nargs=2, default=None, metavar=("A", "B"),
                        help="two videos to play as cameras, looped (default: resources/demo cam01 and cam04)")
    parser.add_argument("--camera", default=DEFAULT_CAMERA, metavar="SPEC",
                        help=f"webcam the videos stand in for (default {DEFAULT_CAMERA}): each video is first "
                             "transcoded to that size (portrait pictures pillarboxed) and rate as MJPEG, so every "
                             "frame costs a webcam's MJPEG decode; 360p, 480p, 720p or 1080p then the fps, e.g. "
                             "480p30; 'native' plays the videos as they are")
    parser.add_argument("--frames", type=int, default=300, help="frame pairs timed per run (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="frame pairs left out of the statistics")
    parser.add_argument("--mode", default="lightweight",
                        help="detector mode: lightweight (default, the live preview's), balanced, performance "
                             "(rtmlib's sizes; also the size of the stand-in without real weights) or rtmo")
    parser.add_argument("--detect-every", type=int, default=None, metavar="K",
                        help="tracking run: the person detector every K pairs per view (default: by the clock, "
                             "--detect-every-s)")
    parser.add_argument("--detect-every-s", type=float, default=None, metavar="S",
                        help="tracking run: the person detector every S seconds per view while tracking is "
                             "confident (default per mode: "
                             + ", ".join(f"{m} {s:g}" for m, s in DETECT_EVERY_S.items())
                             + f"; {DETECT_EVERY} pairs for other modes)")
    parser.add_argument("--standin", choices=("matched", "tiny"), default="matched",
                        help="detector used when the real weights are absent: 'matched' (default) = random-weight "
                             "models of the real ones' inputs, outputs and compute for --mode; 'tiny' = the tiny "
                             "test models (about 2 ms)")
    parser.add_argument("--model-dir", type=Path, default=None, help="folder with the detector's ONNX models")
    parser.add_argument("--model", default=None, metavar="SPEC",
                        help="lifter (default: the shipped default, else an untrained 'small' one)")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or cuda (detector and pose on onnxruntime's CUDA provider when it "
                             "has one, the lifter on CUDA in bf16); refused without a CUDA device")
    parser.add_argument("--lift-stride", type=int, default=2, metavar="K",
                        help="first lift stride (default 2); it adapts to the cameras' rate (up to 8)")
    parser.add_argument("--fixed-stride", action="store_true", help="keep the lift stride at --lift-stride")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of the live loop (torch and onnxruntime; default: the app's thread policy)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="also soak the tracking run this many minutes: memory (RSS) growth and the drift of "
                             "the time per pair")
    add_json_option(parser)
    parser.set_defaults(func=run)


def _check_device(device: str) -> str | None:
    """Refuse `--device cuda` without a CUDA device; a note when onnxruntime lacks its CUDA provider."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        raise MvcaptureError(f"--device {device}: this computer has no CUDA device that torch can use (torch "
                             f"{torch.__version__}); run without --device for the CPU figures")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ("onnxruntime has no CUDA provider here (pip install onnxruntime-gpu): the detector and the pose "
                "model ran on the CPU, the lifter on CUDA")
    return None


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
        paths = standin.make_standins(args.mode, workdir, standin.tracking_pose_bins(specs["pose"].input_size))
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
                f"of the bright pixels; keypoints fixed in the central {standin.TRACKING_SPAN:.0%} of the crop, "
                f"where a person in the detector's box has them, so tracking keeps its box). Its timings are a PROXY for the real models'; {real}")
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


def _rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _live_run(detector, lifter, videos, args, detect_every: int, pairs: int | None = None,
              seconds: float | None = None, on_window=None, detect_every_s: float | None = None) -> dict:
    """One live run over looping file sources: `pairs` pairs after the warm-up, or `seconds` s (soak;
    `on_window(stats)` every SOAK_WINDOW_S s). Returns the pipeline's statistics and stage times."""
    import threading

    import numpy as np

    from mvcapture.capture.sources import FileSource
    from mvcapture.pipeline.live import LIVE_STAGES, LivePipeline

    windows = []
    state = {"t0": None, "totals": [], "cpu0": None}
    window_s = min(SOAK_WINDOW_S, (seconds or 0.0) / 4)
    stop = threading.Event()

    def on_frame(result) -> None:
        if result.index == args.warmup:   # CPU time of the whole process (decoding threads included) from here
            state["cpu0"], state["pair0"] = time.process_time(), result.index
        state["cpu1"], state["pair1"] = time.process_time(), result.index
        if seconds is None:
            return
        now = time.monotonic()
        if result.index < args.warmup:
            return
        if state["t0"] is None:
            state["t0"], state["start"] = now, now
        state["totals"].append(result.timings_s["total"])
        if now - state["t0"] >= window_s:
            window = {"t_s": round(now - state["start"], 1), "pairs": len(state["totals"]),
                      "mean_pair_ms": float(np.mean(state["totals"]) * 1e3), "rss_mb": _rss_mb(), "load": _load()}
            windows.append(window)
            if on_window:
                on_window(window)
            state["t0"], state["totals"] = now, []
        if now - state["start"] >= seconds:
            stop.set()

    pipeline = LivePipeline(detector, lifter, lift_stride=args.lift_stride, adapt_lift_stride=not args.fixed_stride,
                            detect_every=detect_every, detect_every_s=detect_every_s,
                            background_detection=detect_every > 1 or detect_every_s is not None, on_frame=on_frame)
    sources = [FileSource(v, loop=True) for v in videos]
    try:
        done = pipeline.run(sources, stop=stop, max_frames=None if seconds else args.warmup + pairs)
    finally:
        for s in sources:
            s.stop()
        pipeline.close()
    cpu_ms = pipeline_cpu_ms = capture_cpu_ms_per_s = None
    background = list(pipeline.background_detect_s)
    if state["cpu0"] is not None and state["pair1"] > state["pair0"]:
        timed = state["pair1"] - state["pair0"]
        cpu_ms = (state["cpu1"] - state["cpu0"]) / timed * 1e3
        wall = list(pipeline.done_at_s)
        wall_s = wall[-1] - wall[-1 - timed] if len(wall) > timed else None
        # the pipeline's own threads: the pairs' thread and the background detector (its share of the timed pairs)
        share = timed / max(done, 1)
        pipeline_cpu_ms = (float(np.sum(list(pipeline.cpu_s)[-timed:])) + share * (
            pipeline.background.cpu_s if pipeline.background else 0.0)) / timed * 1e3
        if wall_s:
            capture_cpu_ms_per_s = max(cpu_ms - pipeline_cpu_ms, 0.0) * timed / wall_s
    stats = pipeline.live_stats(skip=args.warmup)
    summary = pipeline.timing_summary(skip=args.warmup)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    capacity = None
    if pipeline_cpu_ms and capture_cpu_ms_per_s is not None:
        capacity = max(cores * 1e3 - capture_cpu_ms_per_s, 0.0) / pipeline_cpu_ms
    return {"detect_every": detect_every, "detect_every_s": detect_every_s, "pairs_done": done, **stats,
            "cpu_ms_per_pair": cpu_ms,
            "pipeline_cpu_ms_per_pair": pipeline_cpu_ms, "capture_cpu_ms_per_s": capture_cpu_ms_per_s,
            "capacity_pairs_per_s": capacity, "cores": cores,
            "background_detect_ms": float(np.mean(background) * 1e3) if background else None,
            "background_detections": len(background),
            "stages_ms": {stage: summary.get(stage, {"mean_ms": 0.0, "median_ms": 0.0})
                          for stage in (*LIVE_STAGES, "total")},
            "dropped": [s.frames_dropped for s in sources], "captured": [s.frames_captured for s in sources],
            "fps": [s.fps for s in sources], "windows": windows}


def run(args: argparse.Namespace) -> int:
    from mvcapture.bench.common import hardware
    from mvcapture.pipeline.demo import DEMO_CAMERAS, demo_resources
    from mvcapture.pipeline.live import LIVE_STAGES

    from mvcapture.capture.standin import parse_camera, webcam_video
    from mvcapture.io.video import probe

    notes = []
    camera = parse_camera(args.camera)
    # the tracking run's detector schedule: (pairs, seconds); by the clock unless --detect-every is given
    if args.detect_every is not None:
        schedule = (args.detect_every, None)
    else:
        schedule = (DETECT_EVERY, args.detect_every_s or DETECT_EVERY_S.get(args.mode))
    note = _check_device(args.device)
    notes += [note] if note else []
    live_threads = threads.apply("live", args.threads)
    pose_workers = threads.live_view_workers(2)
    originals = args.videos or [demo_resources() / f"{cam}.mp4" for cam in DEMO_CAMERAS]
    runs = {}
    soak = None
    with tempfile.TemporaryDirectory() as tmp:
        videos = [webcam_video(v, camera, tmp) for v in originals]
        played = [probe(v) for v in videos]
        camera_info = {**camera.to_dict(), "videos": [{"width": i.width, "height": i.height, "fps": i.fps,
                                                       "codec": i.video_codec, "frames": i.frame_count}
                                                      for i in played]}
        first = played[0]
        if camera.native:
            note = (f"cameras: the videos as they are ({first.width}x{first.height}, {first.fps:g} fps, "
                    f"{first.video_codec}), decoded in this process")
        else:
            note = (f"cameras: WEBCAM STAND-IN {camera} = each video transcoded once before timing to "
                    f"{camera.width}x{camera.height} at {camera.fps:g} fps, MJPEG (JPEG quality "
                    f"{JPEG_QUALITY}), portrait pictures scaled to the height and pillarboxed (not rotated); every "
                    f"frame is one MJPEG decode in this process, as cv2.VideoCapture on a USB webcam")
        notes.append(note)
        load_before = _load()
        detector, note, standin = _detector(args, Path(tmp))
        notes += [note] if note else []
        lifter, note = _lifter(args)
        notes += [note] if note else []
        for name, every, every_s in (("every frame", 1, None), ("tracking", *schedule)):
            runs[name] = _live_run(detector, lifter, videos, args, every, pairs=args.frames, detect_every_s=every_s)
        if args.minutes > 0:
            def report(window):
                print(f"  soak {window['t_s']:>7.1f} s: {window['pairs']} pairs, {window['mean_pair_ms']:.1f} ms per "
                      f"pair, RSS {window['rss_mb']:.1f} MB, load {window['load']}", flush=True)

            print(f"soak: tracking for {args.minutes:g} min (a line every {min(SOAK_WINDOW_S, args.minutes * 15):g} s)",
                  flush=True)
            soak = _live_run(detector, lifter, videos, args, schedule[0], seconds=args.minutes * 60,
                             on_window=report, detect_every_s=schedule[1])
    hw = hardware()
    load_after = _load()
    print(f"live pipeline, 2 sources ({', '.join(Path(v).name for v in originals)} as camera {camera}: "
          f"{first.width}x{first.height} {first.video_codec} looped at {runs['tracking']['fps'][0]:g} fps); "
          f"{hw['cpu']} ({hw['cpu_cores']} cores, live budget {live_threads} thread(s), the views' pose and lift side by "
          f"side on {pose_workers}), device {args.device}" + (f", GPU {hw['cuda']}" if hw["cuda"] else "")
          + f"; load average before {load_before}, after {load_after}")
    batched = getattr(detector, "pose_batched", False)
    print(f"detector {detector.model_id} on {detector.provider} (pose batch: {batched}); "
          f"lifter {lifter.name} ({lifter.config_name}, window {lifter.window}, live window "
          f"{live_lift_window(lifter)}, {lifter.precision}), lift stride "
          f"{'adaptive from ' if not args.fixed_stride else ''}{args.lift_stride}; {args.frames} pairs timed per run "
          f"after {args.warmup} warm-up")
    names = list(runs)
    print(f"{'':<22}" + "".join(f"{n:>16}" for n in names))

    def row(label, values, fmt):
        print(f"{label:<22}" + "".join(f"{fmt(v):>16}" for v in values))

    def num(v, spec=".1f"):
        return "–" if v is None else format(v, spec)

    row("detector every", [(r["detect_every"], r["detect_every_s"]) for r in runs.values()],
        lambda v: f"{v[0]} pair(s)" if v[1] is None else f"{v[1]:g} s")
    row("pairs/s (sustained)", [r["pairs_per_s"] for r in runs.values()], num)
    row("latency p50 ms", [r["latency_p50_ms"] for r in runs.values()], num)
    row("latency p95 ms", [r["latency_p95_ms"] for r in runs.values()], num)
    for stage in (*LIVE_STAGES, "total"):
        row(f"{stage} ms/pair", [r["stages_ms"][stage]["mean_ms"] for r in runs.values()], lambda v: f"{v:.2f}")
    row("outside detector+pose", [1 - (r["stages_ms"]["detect"]["mean_ms"] + r["stages_ms"]["pose"]["mean_ms"])
                                  / max(r["stages_ms"]["total"]["mean_ms"], 1e-9) for r in runs.values()],
        lambda v: f"{v:.1%}")
    row("background detect ms", [r["background_detect_ms"] for r in runs.values()], num)
    row("CPU ms/pair (process)", [r["cpu_ms_per_pair"] for r in runs.values()], num)
    row("CPU ms/pair (pipeline)", [r["pipeline_cpu_ms_per_pair"] for r in runs.values()], num)
    row("capture CPU ms/s", [r["capture_cpu_ms_per_s"] for r in runs.values()], num)
    row("pairs/s if CPU were ours", [r["capacity_pairs_per_s"] for r in runs.values()], num)
    row("detector runs", [sum(sum(d.values()) for d in r["detector_runs"] if d) if any(r["detector_runs"]) else None
                          for r in runs.values()], lambda v: "every frame" if v is None else str(v))
    row("frames skipped", [sum(r["skipped"]) for r in runs.values()], str)
    row("frames dropped", [sum(r["dropped"]) for r in runs.values()], str)
    row("final lift stride", [r["lift_stride"] for r in runs.values()], str)
    track = runs["tracking"]
    goal_rate = GOAL_PAIRS_PER_S.get(args.mode)
    verdict = None
    if goal_rate is not None and track["pairs_per_s"] is not None:
        rate_ok = track["pairs_per_s"] >= goal_rate
        latency_ok = args.mode != "lightweight" or (track["latency_p95_ms"] or 1e9) <= GOAL_P95_LATENCY_MS
        verdict = rate_ok and latency_ok
        print(f"goal ({args.mode}, tracking): ≥ {goal_rate:g} pairs/s"
              + (f", p95 latency ≤ {GOAL_P95_LATENCY_MS:g} ms" if args.mode == "lightweight" else "")
              + f": {'met' if verdict else 'missed'}")
    if soak is not None:
        w = soak["windows"]
        # the first minute is start-up (buffers, arenas); with later windows the growth is counted after it
        settled = [x for x in w if x["t_s"] >= SOAK_SETTLE_S]
        w = settled if len(settled) >= 2 else w
        if len(w) >= 2 and w[0]["rss_mb"] is not None:
            quarter = max(len(w) // 4, 1)
            first_ms = sum(x["mean_pair_ms"] for x in w[:quarter]) / quarter
            last_ms = sum(x["mean_pair_ms"] for x in w[-quarter:]) / quarter
            soak["rss_growth_mb"] = w[-1]["rss_mb"] - w[0]["rss_mb"]
            soak["rss_max_mb"] = max(x["rss_mb"] for x in w)
            soak["slowdown"] = last_ms / first_ms
            ok = soak["rss_growth_mb"] < GOAL_SOAK_GROWTH_MB and soak["slowdown"] <= GOAL_SOAK_SLOWDOWN
            print(f"soak {args.minutes:g} min: RSS {w[0]['rss_mb']:.1f} MB at {w[0]['t_s']:g} s → "
                  f"{w[-1]['rss_mb']:.1f} MB ({soak['rss_growth_mb']:+.1f} MB, highest {soak['rss_max_mb']:.1f}), "
                  f"time per pair {first_ms:.1f} → {last_ms:.1f} ms (first / last quarter of the windows, "
                  f"× {soak['slowdown']:.2f}); "
                  f"goal for an hour: < {GOAL_SOAK_GROWTH_MB:g} MB, no slowdown (≤ × {GOAL_SOAK_SLOWDOWN:g}): "
                  f"{'within' if ok else 'outside'} it so far")
        else:
            print(f"soak {args.minutes:g} min: too short for two windows")
    notes.append("CPU figures: 'process' = the whole process's CPU time per pair (decoding the two videos "
                 "included); 'pipeline' = the CPU time of the pipeline's own threads (pairs, the pose model's view "
                 "threads and the background detector; onnxruntime's pool threads are missed with --threads > 1); 'capture' = the rest per "
                 "second (decoding at the cameras' rate); 'pairs/s if CPU were ours' = (cores × 1000 − capture) "
                 "/ pipeline: what this machine would sustain unshared, if the work spread over its cores (an "
                 "estimate, not a measurement)")
    for note in notes:
        print(f"note: {note}")
    write_json(args.json, {
        "videos": [str(v) for v in originals], "camera": camera_info, "mode": args.mode, "pairs_timed": args.frames,
        "warmup": args.warmup,
        "runs": runs, "soak": soak, "goal": {"pairs_per_s": goal_rate, "p95_latency_ms": GOAL_P95_LATENCY_MS,
                                             "met": verdict},
        "detector": {"model_id": detector.model_id, "provider": detector.provider, "standin": standin,
                     "pose_batched": getattr(detector, "pose_batched", False)},
        "lifter": {"name": lifter.name, "config": lifter.config_name, "window": lifter.window,
                   "live_window": live_lift_window(lifter),
                   "precision": lifter.precision, "lift_stride": args.lift_stride, "adaptive": not args.fixed_stride},
        "device": args.device, "live_threads": live_threads, "pose_workers": pose_workers,
        "load_before": load_before, "load_after": load_after,
        "hardware": hw, "notes": notes})
    return 0
