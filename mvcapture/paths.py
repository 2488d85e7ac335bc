"""Where mvcapture keeps its files: the user data dir (sessions, model store), settings, logs and resources.

`MVCAPTURE_HOME` overrides the per-user data dir (tests and portable installs use it).
"""

from __future__ import annotations

import os
import sys
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


def config_dir() -> Path:
    """User settings kept across sessions, e.g. lens intrinsics remembered per webcam (inside MVCAPTURE_HOME
    when that is set; created on demand)."""
    home = os.environ.get("MVCAPTURE_HOME")
    root = Path(home) / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def resources_dir() -> Path:
    """The shipped `resources/` folder (default lifter, demo session, icons)."""
    override = os.environ.get("MVCAPTURE_RESOURCES")
    if override:
        return Path(override)
    if getattr(sys, "frozen", False):  # PyInstaller one-folder app: data lies under _MEIPASS
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"
