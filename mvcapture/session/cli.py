"""`mvcapture import`, `mvcapture sessions` and `mvcapture sync`: bring phone videos in, find sessions,
align the views in time."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mvcapture.cli import add_json_option, write_json
from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    imp = subparsers.add_parser(
        "import", help="import two (or more) videos (e.g. from phones) as a new session",
        description="Create a session from video files: one view per file, in the order given. Rotation, "
                    "variable frame rate and audio are handled; files are copied unless --reference.")
    imp.add_argument("videos", type=Path, nargs="+", metavar="VIDEO")
    imp.add_argument("--name", help="session name (default: date and time)")
    imp.add_argument("--athlete", help="athlete's name (for the catalog)")
    imp.add_argument("--tag", action="append", default=[], help="tag the session (repeatable)")
    imp.add_argument("--reference", action="store_true",
                     help="leave the videos where they are instead of copying them into the session")
    imp.add_argument("--intrinsics", type=Path, nargs="+", metavar="CAM.json",
                     help="lens intrinsics of the cameras (from `mvcapture calibrate-intrinsics`), one file per "
                          "video in the same order")
    add_json_option(imp)
    imp.set_defaults(func=run_import)

    ses = subparsers.add_parser(
        "sessions", help="list or search sessions, or show one",
        description="List sessions (newest first), search them, or show one session's views, stages and problems.")
    ses.add_argument("session", nargs="?", help="a session id, name or folder to show in detail")
    ses.add_argument("--search", metavar="TEXT", help="only sessions whose name, id, athlete or tag contains TEXT")
    ses.add_argument("--athlete", help="only this athlete's sessions")
    ses.add_argument("--tag", help="only sessions with this tag")
    ses.add_argument("--add-tag", action="append", default=[], metavar="TAG",
                     help="with SESSION: add a tag (repeatable)")
    ses.add_argument("--rebuild", action="store_true", help="re-index the catalog from the session folders")
    add_json_option(ses)
    ses.set_defaults(func=run_sessions)

    syn = subparsers.add_parser(
        "sync", help="align a session's views in time (audio, else motion)",
        description="Estimate the time offset (and clock drift) between view 0 and each other view: from the "
                    "sound when both videos have it, else from the motion of detected keypoints. "
                    "--manual-offset overrides with a known offset.")
    syn.add_argument("session", help="session id, name or folder")
    syn.add_argument("--manual-offset", type=float, metavar="S",
                     help="use this offset in seconds (t_view = t_view0 + S) instead of estimating it")
    syn.add_argument("--view", type=int, help="align only this view against view 0 (default: every view; "
                                              "with --manual-offset: view 1)")
    add_json_option(syn)
    syn.set_defaults(func=run_sync)


def run_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mvcapture.geometry.intrinsics import load_intrinsics
    from mvcapture.io.video import probe
    from mvcapture.session.store import Session

    if args.intrinsics and len(args.intrinsics) != len(args.videos):
        raise MvcaptureError(f"--intrinsics needs one file per video, in the same order: {len(args.videos)} "
                             f"video(s) but {len(args.intrinsics)} intrinsics file(s)")
    for path in args.intrinsics or ():
        load_intrinsics(path)  # a bad file stops the import before anything is copied
    infos = [probe(p) for p in tqdm(args.videos, desc="checking videos", unit="file", leave=False)]
    session = Session.create(name=args.name, athlete=args.athlete, kind="import", tags=args.tag)
    bar = tqdm(total=1000, desc="importing", leave=False, bar_format="importing {percentage:3.0f}%|{bar}| {desc}")

    def progress(fraction: float, message: str) -> None:
        bar.n = int(1000 * fraction)
        bar.set_description_str(message, refresh=True)

    try:
        session.import_videos(args.videos, copy=not args.reference, progress=progress)
        for view, path in enumerate(args.intrinsics or ()):
            session.set_intrinsics(view, path)
    except BaseException:
        session.discard()
        raise
    finally:
        bar.close()
    print(f"session {session.id} created in {session.path}")
    for view, info in zip(session.views, infos):
        rot = f", rotated {info.rotation_deg} deg" if info.rotation_deg else ""
        vfr = ", variable frame rate" if info.variable_frame_rate else ""
        audio = ", with sound" if info.has_audio else ", no sound"
        print(f"  view {view.index}: {Path(info.path).name}: {info.width}x{info.height}, {info.fps:.2f} fps, "
              f"{info.frame_count} frames, {info.duration_s:.1f} s{rot}{vfr}{audio}")
        lens = session.intrinsics(view.index)
        if lens is not None:
            print(f"    lens intrinsics from {args.intrinsics[view.index].name}: fx {lens['fx']:.1f} px, "
                  f"fy {lens['fy']:.1f} px")
    if len(session.views) < 2:
        print("  note: a session needs two views for 3D consistency; import the second camera's video too")
    write_json(args.json, session.summary())
    return 0


def run_sessions(args: argparse.Namespace) -> int:
    from mvcapture.session.catalog import Catalog
    from mvcapture.session.store import Session

    catalog = Catalog()
    if args.rebuild:
        print(f"indexed {catalog.rebuild()} sessions")
    if args.session:
        session = Session.open(args.session)
        if args.add_tag:
            session.tag(*args.add_tag)
        summary = session.summary()
        print(f"{session.id}  {session.name}  athlete: {session.athlete or '-'}  tags: "
              f"{', '.join(session.tags) or '-'}\n  {session.path}")
        for v in summary["views"]:
            print(f"  view {v['index']}: {v['width']}x{v['height']} {v['fps'] or 0:.2f} fps, "
                  f"{v['frame_count']} frames  {v['media']}")
            if v["intrinsics"]:
                print(f"    lens intrinsics from {v['intrinsics']['source']}")
        done = [k for k, val in summary["stages"].items() if (all(val) and val if isinstance(val, list) else val)]
        print(f"  stages done: {', '.join(done) or 'none'}")
        for problem in session.problems:
            print(f"  problem: {problem}")
        write_json(args.json, summary)
        return 0
    if args.add_tag:
        raise MvcaptureError("--add-tag needs a SESSION to tag")
    rows = catalog.search(args.search) if args.search else catalog.list(athlete=args.athlete, tag=args.tag)
    if args.search and (args.athlete or args.tag):
        rows = [r for r in rows if (not args.athlete or r["athlete"] == args.athlete)
                and (not args.tag or args.tag in r["tags"])]
    for r in rows:
        duration = f"{r['duration_s']:.1f} s" if r["duration_s"] is not None else "-"
        print(f"{r['id']:<36} {r['name'][:24]:<24} {r['athlete'] or '-':<16} {r['n_views']} views {duration:>9} "
              f"{r['state']:<10} {', '.join(r['tags'])}")
    if not rows:
        print("no sessions" + (" match" if args.search or args.athlete or args.tag else " yet"))
    write_json(args.json, {"sessions": rows})
    return 0


def _signals(session, view: int):
    """What view `view` offers for alignment: its sound, and its athlete's 2D keypoints when detected."""
    from mvcapture.sync import RecordingSignals

    v = session.views[view]
    signals = RecordingSignals()
    if v.has_audio:
        signals.audio, signals.audio_rate_hz = session.load_audio(view)
    if session.path_for("detections", view).exists():
        det = session.load_array(f"detections/view{view}")
        if "kp2d_px" in det and "conf" in det:
            signals.kp2d_px, signals.conf = det["kp2d_px"], det["conf"]
            signals.frame_times_s = det["frame_times_s"] if "frame_times_s" in det else v.frame_times()
            signals.skeleton = str(det["skeleton"]) if "skeleton" in det else "coco17"
    return signals


