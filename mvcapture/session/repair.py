"""Joining a recording's segments into one video per view, after a normal stop or after a crash.

See mvcapture.capture.recorder for how recordings are written; `Session.open` calls `repair_recording` on a
session whose recording was interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mvcapture.errors import MvcaptureError
from mvcapture.io.video import concat_videos, frame_times
from mvcapture.session.layout import STAGES, read_timestamps, write_timestamps

if TYPE_CHECKING:  # the store calls this module on open; it imports nothing back
    from mvcapture.session.store import Session

log = logging.getLogger(__name__)


def repair_recording(session: Session) -> list[str]:
    """Turn a recording's segments into one video + timestamp table per view (after a normal stop or a crash).

    Unreadable segments (the one being written when the process died) are dropped; the timestamp table is
    trimmed to the frames the remaining segments hold (times missing from the table are taken from the
    video). Returns the problems found, for `Session.problems`. Safe to run again if interrupted.
    """
    problems: list[str] = []
    meta = session.meta
    t0_ns = int(meta.get("clock_t0_ns", 0))
    crashed = any(v.get("recording") is None for v in meta["views"])
    for i, view_meta in enumerate(meta["views"]):
        seg_dir = session.path_for("segments", i)
        if not seg_dir.is_dir():
            continue
        table_path = session.path / STAGES["timestamps"].format(v=i)
        rows = _table_rows_by_segment(table_path)
        good: list[Path] = []
        times, mono, segs = [], [], []
        dropped = 0
        for seg in sorted(seg_dir.glob("seg_*.mp4")):
            k = int(seg.stem.split("_")[1])
            try:
                seg_times = frame_times(seg)
            except MvcaptureError:
                dropped += 1
                continue
            good.append(seg)
            seg_rows = rows.get(k, [])
            for j, t in enumerate(seg_times):
                if j < len(seg_rows):
                    times.append(seg_rows[j][0])
                    mono.append(seg_rows[j][1])
                else:
                    times.append(float(t))
                    mono.append(t0_ns + int(round(t * 1e9)))
                segs.append(k)
        media = session.path / STAGES["media"].format(v=i)
        if good:
            n = concat_videos(good, media)
            n = min(n, len(times))
            write_timestamps(table_path, np.asarray(times[:n]),
                             {"t_monotonic_ns": np.asarray(mono[:n], np.int64), "segment": np.asarray(segs[:n])})
            view_meta["probe"] = _probe_dict(media)
        else:
            n = 0
            with contextlib.suppress(FileNotFoundError):
                table_path.unlink()
            problems.append(f"view {i}: the recording holds no complete video segment; nothing was kept")
        rec = view_meta.setdefault("recording", {})
        rec["frames_in_video"] = n
        if crashed:
            rec["recovered"] = True
            rec["segments_dropped"] = dropped
            duration = times[n - 1] - times[0] if n > 1 else 0.0
            problems.append(f"view {i}: the recording was interrupted; recovered {n} frames ({duration:.1f} s), "
                            f"dropped {dropped} unfinished segment(s)")
        shutil.rmtree(seg_dir)
    meta["state"] = "recovered" if crashed else "complete"
    session.save_meta()
    return problems


def _table_rows_by_segment(path: Path) -> dict[int, list[tuple[float, int]]]:
    rows: dict[int, list[tuple[float, int]]] = {}
    if not path.exists():
        return rows
    try:
        cols = read_timestamps(path)
    except MvcaptureError as exc:
        log.warning("ignoring damaged timestamp table: %s", exc)
        return rows
    if "segment" not in cols:
        return rows
    for t, mono, seg in zip(cols["t_s"], cols.get("t_monotonic_ns", cols["frame"]), cols["segment"]):
        rows.setdefault(int(seg), []).append((float(t), int(mono)))
    return rows


def _probe_dict(path: Path) -> dict:
    from mvcapture.io.video import probe

    try:
        return probe(path).to_dict()
    except MvcaptureError as exc:
        log.warning("probe after recording failed: %s", exc)
        return {}
