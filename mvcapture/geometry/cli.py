"""`mvcapture calibrate-intrinsics`: a camera's lens intrinsics from pictures or a video of a checkerboard."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mvcapture.cli import add_json_option, write_json


def board_size(text: str) -> tuple[int, int]:
    """"4x7" → (4, 7): inner corners per row and per column."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        cols, rows = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected inner corners as COLSxROWS (e.g. 4x7), got {text!r}") from None
    if cols < 2 or rows < 2:
        raise argparse.ArgumentTypeError(f"a board has at least 2x2 inner corners, got {text!r}")
    return cols, rows


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate-intrinsics", help="a camera's lens intrinsics from pictures or a video of a checkerboard",
        description="Film or photograph a printed checkerboard with ONE camera, held the way it films (portrait "
                    "stays portrait), in 6 or more positions and angles filling different parts of the "
                    "frame. Writes the focal length, principal point and lens distortion (FORMATS.md "
                    "'Lens intrinsics'); give the file to `mvcapture import --intrinsics` or the session.")
    parser.add_argument("sources", type=Path, nargs="+", metavar="IMAGES_OR_VIDEO",
                        help="pictures, folders of pictures, or videos of the board (one camera)")
    parser.add_argument("--board", type=board_size, default=(4, 7), metavar="COLSxROWS",
                        help="inner corners of the board (a board of 5x8 squares has 4x7; default 4x7)")
    parser.add_argument("--square-mm", type=float, default=60.0, help="side of one square in mm (default 60)")
    parser.add_argument("--out", type=Path, required=True, metavar="CAM.json", help="where to write the intrinsics")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mvcapture.geometry.intrinsics import calibrate_intrinsics, save_intrinsics

    with tqdm(total=1000, leave=False, file=sys.stderr,
              bar_format="searching {percentage:3.0f}%|{bar}| {desc}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.n = int(1000 * fraction)
            bar.set_description_str(message, refresh=True)

        result = calibrate_intrinsics(args.sources, board=args.board, square_mm=args.square_mm, progress=progress)
    save_intrinsics(args.out, result)
    print(f"{args.out}: fx {result['fx']:.1f} px, fy {result['fy']:.1f} px, principal point "
          f"({result['cx']:.1f}, {result['cy']:.1f}) px, {result['image_size'][0]}x{result['image_size'][1]}, "
          f"RMS {result['rms_px']:.2f} px; board found in {result['views_used']} of {result['pictures_searched']}")
    if result["not_found"]:
        print(f"  board not found in: {', '.join(result['not_found'][:10])}"
              + (" …" if len(result["not_found"]) > 10 else ""))
    if result["rms_px"] > 1.0:
        print(f"warning: RMS {result['rms_px']:.2f} px is high (good calibrations reach < 1 px): check --board and "
              f"--square-mm, and drop blurred pictures (per-picture RMS in {args.out})", file=sys.stderr)
    write_json(args.json, {**result, "out": str(args.out)})
    return 0
