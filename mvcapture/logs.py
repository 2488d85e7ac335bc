"""Logging set-up: one logger per module, a rotating log file in the user log dir."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from mvcapture.paths import log_dir

_configured = False


class _StderrHandler(logging.StreamHandler):
    """A console handler that writes to whatever `sys.stderr` is at the time (the command runs more than
    once in one process in tests and the GUI, with stderr swapped in between)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(verbose: bool = False) -> Path:
    """Route all `mvcapture.*` loggers to a rotating file (and warnings to stderr); returns the file."""
    global _configured
    path = log_dir() / "mvcapture.log"
    if _configured:
        return path
    root = logging.getLogger("mvcapture")
    root.setLevel(logging.DEBUG)
    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    console = _StderrHandler()
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(console)
    _configured = True
    return path
