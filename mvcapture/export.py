"""Export a processed session (its `analysis.npz`) to CSV, JSON, TRC, BVH and a side-by-side MP4.

`export_session` is the Python API (the GUI's Export menu calls it); `mvcapture export SESSION` is the
command. The file formats themselves live in `mvcapture.io.export` and `mvcapture.io.export_video`.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Callable, Iterable

from mvcapture.cli import add_json_option, write_json
from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)

ALL_FORMATS = ("csv", "json", "trc", "bvh", "mp4")
DEFAULT_FORMATS = ("csv", "json", "trc", "bvh")
EXPORTS_DIR = "exports"


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """Formats from "csv,json" or a list, lower-cased, in ALL_FORMATS order; unknown ones raise."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    chosen = {f.strip().lower().lstrip(".") for f in items if f.strip()}
    unknown = chosen - set(ALL_FORMATS)
    if unknown:
        raise MvcaptureError(f"unknown export format(s) {', '.join(sorted(unknown))}; "
                             f"choose from {','.join(ALL_FORMATS)}")
    if not chosen:
        raise MvcaptureError(f"no export format given; choose from {','.join(ALL_FORMATS)}")
    return tuple(f for f in ALL_FORMATS if f in chosen)


def export_session(session_or_path, formats: str | Iterable[str] = DEFAULT_FORMATS, out_dir: Path | str | None = None,
                   progress: Callable[[int, int], None] | None = None, cancel: threading.Event | None = None,
                   height: int = 720) -> list[Path]:
    """Write a processed session's exports and return the files written.

    Args:
        session_or_path: a `Session`, or a session folder, id or name.
        formats: any of ALL_FORMATS ("csv,json,trc,bvh,mp4" or a list); default: all but mp4.
        out_dir: where to write (default: the session's `exports/` folder). Files are named
            `<session id>_<track>.<ext>` (tracks view0, view1, ..., aligned, and fused for sessions
            processed with two-view fusion: its TRC is the one for OpenSim), `<session id>.json` and
            `<session id>.mp4`.
        progress: called as progress(frames_done, frames_total) while the MP4 is written.
        cancel: when set, the MP4 export stops and `ExportCancelled` is raised.
        height: MP4 height in pixels.

    Raises:
        MvcaptureError: the session has no analysis yet, a video the MP4 needs is missing, ...
    """
    from mvcapture.analysis import Analysis
    from mvcapture.io.export import export_analysis
    from mvcapture.session import Session

    formats = parse_formats(formats)
    session = session_or_path if isinstance(session_or_path, Session) else Session.open(session_or_path)
    analysis_path = session.path_for("analysis")
    if not analysis_path.exists():
        raise MvcaptureError(f"session {session.id} has no analysis yet: run `mvcapture process {session.path}` "
                             f"first")
    analysis = Analysis.load(analysis_path)
    out_dir = Path(out_dir) if out_dir is not None else session.path / EXPORTS_DIR
    stem = session.id
    written = export_analysis(analysis, out_dir, formats=[f for f in formats if f != "mp4"], stem=stem)
    if "mp4" in formats:
        from mvcapture.io.export_video import export_mp4

        views = session.views
        if len(views) != analysis.num_views:
            raise MvcaptureError(f"session {session.id} has {len(views)} videos but its analysis has "
                                 f"{analysis.num_views} views: run `mvcapture process {session.path}` again")
        for view in views:
            if not view.media.exists():
                raise MvcaptureError(f"view {view.index}: video {view.media} is missing; the MP4 export needs it")
        written.append(export_mp4(analysis, [v.media for v in views], out_dir / f"{stem}.mp4",
                                  view_times_s=[v.frame_times() for v in views], height=height,
                                  progress=progress, cancel=cancel))
    log.info("exported session %s: %s", session.id, ", ".join(p.name for p in written))
    return written


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a processed session (CSV, JSON, TRC, BVH, MP4)",
        description="Write a processed session's 2D, 3D and consistency to files other tools open: CSV "
                    "(spreadsheets), JSON, TRC (OpenSim, Pose2Sim), BVH (Blender) and an MP4 of the views side "
                    "by side with the 2D overlay and the 3D view. Sessions processed with two-view fusion also "
                    "get a 'fused' track (the 3D triangulated from both cameras; its TRC is the OpenSim input). "
                    "See the README section 'Exports'.")
    parser.add_argument("session", help="session folder, id or name")
    parser.add_argument("--format", default=",".join(DEFAULT_FORMATS), metavar="LIST",
                        help=f"comma-separated formats among {','.join(ALL_FORMATS)} "
                             f"(default: {','.join(DEFAULT_FORMATS)}; mp4 on request)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help=f"output folder (default: SESSION/{EXPORTS_DIR}/)")
    parser.add_argument("--height", type=int, default=720, metavar="PX", help="MP4 height in pixels (default 720)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mvcapture.session import Session

    formats = parse_formats(args.format)
    session = Session.open(args.session)
    bar = tqdm(desc="mp4", unit="frame", disable="mp4" not in formats)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    out_dir = args.out if args.out is not None else session.path / EXPORTS_DIR
    with bar:
        files = export_session(session, formats, out_dir, progress=progress, height=args.height)
    for path in files:
        print(path)
    write_json(args.json, {"session": session.id, "formats": list(formats), "out_dir": out_dir, "files": files})
    return 0
