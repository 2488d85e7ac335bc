"""`mvcapture gui [SESSION]`: open the desktop app, optionally on a session or an analysis file."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gui", help="open the desktop app (the default with no command)",
                                   description=__doc__)
    parser.add_argument("session", nargs="?", type=Path, default=None,
                        help="session (folder, id or name) or analysis.npz to open (default: the last one)")
    parser.add_argument("--video", dest="videos", type=Path, action="append", default=None, metavar="PATH",
                        help="video of a view, in view order (repeat; with an analysis.npz)")
    parser.set_defaults(func=run_gui)


def run_gui(args: argparse.Namespace) -> int:
    from mvcapture.errors import MvcaptureError
    from mvcapture.gui.app import run

    session = args.session
    if session is not None and not session.exists() and len(session.parts) > 1:
        raise MvcaptureError(f"nothing to open at {session}: give a session (folder, id or name) or an analysis.npz")
    return run(session, args.videos)
