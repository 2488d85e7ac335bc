"""Record N live sources into a session, crash-safe: a kill -9 loses at most the last segment (SEGMENT_S).

Each view is written by its own thread as a run of short, complete MP4 segments
(media/view{v}.segments/seg_000000.mp4, ...; frame presentation times = capture time since the recording
started, one clock for all views) plus an append-only timestamp table whose rows are flushed and fsynced
each time a segment is closed. A finished recording joins the segments (no re-encoding) into media/view{v}.mp4.
After a crash, `Session.open` calls `repair_recording`: segments that cannot be read (the one in flight) are
dropped, the table is trimmed to the frames the videos hold, and the view is joined the same way.

Accounting: for every view, frames captured by its source == frames written + frames the source dropped
(its buffer overflowed because writing fell behind).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Callable, Sequence

from mvcapture.capture.sources import FrameSource, SourceEvent
from mvcapture.errors import MvcaptureError
from mvcapture.io.atomic import fsync_dir
from mvcapture.io.video import VideoWriter
from mvcapture.session.layout import LOCK_FILE, STAGES, try_lock
from mvcapture.session.lenses import attach_remembered_lenses
from mvcapture.session.repair import repair_recording
from mvcapture.session.store import Session

log = logging.getLogger(__name__)

SEGMENT_S = 0.5  # seconds of video per segment: the most a crash can lose (plus the few buffered frames)
TIMESTAMP_HEADER = "frame,t_s,t_monotonic_ns,segment\n"


class _ViewWriter(threading.Thread):
    """Drains one source into segment files and the timestamp table."""

    def __init__(self, session: Session, view: int, source: FrameSource, t0_ns: int, segment_s: float,
                 codec: str | None, report: Callable[[SourceEvent], None]):
        super().__init__(name=f"record-view{view}", daemon=True)
        self.session, self.view, self.source = session, view, source
        self.t0_ns, self.segment_s, self.codec, self.report = t0_ns, segment_s, codec, report
        self.frames_written = 0
        self.segments_closed = 0
        self.error: str | None = None
        self._writer: VideoWriter | None = None
        self._segment_start_ns = 0
        self._pending: list[str] = []
        self.seg_dir = session.path_for("segments", view)
        self.seg_dir.mkdir(parents=True, exist_ok=True)
        self._table = open(session.path / STAGES["timestamps"].format(v=view), "a")
        if self._table.tell() == 0:
            self._table.write(TIMESTAMP_HEADER)
            self._table.flush()

    def run(self) -> None:
        try:
            while True:
                frame = self.source.read(timeout=0.1)
                if frame is None:
                    if not self.source.alive and self.source.buffered == 0:
                        break
                    continue
                self._write(frame)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("writing view %d failed", self.view)
            self.source.stop()
            self.report(SourceEvent(self.source.name, "lost", f"writing the video failed: {self.error}"))
            while self.source.read(timeout=0) is not None:  # keep the accounting exact: unwritten = dropped
                self.source.frames_dropped += 1
        finally:
            with contextlib.suppress(Exception):
                self._close_segment()
            self._table.close()

    def _write(self, frame) -> None:
        if self._writer is not None and frame.t_ns - self._segment_start_ns >= self.segment_s * 1e9:
            self._close_segment()
        if self._writer is None:
            h, w = frame.image.shape[:2]
            path = self.seg_dir / f"seg_{self.segments_closed:06d}.mp4"
            self._writer = VideoWriter(path, w, h, self.source.fps or 30.0, codec=self.codec)
            self._segment_start_ns = frame.t_ns
        t_s = (frame.t_ns - self.t0_ns) / 1e9
        self._writer.write(frame.image, t_s=t_s)
        self._pending.append(f"{self.frames_written},{t_s:.6f},{frame.t_ns},{self.segments_closed}\n")
        self.frames_written += 1

    def _close_segment(self) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.close()
        with open(writer.path, "rb") as f:
            os.fsync(f.fileno())
        fsync_dir(writer.path.parent)  # the new segment's name survives a power cut too
        self._table.write("".join(self._pending))
        self._table.flush()
        os.fsync(self._table.fileno())
        self._pending.clear()
        self.segments_closed += 1


class Recorder:
    """Records sources (not yet started) into `session`: view i is sources[i].

    `start()` opens the sources (MvcaptureError if one cannot be opened; nothing keeps running then),
    `stop()` ends the recording and finalizes the session, `record(seconds)` does both. Events from the
    sources (a camera lost, a file ended) go to `on_event` and to `events`; a lost source never stops the others.
    """

    def __init__(self, session: Session, sources: Sequence[FrameSource], segment_s: float = SEGMENT_S,
                 codec: str | None = None, on_event: Callable[[SourceEvent], None] | None = None):
        if not sources:
            raise ValueError("nothing to record: no sources")
        self.session = session
        self.sources = list(sources)
        self.segment_s = segment_s
        self.codec = codec
        self.on_event = on_event
        self.events: list[SourceEvent] = []
        self._writers: list[_ViewWriter] = []
        self._lock_file = None
        self._lock = threading.Lock()
        self.t0_ns = 0

    def _report(self, event: SourceEvent) -> None:
        with self._lock:
            self.events.append(event)
        if event.kind == "lost":
            log.warning("recording %s: %s lost: %s", self.session.id, event.source, event.message)
        if self.on_event is not None:
            self.on_event(event)

    def _chain(self, source: FrameSource) -> None:
        previous = source.on_event

        def handler(event: SourceEvent) -> None:
            self._report(event)
            if previous is not None:
                previous(event)

        source.on_event = handler

    def start(self) -> None:
        self._acquire_lock()
        if self.session.meta["views"]:
            self._release_lock()
            raise MvcaptureError(f"session {self.session.id} already has views; record into a new session")
        self.t0_ns = time.monotonic_ns()
        started = []
        try:
            for source in self.sources:
                self._chain(source)
                source.start()
                started.append(source)
        except BaseException:
            for source in started:
                source.stop()
            self._release_lock()
            raise
        meta = self.session.meta
        meta.update(kind="recording", state="recording", clock_t0_ns=self.t0_ns, segment_s=self.segment_s)
        meta["views"] = [{"media": STAGES["media"].format(v=i), "timestamps": STAGES["timestamps"].format(v=i),
                          "source": getattr(s, "path", None) and str(s.path) or s.name,
                          "probe": {"width": s.width, "height": s.height, "fps": s.fps},
                          **({"camera_id": s.identity} if getattr(s, "identity", None) else {})}
                         for i, s in enumerate(self.sources)]
        self.session.save_meta()
        self._writers = [_ViewWriter(self.session, i, s, self.t0_ns, self.segment_s, self.codec, self._report)
                         for i, s in enumerate(self.sources)]
        for w in self._writers:
            w.start()
        attach_remembered_lenses(self.session)  # webcams whose intrinsics were set on an earlier recording

    @property
    def running(self) -> bool:
        """True while at least one source still delivers frames."""
        return any(s.alive for s in self.sources)

    def stats(self) -> list[dict]:
        """Per view: source status and error, frames captured / written / dropped, segments closed."""
        out = []
        for s, w in zip(self.sources, self._writers):
            d = s.stats()
            d.update(frames_written=w.frames_written, segments=w.segments_closed,
                     error=w.error or d["error"])
            out.append(d)
        return out

    def record(self, seconds: float, progress: Callable[[float], None] | None = None) -> list[dict]:
        """Record for `seconds` (or until every source has ended); returns `stop()`'s stats."""
        self.start()
        try:
            start = time.monotonic()
            while self.running and time.monotonic() - start < seconds:
                time.sleep(0.05)
                if progress is not None:
                    progress(min(time.monotonic() - start, seconds))
        finally:
            stats = self.stop()
        return stats

    def stop(self) -> list[dict]:
        """Stop the sources, write what they buffered, join the segments; returns per-view stats."""
        for s in self.sources:
            s.stop()
        for w in self._writers:
            w.join()
        stats = self.stats()
        for view_meta, st in zip(self.session.meta["views"], stats):
            view_meta["recording"] = {k: st[k] for k in ("status", "error", "frames_captured", "frames_written",
                                                         "frames_dropped")}
        self.session.save_meta()
        problems = repair_recording(self.session)
        self.session.problems.extend(problems)
        self._release_lock()
        return stats

    def _acquire_lock(self) -> None:
        self._lock_file = open(self.session.path / LOCK_FILE, "a")
        if not try_lock(self._lock_file):
            self._lock_file.close()
            self._lock_file = None
            raise MvcaptureError(f"session {self.session.id} is already being recorded")

    def _release_lock(self) -> None:
        if self._lock_file is None:
            return
        self._lock_file.close()  # releases the lock
        self._lock_file = None
        with contextlib.suppress(OSError):
            os.unlink(self.session.path / LOCK_FILE)
