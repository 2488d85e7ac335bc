"""`mvcapture record`: record webcams (or video files played as live cameras) into a new session."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from mvcapture.cli import add_json_option, write_json
from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "record", help="record two (or more) cameras into a new session",
        description="Record webcams into a new session (crash-safe: a crash loses at most the last second). "
                    "--files plays video files as if they were live cameras (demos, tests, headless).")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cameras", type=int, nargs="+", metavar="INDEX",
                       help="camera indices to record (default: the first two cameras found)")
    group.add_argument("--files", type=Path, nargs="+", metavar="VIDEO", help="video files to play as cameras")
    group.add_argument("--list-cameras", action="store_true",
                       help="list the cameras of this computer (index, name, device, modes) and exit")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop after this many seconds (default: at Ctrl+C, or when all files end)")
    parser.add_argument("--loop", action="store_true", help="with --files: restart each file at its end")
    parser.add_argument("--width", type=int, help="requested camera width in pixels")
    parser.add_argument("--height", type=int, help="requested camera height in pixels")
    parser.add_argument("--fps", type=float, help="requested camera frame rate")
    parser.add_argument("--name", help="session name")
    parser.add_argument("--athlete", help="athlete's name (for the catalog)")
    add_json_option(parser)
    parser.set_defaults(func=run_record)


def _camera_sources(args: argparse.Namespace) -> list:
    from mvcapture.capture.sources import CameraSource, list_cameras

    found = list_cameras()
    if not found:
        raise MvcaptureError("no camera found on this computer: connect a webcam (and check it is allowed), "
                             "or record from video files with --files A.mp4 B.mp4")
    indices = args.cameras if args.cameras is not None else [c.index for c in found[:2]]
    known = {c.index: c for c in found}
    missing = [i for i in indices if i not in known]
    if missing:
        listing = ", ".join(f"{c.index} ({c.name})" for c in found)
        raise MvcaptureError(f"camera {missing[0]} not found; cameras on this computer: {listing}")
    return [CameraSource(i, args.width, args.height, args.fps, name=f"camera{i}") for i in indices]


def _list_cameras(json_path) -> int:
    from dataclasses import asdict

    from mvcapture.capture.sources import list_cameras

    found = list_cameras()
    if not found:
        print("no camera found on this computer: connect a webcam (and check the app may use it), or record "
              "from video files with --files A.mp4 B.mp4")
    for cam in found:
        print(f"{cam.index}: {cam.name}" + (f" ({cam.device})" if cam.device else ""))
        for mode in cam.modes:
            rate = f" @ {mode.fps:g} fps" if mode.fps else ""
            print(f"    {mode.width}x{mode.height}{rate}" + (f" {mode.pixel_format}" if mode.pixel_format else ""))
        if not cam.modes:
            print("    (the OS lists no modes: --width/--height/--fps are requested and the camera's answer is used)")
    write_json(json_path, {"cameras": [asdict(c) for c in found]})
    return 0


def run_record(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mvcapture.capture.recorder import Recorder
    from mvcapture.capture.sources import FileSource
    from mvcapture.io.video import probe
    from mvcapture.session.store import Session

    if args.list_cameras:
        return _list_cameras(args.json)
    if args.files:
        for path in args.files:
            probe(path)  # a clear message for an unreadable file before anything starts
        sources = [FileSource(p, loop=args.loop) for p in args.files]
    else:
        sources = _camera_sources(args)
    if args.seconds is None and args.loop and args.files:
        print("recording until Ctrl+C", file=sys.stderr)

    def show(event) -> None:
        if event.kind == "lost":
            tqdm.write(f"warning: {event.source} lost: {event.message}; the other views keep recording",
                       file=sys.stderr)

    session = Session.create(name=args.name, athlete=args.athlete, kind="recording")
    recorder = Recorder(session, sources, on_event=show)
    try:
        recorder.start()
    except BaseException:
        session.discard()
        raise
    limit = args.seconds if args.seconds is not None else float("inf")
    bar = tqdm(total=None if limit == float("inf") else limit, unit="s", desc="recording",
               bar_format="{desc}: {n:.1f}/{total_fmt} s" if limit != float("inf") else "{desc}: {n:.1f} s")
    start = time.monotonic()
    try:
        while recorder.running and time.monotonic() - start < limit:
            time.sleep(0.1)
            bar.n = min(time.monotonic() - start, limit)
            bar.refresh()
    except KeyboardInterrupt:
        pass
    finally:
        bar.close()
        stats = recorder.stop()
    for st in stats:
        line = (f"  {st['name']}: {st['frames_written']} frames written, {st['frames_dropped']} dropped, "
                f"{st['width']}x{st['height']} at {st['fps']:.2f} fps, {st['status']}")
        print(line + (f" ({st['error']})" if st["error"] else ""))
    print(f"session {session.id} saved in {session.path}")
    for problem in session.problems:
        print(f"  note: {problem}")
    write_json(args.json, {**session.summary(), "recording": stats})
    return 0
