"""Where mvcapture keeps its files: the user data dir (sessions, model store), logs and resources.

`MVCAPTURE_HOME` overrides the per-user data dir (tests and portable installs use it).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "mvcapture"


def data_dir() -> Path:
    """Root for the user's sessions, catalog and model store (created on demand)."""
    home = os.environ.get("MVCAPTURE_HOME")
    root = Path(home) if home else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def log_dir() -> Path:
    """Directory of the rotating log file (inside MVCAPTURE_HOME when that is set)."""
    home = os.environ.get("MVCAPTURE_HOME")
    root = Path(home) / "logs" if home else Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def resources_dir() -> Path:
    """The shipped `resources/` folder (default lifter, demo session, icons)."""
    frozen = os.environ.get("MVCAPTURE_RESOURCES")
    if frozen:
        return Path(frozen)
    return Path(__file__).resolve().parent.parent / "resources"
