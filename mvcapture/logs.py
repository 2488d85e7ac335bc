"""Logging set-up: one logger per module, a rotating log file in the user log dir."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from mvcapture.paths import log_dir

_configured = False


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
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(console)
    _configured = True
    return path
