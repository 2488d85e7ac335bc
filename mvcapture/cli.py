"""The `mvcapture` command: one subcommand per stage; with no arguments it opens the app.

Each command module exposes `register(subparsers)` and sets `func(args) -> int` on its parser.
Heavy imports happen inside the command functions so `mvcapture --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mvcapture import __version__
from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)

# Modules that add subcommands, in the order `--help` lists them.
COMMAND_MODULES = [
    "mvcapture.gui.cli",
    "mvcapture.capture.cli",
    "mvcapture.session.cli",
    "mvcapture.geometry.cli",
    "mvcapture.detect.cli",
    "mvcapture.lifter.cli",
    "mvcapture.train.cli",
    "mvcapture.train.experiment",
    "mvcapture.bench.cli",
    "mvcapture.data.cli",
    "mvcapture.pipeline.cli",
    "mvcapture.export",
]


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Give a result-producing command the shared `--json PATH` option."""
    parser.add_argument("--json", metavar="PATH", type=Path, default=None,
                        help="also write the results machine-readably to this JSON file")


def write_json(path: Path | None, payload: Any) -> None:
    """Write `payload` to `path` atomically when `--json` was given (no-op otherwise)."""
    if path is None:
        return
    from mvcapture.io.atomic import atomic_write_text

    atomic_write_text(Path(path), json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command (usage stays in --help)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mvcapture",
        description="Two-camera 3D pose capture and multi-view consistency fine-tuning.",
    )
    parser.add_argument("--version", action="version", version=f"mvcapture {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to the console")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mvcapture.logs import setup_logging

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv and "gui" in parser._subparsers._group_actions[0].choices:  # type: ignore[union-attr]
        argv = ["gui"]
    args = parser.parse_args(argv)
    log_path = setup_logging(verbose=args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        check_session_arguments(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (MvcaptureError, ValueError, OSError) as exc:
        log.debug("command %s failed", args.command, exc_info=True)
        print(f"error: {one_line(exc)}", file=sys.stderr)
        print(f"(details in {log_path})", file=sys.stderr)
        return 2


def check_session_arguments(args: argparse.Namespace) -> None:
    """Session keys (`session`) and new session names (`--name`) of any command, checked before it runs."""
    from mvcapture.session.names import check_session_key, check_session_name

    if isinstance(getattr(args, "session", None), (str, Path)):
        check_session_key(str(args.session))
    if isinstance(getattr(args, "name", None), str):
        check_session_name(args.name)


def one_line(exc: BaseException) -> str:
    """The message of an error for the user, on one line; a file-system error names the file and what
    went wrong in words (not Python's "[Errno 36]")."""
    if isinstance(exc, OSError) and not isinstance(exc, MvcaptureError) and exc.strerror:
        name = exc.filename if exc.filename is not None else ""
        shown = str(name) if len(str(name)) <= 80 else str(name)[:77] + "..."
        text = f"{shown}: {exc.strerror.lower()}" if shown else exc.strerror.lower()
    else:
        text = str(exc)
    return " ".join(text.split()) or type(exc).__name__


# interpreter options the app's own child-process commands may carry (torchrun adds -u)
_INTERPRETER_FLAGS = {"-u", "-B", "-E", "-s", "-O"}


def frozen_main(argv: list[str] | None = None) -> int:
    """Entry point of the frozen (PyInstaller) app, where `sys.executable` is the app itself.

    The app starts its background work as `sys.executable -m MODULE ARGS` (processing, the fine-tuning
    worker, torchrun's workers); a plain Python does that by itself, the frozen app does it here:
    `[-u] -m MODULE ARGS` runs MODULE as `__main__` with `sys.argv = [MODULE, *ARGS]`, anything else is
    the `mvcapture` command line (`main`).
    """
    import runpy

    argv = sys.argv[1:] if argv is None else list(argv)
    rest = list(argv)
    while rest and rest[0] in _INTERPRETER_FLAGS:
        rest.pop(0)
    if len(rest) < 2 or rest[0] != "-m":
        return main(argv)
    module = rest[1]
    sys.argv = [module, *rest[2:]]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return int(code or 0)
        print(code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