def _estimate(session, view: int) -> dict:
    """Alignment of `view` against view 0: sound, else motion; a recording without either uses its one clock."""
    from mvcapture.sync import estimate_offset

    a, b = _signals(session, 0), _signals(session, view)
    if (a.has_audio and b.has_audio) or (a.has_motion and b.has_motion):
        return estimate_offset(a, b).to_dict()
    if session.meta.get("kind") == "recording":
        return {"offset_s": 0.0, "drift_ppm": 0.0, "confidence": 1.0, "method": "clock", "low_confidence": False,
                "reason": "", "details": {"note": "both views were timestamped by this computer's clock while "
                                                  "recording; differences in camera latency are not measured"}}
    lacking = [str(i) for i, sig in ((0, a), (view, b)) if not sig.has_audio]
    raise MvcaptureError(
        f"session {session.id}: view(s) {' and '.join(lacking)} have no sound and there are no 2D detections "
        f"of both views yet, so views 0 and {view} cannot be aligned automatically. Run the 2D detection on "
        f"the session first (alignment then uses the athlete's motion), or give the offset with "
        f"--manual-offset SECONDS")


def run_sync(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mvcapture.session.store import Session
    from mvcapture.sync import manual_offset

    session = Session.open(args.session)
    for problem in session.problems:
        print(f"note: {problem}")
    n_views = len(session.views)
    if n_views < 2:
        raise MvcaptureError(f"session {session.id} has {n_views} view(s); alignment needs two")
    if args.view is not None and not 1 <= args.view < n_views:
        raise MvcaptureError(f"--view must be between 1 and {n_views - 1} (view 0 is the reference)")
    if args.manual_offset is not None:
        view = args.view or 1
        results = {view: manual_offset(args.manual_offset, note="set by the user").to_dict()}
    else:
        views = [args.view] if args.view else list(range(1, n_views))
        results = {v: _estimate(session, v) for v in tqdm(views, desc="aligning", unit="view", leave=False)}
    flagged = False
    for view, result in results.items():
        session.save_sync(result, view=view)
        print(f"session {session.id}: t(view {view}) = t(view 0) {result['offset_s']:+.4f} s, drift "
              f"{result.get('drift_ppm', 0.0):+.1f} ppm ({result['method']}, confidence "
              f"{result.get('confidence', 0.0):.2f})")
        if result.get("low_confidence"):
            flagged = True
            print(f"warning: the alignment of view {view} is uncertain ({result.get('reason') or 'low confidence'}):"
                  f" check it, or give the offset with --manual-offset SECONDS", file=sys.stderr)
    write_json(args.json, {"session": session.id, "views": {str(v): r for v, r in results.items()}})
    return 1 if flagged else 0
