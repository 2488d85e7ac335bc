"""`mvcapture detect VIDEO`: 2D keypoints of the athlete in one video (cached, resumable)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mvcapture.cli import add_json_option, write_json


def _click_point(text: str) -> tuple[int, float, float]:
    try:
        frame, x, y = text.split(",")
        return int(frame), float(x), float(y)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FRAME,X,Y (e.g. 0,640,360), got {text!r}") from None


def register(subparsers) -> None:
    from mvcapture.detect.models import MODES

    parser = subparsers.add_parser("detect", help="detect the athlete's 2D keypoints in a video",
                                   description="Detect everyone in every frame with rtmlib, track them, "
                                               "and keep the athlete (the most prominent person unless "
                                               "chosen). Results are cached; an interrupted run resumes.")
    parser.add_argument("video", type=Path, help="video file")
    parser.add_argument("--mode", choices=MODES, default="balanced",
                        help="RTMPose size with YOLOX boxes (lightweight, balanced, performance) or one-stage "
                             "RTMO (default: balanced)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="folder with the ONNX models (or rtmlib's zips), searched before rtmlib's cache")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    athlete = parser.add_mutually_exclusive_group()
    athlete.add_argument("--athlete", type=int, default=None, metavar="TRACK",
                         help="follow this person track id (listed in the output) instead of the default")
    athlete.add_argument("--athlete-at", type=_click_point, default=None, metavar="FRAME,X,Y",
                         help="follow the person at pixel X,Y of frame FRAME")
    parser.add_argument("--smooth", action="store_true", help="One-Euro smoothing of the H36M keypoints in --out")
    parser.add_argument("--out", type=Path, default=None, metavar="OUT.npz",
                        help="write all detections, tracks and the athlete's keypoints (COCO and H36M) here")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from mvcapture.detect.backends import create_detector
    from mvcapture.detect.video import cache_path, detect_video

    detector = create_detector(args.mode, model_dir=args.model_dir, device=args.device)
    athlete = args.athlete if args.athlete is not None else args.athlete_at
    start = time.perf_counter()
    with tqdm(desc=f"detect {args.video.name}", unit="frame") as bar:
        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = detect_video(args.video, detector, athlete=athlete, progress=progress)
    seconds = time.perf_counter() - start
    if args.out is not None:
        result.save(args.out, smooth=args.smooth)
    seen = result.conf.max(axis=1) > 0
    tracks = {int(t): int(n) for t, n in zip(*np.unique(result.track_id, return_counts=True))}
    summary = {
        "video": str(args.video), "mode": args.mode, "model_id": result.model_id, "provider": detector.provider,
        "frames": result.num_frames, "image_size": result.image_size, "fps": result.fps,
        "athlete_track": result.athlete_id, "athlete_frames": int(seen.sum()),
        "athlete_fraction": float(seen.mean()), "tracks": tracks, "seconds": seconds,
        "cache": cache_path(args.video, result.model_id), "out": args.out,
    }
    print(f"{result.num_frames} frames, athlete (track {result.athlete_id}) seen in {seen.sum()} "
          f"({100 * seen.mean():.0f} %); person tracks (id: frames): {tracks}")
    print(f"detector {result.model_id} on {detector.provider}, {seconds:.1f} s")
    if args.out is not None:
        print(f"wrote {args.out}")
    write_json(args.json, summary)
    return 0
