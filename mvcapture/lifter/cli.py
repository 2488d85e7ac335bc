"""`mvcapture lift CLIP.npz`: per-view monocular 3D predictions of a multi-view clip, saved as `.npz`.

`lift_file` is the same from Python.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from mvcapture.cli import add_json_option, write_json
from mvcapture.core.normalize import DEFAULT_ATHLETE_HEIGHT_M

log = logging.getLogger(__name__)

MAX_OUT_NAME_BYTES = 200  # the atomic write's temporary name adds a few characters; file systems allow 255


def default_output_path(clip_path: Path | str) -> Path:
    """`walk.npz` → `walk.lift.npz` beside it."""
    clip_path = Path(clip_path)
    return clip_path.with_name(clip_path.stem + ".lift.npz")


def lift_file(clip_path: Path | str, model: str = "active", out: Path | str | None = None, flip: bool = False,
              device: str | None = None, height_m: float = DEFAULT_ATHLETE_HEIGHT_M, lifter=None,
              progress=None) -> dict:
    """Lift every view of a clip file and write the predictions.

    Output `.npz` keys: `pose3d_norm` (V, T, 17, 3) float32 root-relative normalized 2.5D, `pose3d_m`
    (V, T, 17, 3) float32 root-relative metres in each view's camera frame, `image_size`, `fps`,
    `name`, `model`, `metres_method` ("focal+height" or "height", see lifter.runtime.to_metres).

    Args:
        lifter: an already loaded Lifter (then `model` and `device` are ignored).

    Returns:
        A summary: clip, out, model, device, views, frames, flip, seconds, metres_method.
    """
    import numpy as np

    from mvcapture.io.atomic import atomic_save_npz
    from mvcapture.io.clip import load_clip
    from mvcapture.lifter.runtime import clip_to_metres
    from mvcapture.lifter.weights import load_lifter

    clip_path = Path(clip_path)
    clip = load_clip(clip_path)
    lifter = lifter or load_lifter(model, device=device)
    out = Path(out) if out is not None else default_output_path(clip_path)
    t0 = time.perf_counter()
    pose_norm = lifter.lift_views(clip, flip=flip, progress=progress)
    seconds = time.perf_counter() - t0
    pose_m, method = clip_to_metres(pose_norm, clip, height_m=height_m)
    atomic_save_npz(out, pose3d_norm=pose_norm.astype(np.float32), pose3d_m=pose_m.astype(np.float32),
                    image_size=np.asarray(clip.image_size, np.int32), fps=np.float64(clip.fps),
                    name=np.array(clip.name), model=np.array(lifter.name), metres_method=np.array(method))
    log.info("lifted %s (%d views, %d frames) with %s in %.2f s -> %s",
             clip_path, clip.num_views, clip.num_frames, lifter.name, seconds, out)
    return {"clip": str(clip_path), "out": str(out), "model": lifter.name, "config": lifter.config_name,
            "device": str(lifter.device), "precision": lifter.precision, "compiled": lifter.compiled,
            "views": clip.num_views, "frames": clip.num_frames, "flip": flip,
            "seconds": seconds, "metres_method": method}


def register(subparsers) -> None:
    parser = subparsers.add_parser("lift", help="lift the 2D keypoints of a clip to 3D, view by view")
    parser.add_argument("clip", type=Path, help="multi-view clip .npz (FORMATS.md)")
    parser.add_argument("--model", default="active",
                        help="'active' (the version chosen with `mvcapture models activate`; the shipped "
                             "'default' until then), 'default', a version (v0003), a weights file, a MotionBERT "
                             "checkpoint or a model directory")
    parser.add_argument("--out", type=Path, default=None, help="output .npz (default: CLIP.lift.npz)")
    parser.add_argument("--flip", action="store_true", help="flip test-time augmentation (twice the work)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the network first (about 30 s or more; pays off on long clips, GPU)")
    parser.add_argument("--height-m", type=float, default=DEFAULT_ATHLETE_HEIGHT_M,
                        help="athlete height in metres, sets the metric scale (default %(default)s)")
    add_json_option(parser)
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from tqdm import tqdm

    from mvcapture.lifter.weights import load_lifter

    from mvcapture.errors import MvcaptureError

    if not 0.5 <= args.height_m <= 2.8:  # NaN fails too
        raise MvcaptureError(f"--height-m must be the athlete's height in metres (0.5 to 2.8), got {args.height_m}")
    if args.out is not None and len(os.fsencode(Path(args.out).name)) > MAX_OUT_NAME_BYTES:
        raise MvcaptureError(f"--out {Path(args.out).name[:40]}...: the file name is "
                             f"{len(os.fsencode(Path(args.out).name))} bytes; at most {MAX_OUT_NAME_BYTES}")
    lifter = load_lifter(args.model, device=args.device, precision=args.precision, compile=args.compile)
    with tqdm(total=0, unit="window", desc="lifting") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        summary = lift_file(args.clip, out=args.out, flip=args.flip, height_m=args.height_m, lifter=lifter,
                            progress=progress)
    print(f"{summary['clip']}: {summary['views']} views x {summary['frames']} frames lifted with "
          f"{summary['model']} ({summary['config']}, {summary['device']}, {summary['precision']}"
          f"{', compiled' if summary['compiled'] else ''}) in {summary['seconds']:.2f} s "
          f"-> {summary['out']} (metres from {summary['metres_method']})")
    write_json(args.json, summary)
    return 0
