"""The layout of a session folder (file names, per-stage paths, where sessions live), its timestamp
tables and the recording lock: what the session store, the catalog, the repair of interrupted recordings
and the recorder all share. See mvcapture.session.store for the folder's contents.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from mvcapture.errors import MvcaptureError
from mvcapture.io.atomic import atomic_write_text
from mvcapture.paths import data_dir

SESSION_FILE = "session.json"
LOCK_FILE = "recording.lock"
FORMAT_VERSION = 1
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".3gp")

# stage name -> path template; "{v}" marks per-view stages
STAGES: dict[str, str] = {
    "session": SESSION_FILE,
    "media": "media/view{v}.mp4",
    "timestamps": "media/view{v}_timestamps.csv",
    "segments": "media/view{v}.segments",
    "sync": "sync.json",
    "detections": "detections/view{v}.npz",
    "lift": "lift/view{v}.npz",
    "analysis": "analysis.npz",
    "metrics": "metrics.json",
}
# a view's lens intrinsics (FORMATS.md "Lens intrinsics"), when known: an input, not a processing stage
INTRINSICS_FILE = "intrinsics/view{v}.json"


def sessions_root() -> Path:
    """Where new sessions go: data_dir()/sessions."""
    root = data_dir() / "sessions"
    root.mkdir(parents=True, exist_ok=True)
    return root


def read_timestamps(path: Path | str) -> dict[str, np.ndarray]:
    """A timestamp table as columns: frame (int64), t_s (float64), and t_monotonic_ns / segment if present."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise MvcaptureError(f"{path}: empty timestamp table")
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        dtype = np.float64 if name == "t_s" else np.int64
        try:
            cols[name] = np.array([r[j] for r in body], dtype=dtype)
        except ValueError as exc:
            raise MvcaptureError(f"{path}: unreadable column {name!r} ({exc})") from exc
    if "t_s" not in cols:
        raise MvcaptureError(f"{path}: timestamp table has no t_s column")
    return cols


def write_timestamps(path: Path | str, t_s: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
    """Atomically write a timestamp table (frame, t_s and optional integer columns)."""
    extra = extra or {}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["frame", "t_s", *extra])
    for i, t in enumerate(np.asarray(t_s, np.float64)):
        writer.writerow([i, f"{t:.6f}", *(int(c[i]) for c in extra.values())])
    atomic_write_text(path, buf.getvalue())


def try_lock(f) -> bool:
    """Take an exclusive, non-blocking lock on an open file (released when the process dies); False if held."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def unlock(f) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(f, fcntl.LOCK_UN)
