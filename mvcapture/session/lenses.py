"""Lens intrinsics remembered per webcam: once a webcam's intrinsics are set on one of its recordings, later
recordings from the same camera get them automatically.

The memory is one JSON file in the user config dir (`lenses.json`): {"cameras": {camera id: {"intrinsics":
FORMATS.md dict, "remembered": ISO time}}}. A camera id is what the capture layer says identifies the
camera (its name, plus its serial number where the OS gives one); views of imported files have none.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path

from mvcapture.errors import MvcaptureError
from mvcapture.io.atomic import atomic_write_json
from mvcapture.paths import config_dir

log = logging.getLogger(__name__)

LENS_MEMORY_FILE = "lenses.json"


def lens_memory_path() -> Path:
    return config_dir() / LENS_MEMORY_FILE


def _read() -> dict:
    path = lens_memory_path()
    if not path.exists():
        return {"cameras": {}}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("cameras"), dict):
            raise ValueError("not a map of cameras")
    except (OSError, ValueError) as exc:  # a damaged memory only costs setting the intrinsics again
        log.warning("ignoring the remembered lenses in %s: %s", path, exc)
        return {"cameras": {}}
    return data


def remember_lens(camera_id: str, intrinsics: dict) -> None:
    """Remember `intrinsics` (a validated FORMATS.md dict) for the webcam `camera_id`, replacing earlier ones."""
    data = _read()
    data["cameras"][camera_id] = {"intrinsics": intrinsics,
                                  "remembered": _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(
                                      timespec="seconds")}
    atomic_write_json(lens_memory_path(), data)
    log.info("remembered the lens intrinsics of camera %r", camera_id)


def remembered_lens(camera_id: str) -> dict | None:
    """The intrinsics remembered for webcam `camera_id`, or None."""
    entry = _read()["cameras"].get(camera_id)
    return entry.get("intrinsics") if isinstance(entry, dict) else None


def attach_remembered_lenses(session) -> list[int]:
    """Give each webcam view of `session` (views[v]["camera_id"] in session.json) the intrinsics remembered
    for its camera; returns the views that got them. A remembered lens that does not fit the view (another
    aspect ratio or orientation) is skipped with a warning in the log: the recording goes on without it."""
    attached = []
    for v, view in enumerate(session.meta["views"]):
        camera_id = view.get("camera_id")
        lens = remembered_lens(camera_id) if camera_id else None
        if lens is None:
            continue
        try:
            session.set_intrinsics(v, lens, source=f"remembered for camera {camera_id}", remember=False)
        except MvcaptureError as exc:
            log.warning("session %s view %d: remembered intrinsics of %r not used: %s", session.id, v, camera_id, exc)
            continue
        attached.append(v)
    return attached
