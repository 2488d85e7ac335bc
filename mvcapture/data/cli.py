"""`mvcapture data synth BVH_DIR OUT_DIR`: motion capture files → synthetic multi-view clips (.npz);
`mvcapture data noise-stats FOLDER --out JSON`: a detector's error statistics on a calibrated recording;
`mvcapture eval-recording FOLDER`: a lifter on a calibrated real recording against its triangulation."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mvcapture.cli import add_json_option, write_json
from mvcapture.errors import MvcaptureError

ORIENTATIONS = {"mixed": None, "landscape": (1920, 1080), "portrait": (1080, 1920)}


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="build training data (synthetic views of motion capture)")
    data_sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = data_sub.add_parser(
        "synth", help="film every BVH file of a folder with virtual phone cameras and a noisy 2D detector",
        description="Write one multi-view clip (.npz, FORMATS.md) per BVH file and camera rig into OUT_DIR, "
                    "named <bvh stem>_r<rig>.npz. Deterministic for a given --seed.")
    synth.add_argument("bvh_dir", type=Path, metavar="BVH_DIR", help="folder with .bvh files (searched recursively)")
    synth.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder for the .npz clips (created)")
    synth.add_argument("--views", type=int, default=2, help="cameras per clip (default 2)")
    synth.add_argument("--angle", type=float, default=90.0,
                       help="degrees between the optical axes of consecutive cameras (default 90, the paper's best)")
    synth.add_argument("--rigs", type=int, default=1, help="camera set-ups per BVH file (default 1)")
    synth.add_argument("--seed", type=int, default=0, help="seed for placement, image sizes and noise (default 0)")
    synth.add_argument("--fps", type=float, default=30.0, help="frame rate of the clips (default 30)")
    synth.add_argument("--orientation", choices=sorted(ORIENTATIONS), default="mixed",
                       help="phone frames: landscape 1920x1080, portrait 1080x1920, or mixed phone sizes (default)")
    synth.add_argument("--distance", type=metres_or_range, default=None, metavar="M|LO-HI",
                       help="camera distance in metres, or a range drawn from per camera "
                            "(default random 3.5-7 m; farther when the subject does not fit)")
    synth.add_argument("--height", type=metres_or_range, default=None, metavar="M|LO-HI",
                       help="camera height above the floor in metres, or a range drawn from per camera "
                            "(default random 0.8-1.8 m; e.g. 0.8-2.8 adds cameras looking down from stands)")
    synth.add_argument("--time-offset", type=float, default=0.0, metavar="S",
                       help="constant offset of views 2.. against view 1, seconds (default 0: synchronized)")
    synth.add_argument("--pan", action="store_true", help="cameras turn to follow the subject")
    synth.add_argument("--noise", type=float, default=1.0,
                       help="scale of the 2D detector noise model (0 = exact projections; default 1)")
    synth.add_argument("--realistic", action="store_true",
                       help="independent phone / webcam cameras per view (portrait or landscape, vertical FOV "
                            "40-90°, 0.3-2.5 m high pitched towards the athlete, roll ±10°, some near enough to "
                            "cut limbs off, lens distortion) and the detector noise measured on real footage "
                            "(--noise-stats); --angle, --distance, --height, --orientation, --pan and "
                            "--time-offset do not apply")
    synth.add_argument("--noise-stats", type=Path, default=None, metavar="JSON",
                       help="detector statistics for --realistic (default: the shipped MediaPipe measurement, "
                            "resources/noise/mediapipe_pose2sim.json; `mvcapture data noise-stats` makes one)")
    synth.add_argument("--augment", action="store_true",
                       help="each rig films its own augmented copy of the motion: new bone lengths and body "
                            "proportions, turned limbs, upper body from another clip of the same subject, "
                            "mirrored, faster or slower (mvcapture.data.augment.MotionAugment)")
    synth.add_argument("--limb-motion", type=float, default=0.0, metavar="P",
                       help="with --augment: the share of rigs whose motion also gets new smooth limb movements "
                            "(legs swung forwards or sideways up to 60°, arms up to 120°, knees and elbows "
                            "flexed or extended up to 60°: kicks, arms raised overhead; "
                            "mvcapture.data.augment.random_limb_motion); default 0")
    add_json_option(synth)
    synth.set_defaults(func=run_synth)

    noise = data_sub.add_parser(
        "noise-stats", help="measure a 2D detector's errors on a calibrated recording (for the synthetic noise)",
        description="Compare the detections of a calibrated recording (FOLDER as for eval-recording) with its "
                    "triangulated reference reprojected into every camera; write per-joint offsets, spreads, "
                    "frame correlation, outliers, confidences, missing joints and left/right swaps as JSON "
                    "(what `data synth --realistic` draws its detector noise from). Only error statistics are "
                    "kept, never the recording's poses.")
    noise.add_argument("folder", type=Path, metavar="FOLDER", help="the calibrated recording folder")
    noise.add_argument("--out", type=Path, required=True, help="JSON file to write")
    noise.add_argument("--detector", default="", help="which detector made the detections (kept in the file)")
    noise.set_defaults(func=run_noise_stats)

    real = subparsers.add_parser(
        "eval-recording", help="score a lifter on a calibrated multi-camera recording (per view and camera pair)",
        description="Lift each camera of a calibrated recording alone (as `mvcapture process` does: the "
                    "detector's left/right swaps undone, flip test-time augmentation, no fine-tuning, no stereo) and compare with the 3D triangulated "
                    "from all its cameras: per view N-MPJPE and PA-MPJPE (mm), per camera pair the angle between "
                    "the optical axes and the relative rotation that the two lifts imply against the "
                    "calibration's. FOLDER holds one Qualisys *.qca.txt calibration and "
                    "detections/<camera>_coco17.npz per camera.")
    real.add_argument("folder", type=Path, metavar="FOLDER", help="the recording folder")
    real.add_argument("--model", default="default",
                      help="lifter: 'default' (shipped), a model store version, or a weights file (default: default)")
    real.add_argument("--pairs", default=None, metavar="A-B,...",
                      help="camera pairs, e.g. 01-04,02-03 (default: every pair of the recording)")
    add_json_option(real)
    real.set_defaults(func=run_eval_recording)


def run_noise_stats(args: argparse.Namespace) -> int:
    from mvcapture.data.detector_noise import measure_recording, write_stats

    stats = measure_recording(args.folder)
    stats = {"format": stats.pop("format"), "detector": args.detector, **stats,
             "command": f"mvcapture data noise-stats {args.folder.name} --out {args.out.name}"}
    write_stats(stats, args.out)
    print(f"{args.out}: {stats['views']} cameras × {stats['frames']} frames; left/right swaps "
          f"{stats['swap']['events_per_s']:.2f}/s ({100 * stats['swap']['frames_fraction']:.0f} % of frames)")
    return 0


def run_eval_recording(args: argparse.Namespace) -> int:
    from mvcapture.data.recording_eval import evaluate_recording, format_table

    result = evaluate_recording(args.folder, model=args.model, pairs=args.pairs)
    model = result["model"]
    print(f"{result['recording']}: cameras {', '.join(result['cameras'])}; lifter {model['name']} "
          f"({model['version']}, config {model['config']})")
    print(format_table(result))
    write_json(args.json, result)
    return 0


def metres_or_range(text: str) -> float | tuple[float, float]:
    """`"2.5"` → 2.5; `"0.8-2.8"` → (0.8, 2.8) (argparse type for --distance and --height)."""
    lo, sep, hi = text.partition("-")
    try:
        if not sep:
            return float(text)
        low, high = float(lo), float(hi)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected metres (2.5) or a range (0.8-2.8), got {text!r}") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"range must be low-high with 0 ≤ low ≤ high, got {text!r}")
    return low, high


def _value_or_range(value, range_key: str) -> dict:
    """synthesize_clip keywords for a --distance/--height value: a fixed value or a random range."""
    if value is None:
        return {}
    if isinstance(value, tuple):
        return {range_key + "_range_m": value}
    return {range_key + "_m": value}


def run_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mvcapture.data.augment import MotionAugment
    from mvcapture.data.detector_noise import MeasuredNoise
    from mvcapture.data.synth import NoiseModel, synthesize_bvh_files

    files = sorted(Path(args.bvh_dir).rglob("*.bvh"))
    if not files:
        raise MvcaptureError(f"{args.bvh_dir}: no .bvh files found")
    if args.views < 1 or args.rigs < 1:
        raise MvcaptureError("--views and --rigs must be at least 1")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if not 0.0 <= args.limb_motion <= 1.0:
        raise MvcaptureError(f"--limb-motion is a share of rigs between 0 and 1, got {args.limb_motion}")
    if args.limb_motion and not args.augment:
        raise MvcaptureError("--limb-motion adds to the motion augmentation: give --augment too")
    augment = MotionAugment(limb_motion=args.limb_motion) if args.augment else None
    if args.realistic:
        if args.pan or args.time_offset or args.distance is not None or args.height is not None:
            raise MvcaptureError("--realistic draws its own cameras; drop --pan, --time-offset, --distance, --height")
        clips = synthesize_bvh_files(files, rigs=args.rigs, fps=args.fps, seed=args.seed, views=args.views,
                                     realistic=True, augment=augment,
                                     noise=MeasuredNoise.load(args.noise_stats, scale=args.noise))
    else:
        clips = synthesize_bvh_files(files, rigs=args.rigs, fps=args.fps, seed=args.seed, views=args.views,
                                     augment=augment, angle_deg=args.angle,
                                     **_value_or_range(args.distance, "distance"),
                                     **_value_or_range(args.height, "height"),
                                     image_size=ORIENTATIONS[args.orientation], time_offset_s=args.time_offset,
                                     pan=args.pan, noise=NoiseModel().scaled(args.noise))
    start = time.perf_counter()
    written, frames = [], 0
    for clip in tqdm(clips, total=len(files) * args.rigs, unit="clip", desc="synth"):
        out = args.out_dir / f"{clip.name}.npz"
        clip.save(out)
        written.append(str(out))
        frames += clip.num_frames
    seconds = time.perf_counter() - start
    print(f"wrote {len(written)} clips ({frames} frames at {args.fps:g} fps, {args.views} views) "
          f"to {args.out_dir} in {seconds:.1f} s")
    write_json(args.json, {"clips": written, "n_clips": len(written), "frames": frames, "fps": args.fps,
                           "views": args.views, "angle_deg": args.angle, "seed": args.seed, "distance_m": args.distance,
                           "height_m": args.height, "realistic": args.realistic, "augment": args.augment,
                           "limb_motion": args.limb_motion, "seconds": seconds})
    return 0
