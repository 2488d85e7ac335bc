"""Session folders: the single source of truth for one recording or import and everything computed from it.

Layout (paths relative to the session folder; `{v}` is the view index 0, 1, ...):

    session.json                   id, name, athlete, created, kind (recording|import), state, tags,
                                   views (media, timestamps, source, probe info, recording stats), models used
    media/view{v}.mp4              the view's video (imports keep their container: view{v}.mov, ...;
                                   imports made with copy=False reference the original file instead)
    media/view{v}_timestamps.csv   one row per video frame: frame,t_s[,t_monotonic_ns,segment]
                                   t_s is the frame's time in seconds; for recordings all views share one clock
    media/view{v}.segments/        only while recording (or after a crash, until the next open repairs it):
                                   seg_000000.mp4, ... closed every SEGMENT_S seconds
    recording.lock                 held (flock) by the recorder while it runs
    sync.json                      time alignment of each view against view 0 (Session.save_sync):
                                   {"views": {"1": SyncResult dict, ...}, ...view 1's result at top level}
    detections/view{v}.npz         2D keypoints per view (pipeline); `mvcapture sync` reads kp2d_px (T, 17, 2)
                                   COCO-17 px, conf (T, 17), frame_times_s (T,) (detect.VideoDetections keys)
    lift/view{v}.npz               3D per view (pipeline)
    analysis.npz, metrics.json     alignment + scores (pipeline)
    intrinsics/view{v}.json        the view's lens intrinsics when known (FORMATS.md; Session.set_intrinsics),
                                   matched to the view's frame size; views[v]["intrinsics"] in session.json
                                   says where it came from

File names and the timestamp tables are defined in mvcapture.session.layout (shared with the catalog,
the repair of interrupted recordings and the recorder).
Sound is read from each view's video when needed (`Session.load_audio`), not stored twice.
Every write is atomic (mvcapture.io.atomic). `Session.open` never fails on a damaged folder: it lists what
is missing or unreadable in `problems` and keeps the rest; an interrupted recording is repaired there.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from mvcapture.errors import InvalidIntrinsicsError, MvcaptureError
from mvcapture.io.atomic import atomic_save_npz, atomic_write_json
from mvcapture.session.catalog import Catalog
from mvcapture.session.layout import (
    FORMAT_VERSION,
    INTRINSICS_FILE,
    LOCK_FILE,
    SESSION_FILE,
    STAGES,
    VIDEO_SUFFIXES,
    read_timestamps,
    sessions_root,
    try_lock,
    unlock,
    write_timestamps,
)

log = logging.getLogger(__name__)

COPY_CHUNK_BYTES = 8 << 20         # imports copy in 8 MiB chunks (progress between them)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40]


@dataclass(frozen=True)
class View:
    """One camera of a session: its video, its timestamp table and what we know about it."""

    index: int
    media: Path
    timestamps: Path
    source: str
    probe: dict

    def frame_times(self) -> np.ndarray:
        """Frame times in seconds (T,), from the timestamp table (or, if that is missing, from the video)."""
        if self.timestamps.exists():
            return read_timestamps(self.timestamps)["t_s"]
        from mvcapture.io.video import frame_times

        return frame_times(self.media)

    @property
    def has_audio(self) -> bool:
        return bool(self.probe.get("has_audio"))


class ImportCancelled(MvcaptureError):
    """`Session.import_videos` stopped because its `cancel()` said so."""


class Session:
    """A session folder. Create with `Session.create`, open with `Session.open` (check `problems`)."""

    def __init__(self, path: Path, meta: dict, problems: list[str] | None = None):
        self.path = Path(path)
        self.meta = meta
        self.problems: list[str] = problems if problems is not None else []

    # -- creation and opening ------------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str | None = None, athlete: str | None = None, kind: str = "import",
               tags: Iterable[str] = (), root: Path | str | None = None) -> "Session":
        """A new empty session folder (registered in the catalog). `kind` is "import" or "recording"."""
        created = _dt.datetime.now()
        base = created.strftime("%Y%m%d-%H%M%S") + (f"-{_slug(name)}" if name and _slug(name) else "")
        root = Path(root) if root is not None else sessions_root()
        session_id, n = base, 1
        while (root / session_id).exists():
            n += 1
            session_id = f"{base}-{n}"
        path = root / session_id
        path.mkdir(parents=True)
        meta = {"format": "mvcapture-session", "version": FORMAT_VERSION, "id": session_id,
                "name": name or session_id, "athlete": athlete, "created": _now(), "kind": kind,
                "state": "empty", "tags": sorted(set(tags)), "notes": "", "views": [], "models": []}
        session = cls(path, meta)
        session.save_meta()
        return session

    @classmethod
    def open(cls, key: Path | str, repair: bool = True) -> "Session":
        """Open a session by folder path, id or name. Damage is listed in `problems`, not raised; an
        interrupted recording is repaired (unless `repair=False` or it is still being recorded)."""
        path = resolve_session_path(key)
        problems: list[str] = []
        meta_path = path / SESSION_FILE
        meta: dict | None = None
        if not meta_path.exists():
            problems.append(f"{SESSION_FILE} is missing; session details were rebuilt from the files present")
        else:
            try:
                meta = json.loads(meta_path.read_text())
                if (not isinstance(meta, dict) or not isinstance(meta.get("views", []), list)
                        or not all(isinstance(view, dict) for view in meta.get("views", []))):
                    raise ValueError("not a session description")
            except (ValueError, OSError) as exc:
                problems.append(f"{SESSION_FILE} is unreadable ({exc}); session details were rebuilt from the "
                                f"files present")
                meta = None
        if meta is None:
            meta = _rebuild_meta(path)
        meta.setdefault("id", path.name)
        meta.setdefault("name", meta["id"])
        meta.setdefault("views", [])
        meta.setdefault("tags", [])
        meta.setdefault("models", [])
        session = cls(path, meta, problems)
        if meta.get("state") == "recording":
            if session.recording_in_progress():
                problems.append("this session is being recorded right now; its videos are incomplete")
            elif repair:
                from mvcapture.session.repair import repair_recording  # here: it loads the video decoder

                problems.extend(repair_recording(session))
            else:
                problems.append("the recording was interrupted and has not been repaired yet")
        session._check_files()
        for p in session.problems:
            log.warning("session %s: %s", session.id, p)
        return session

    def recording_in_progress(self) -> bool:
        """True while a recorder (this or another process) holds this session's lock."""
        lock = self.path / LOCK_FILE
        if not lock.exists():
            return False
        with open(lock, "a") as f:
            if not try_lock(f):
                return True
            unlock(f)
        return False

    def _check_files(self) -> None:
        for i, v in enumerate(self.meta["views"]):
            if self.meta.get("state") == "recording":
                break
            media = self._resolve(v.get("media", STAGES["media"].format(v=i)))
            if not media.exists():
                self.problems.append(f"view {i}: video {media} is missing")
            ts = self._resolve(v.get("timestamps", STAGES["timestamps"].format(v=i)))
            if not ts.exists():
                self.problems.append(f"view {i}: timestamp table {ts.name} is missing (times are taken from "
                                     f"the video)")
            else:
                try:
                    read_timestamps(ts)
                except (MvcaptureError, OSError) as exc:
                    self.problems.append(f"view {i}: timestamp table is unreadable ({exc})")
            if v.get("intrinsics"):
                try:
                    self.intrinsics(i)
                except MvcaptureError as exc:
                    self.problems.append(f"view {i}: lens intrinsics are unusable ({exc}); set them again")
        for stage in ("sync", "metrics"):
            p = self.path / STAGES[stage]
            if p.exists():
                try:
                    json.loads(p.read_text())
                except (ValueError, OSError) as exc:
                    self.problems.append(f"{p.name} is unreadable ({exc}); run that stage again")
        for p in sorted(self.path.glob("**/*.npz")):
            if not zipfile.is_zipfile(p):
                self.problems.append(f"{p.relative_to(self.path)} is unreadable; run that stage again")

    # -- description ---------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.meta["id"]

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.id

    @property
    def athlete(self) -> str | None:
        return self.meta.get("athlete")

    @property
    def tags(self) -> list[str]:
        return list(self.meta.get("tags", []))

    @property
    def views(self) -> list[View]:
        """The session's views in order (their files may be missing: see `problems`)."""
        out = []
        for i, v in enumerate(self.meta["views"]):
            out.append(View(i, self._resolve(v.get("media", STAGES["media"].format(v=i))),
                            self._resolve(v.get("timestamps", STAGES["timestamps"].format(v=i))),
                            v.get("source", ""), v.get("probe", {})))
        return out

    def _resolve(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.path / p

    def save_meta(self) -> None:
        """Write session.json atomically and update the catalog."""
        atomic_write_json(self.path / SESSION_FILE, self.meta)
        try:
            Catalog().upsert(self.meta, self.path)
        except Exception as exc:  # the folder is the truth; a broken catalog is rebuilt later
            log.warning("catalog not updated for %s: %s", self.id, exc)

    def discard(self) -> None:
        """Delete this session's folder and forget it in the catalog (for a recording that never started)."""
        shutil.rmtree(self.path, ignore_errors=True)
        Catalog().remove(self.id)

    def tag(self, *tags: str) -> None:
        self.meta["tags"] = sorted(set(self.meta.get("tags", [])) | set(tags))
        self.save_meta()

    def untag(self, *tags: str) -> None:
        self.meta["tags"] = sorted(set(self.meta.get("tags", [])) - set(tags))
        self.save_meta()

    def record_model(self, stage: str, model: str, version: str) -> None:
        """Note that `stage` of this session was computed with model `model` at `version` (provenance)."""
        entry = {"stage": stage, "model": model, "version": str(version), "used_at": _now()}
        self.meta.setdefault("models", []).append(entry)
        self.save_meta()

    # -- lens intrinsics -----------------------------------------------------------------------------------
    def set_intrinsics(self, view: int, intrinsics: Path | str | dict, source: str | None = None,
                       remember: bool = True) -> Path:
        """Give view `view` its lens intrinsics (a FORMATS.md `CAM.json` path, or its dict): validated, matched
        to the view's frame size (`Intrinsics.scaled_to`: another resolution of the same aspect ratio is
        scaled, a codec's few pixels of padding are kept as they are, another aspect ratio or orientation is
        refused), stored as intrinsics/view{v}.json and noted in session.json (views[v]["intrinsics"]: file,
        source, set). For a webcam view recorded by the app (views[v]["camera_id"]) they are also remembered
        for that camera's later recordings (mvcapture.session.lenses) unless `remember=False`.

        Returns the stored file. Raises InvalidIntrinsicsError naming the file and the key, or MvcaptureError
        for a view the session does not have.
        """
        from mvcapture.geometry.intrinsics import load_intrinsics
        from mvcapture.session.lenses import remember_lens

        self._check_view(view)
        label = source or (None if isinstance(intrinsics, dict) else str(intrinsics))
        lens = load_intrinsics(intrinsics, name=label)
        probe = self.meta["views"][view].get("probe", {})
        size = (probe.get("width"), probe.get("height"))
        if all(isinstance(s, int) and s > 0 for s in size):
            try:
                lens = lens.scaled_to(size)
            except InvalidIntrinsicsError as exc:
                raise InvalidIntrinsicsError(f"view {view} of session {self.id}: {label or 'intrinsics'}: "
                                             f"{exc}") from exc
        rel = INTRINSICS_FILE.format(v=view)
        stored = lens.to_dict()
        atomic_write_json(self.path / rel, stored)
        self.meta["views"][view]["intrinsics"] = {"file": rel, "source": label or "given", "set": _now()}
        self.save_meta()
        camera_id = self.meta["views"][view].get("camera_id")
        if remember and camera_id:
            remember_lens(camera_id, stored)
        return self.path / rel

    def intrinsics(self, view: int) -> dict | None:
        """View `view`'s lens intrinsics as a FORMATS.md dict (image_size = the view's frames), or None when
        they are not known. Raises InvalidIntrinsicsError when the stored file is missing or damaged."""
        from mvcapture.geometry.intrinsics import load_intrinsics

        self._check_view(view)
        entry = self.meta["views"][view].get("intrinsics")
        if not entry:
            return None
        return load_intrinsics(self._resolve(entry["file"])).to_dict()

    def _check_view(self, view: int) -> None:
        n = len(self.meta["views"])
        if not 0 <= view < n:
            raise MvcaptureError(f"session {self.id} has {n} view(s); there is no view {view}")

    # -- importing -----------------------------------------------------------------------------------------
    def import_videos(self, paths: Iterable[Path | str], copy: bool = True,
                      progress: Callable[[float, str], None] | None = None,
                      cancel: Callable[[], bool] | None = None) -> list[View]:
        """Add one view per video file. Each file is probed first (unreadable ones raise MvcaptureError naming
        the file, before anything is added); then copied into media/ (or referenced where it is with
        copy=False), and its frame timestamps (from presentation times, VFR-safe) written to the table.

        `progress(fraction, message)` is called as the work goes (fraction of all bytes copied and
        files indexed, 0..1), from the calling thread. When `cancel()` turns true the import stops within
        one copy chunk and raises `ImportCancelled`; the views imported before stay, a partial copy is
        removed (`discard()` the session to drop it all)."""
        from mvcapture.io.video import frame_times, probe

        paths = [Path(p) for p in paths]
        infos = [probe(p) for p in paths]
        start = len(self.meta["views"])
        sizes = [p.stat().st_size for p in paths]
        # work units: the bytes to copy, plus reading each file's packet times (~a tenth of a copy)
        index_units = [max(s // 10, 1) for s in sizes]
        units = [(s if copy else 0) + u for s, u in zip(sizes, index_units)]
        total, done = float(sum(units)) or 1.0, 0

        def report(extra: int, message: str) -> None:
            if cancel is not None and cancel():
                raise ImportCancelled(f"import cancelled while {message}")
            if progress is not None:
                progress(min((done + extra) / total, 1.0), message)

        for k, (src, info) in enumerate(zip(paths, infos)):
            i = start + k
            if copy:
                suffix = src.suffix.lower() if src.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
                rel = f"media/view{i}{suffix}"
                dest = self.path / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.partial")
                copied = 0
                try:
                    with open(src, "rb") as fin, open(tmp, "wb") as fout:
                        while chunk := fin.read(COPY_CHUNK_BYTES):
                            fout.write(chunk)
                            copied += len(chunk)
                            report(copied, f"copying {src.name} ({copied / 1e6:.0f} of {sizes[k] / 1e6:.0f} MB)")
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
                tmp.replace(dest)
                media = rel
            else:
                media = str(src.resolve())
            report(units[k] - index_units[k], f"indexing the frames of {src.name}")
            ts_rel = STAGES["timestamps"].format(v=i)
            write_timestamps(self.path / ts_rel, frame_times(src))
            done += units[k]
            report(0, f"imported {src.name}")
            probe_dict = info.to_dict()
            probe_dict["path"] = media
            self.meta["views"].append({"media": media, "timestamps": ts_rel, "source": str(src.resolve()),
                                       "copied": copy, "probe": probe_dict})
            self.meta["state"] = "complete"
            self.save_meta()
        return self.views[start:]

    def load_audio(self, view: int, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
        """The view's audio as mono float32 and its rate (see mvcapture.io.video.read_audio)."""
        from mvcapture.io.video import read_audio

        return read_audio(self.views[view].media, sample_rate)

    # -- stage files ---------------------------------------------------------------------------------------
    def path_for(self, stage: str, view: int | None = None) -> Path:
        """Where a stage's output lives (see the layout above); per-view stages need `view`."""
        if stage not in STAGES:
            raise ValueError(f"unknown session stage {stage!r}; known: {', '.join(STAGES)}")
        template = STAGES[stage]
        if "{v}" in template:
            if view is None:
                raise ValueError(f"stage {stage!r} is per view: pass view=")
            if stage in ("media", "timestamps") and view < len(self.meta["views"]):
                return self.views[view].media if stage == "media" else self.views[view].timestamps
            return self.path / template.format(v=view)
        return self.path / template

    def _named(self, name: str, suffix: str) -> Path:
        if name in STAGES and "{v}" not in STAGES[name] and STAGES[name].endswith(suffix):
            return self.path / STAGES[name]
        rel = Path(name if name.endswith(suffix) else name + suffix)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"session file names are relative to the session folder: {name!r}")
        return self.path / rel

    def save_array(self, name: str, **arrays: np.ndarray) -> Path:
        """Atomically save arrays to `<name>.npz` in the session ("analysis", "detections/view0", ...)."""
        path = self._named(name, ".npz")
        atomic_save_npz(path, **{k: np.asarray(v) for k, v in arrays.items()})
        return path

    def load_array(self, name: str) -> dict[str, np.ndarray]:
        """Arrays saved with `save_array` (MvcaptureError if missing or damaged)."""
        path = self._named(name, ".npz")
        if not path.exists():
            raise MvcaptureError(f"session {self.id} has no {path.relative_to(self.path)} yet")
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise MvcaptureError(f"{path} is damaged ({exc}); run that stage again") from exc

    def save_json(self, name: str, obj: Any) -> Path:
        """Atomically save JSON to `<name>.json` in the session ("metrics", "sync", ...)."""
        path = self._named(name, ".json")
        atomic_write_json(path, obj)
        return path

    def load_json(self, name: str) -> Any:
        path = self._named(name, ".json")
        if not path.exists():
            raise MvcaptureError(f"session {self.id} has no {path.relative_to(self.path)} yet")
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise MvcaptureError(f"{path} is damaged ({exc}); run that stage again") from exc

    def save_sync(self, result: dict, view: int = 1) -> Path:
        """Store the time alignment of `view` against view 0 (sync.SyncResult as a dict: offset_s with
        t_view = t_view0 + offset_s, drift_ppm, confidence, low_confidence, method, ...).

        sync.json holds every view's result under "views" ({"1": {...}, "2": {...}}) and, at the top level,
        view 1's result (the two-camera case), each with the time it was saved.
        """
        if view < 1:
            raise ValueError("view 0 is the reference; alignments are stored for views 1, 2, ...")
        try:
            views = dict((self.load_sync_file() or {}).get("views", {}))
        except MvcaptureError:
            views = {}
        views[str(view)] = {**result, "saved": _now()}
        return self.save_json("sync", {**views.get("1", {}), "reference_view": 0, "views": views})

    def load_sync_file(self) -> dict | None:
        """sync.json as stored, or None when the session has not been synchronized."""
        if not (self.path / STAGES["sync"]).exists():
            return None
        return self.load_json("sync")

    def load_sync(self, view: int = 1) -> dict | None:
        """The stored alignment of `view` against view 0, or None when there is none."""
        data = self.load_sync_file()
        if data is None:
            return None
        return data.get("views", {}).get(str(view))

    def stage_status(self) -> dict[str, Any]:
        """What exists: per-view stages map to a list of booleans (one per view), the others to a boolean."""
        n = len(self.meta["views"])
        status: dict[str, Any] = {}
        for stage, template in STAGES.items():
            if stage in ("session", "segments"):
                continue
            if "{v}" in template:
                status[stage] = [self.path_for(stage, v).exists() for v in range(n)]
            else:
                status[stage] = (self.path / template).exists()
        return status

    def summary(self) -> dict:
        """A JSON-friendly description for the CLI and the GUI."""
        return {"id": self.id, "name": self.name, "athlete": self.athlete, "path": str(self.path),
                "kind": self.meta.get("kind"), "state": self.meta.get("state"), "tags": self.tags,
                "views": [{"index": v.index, "media": str(v.media), "source": v.source,
                           **{k: v.probe.get(k) for k in ("width", "height", "fps", "frame_count", "duration_s",
                                                          "rotation_deg", "has_audio", "variable_frame_rate")},
                           "intrinsics": self.meta["views"][v.index].get("intrinsics"),
                           **({"recording": self.meta["views"][v.index]["recording"]}
                              if "recording" in self.meta["views"][v.index] else {})}
                          for v in self.views],
                "stages": self.stage_status(), "problems": self.problems}


def resolve_session_path(key: Path | str) -> Path:
    """A session folder from a path, an id or a name (catalog, then the sessions folder)."""
    path = Path(key)
    if path.is_dir():
        return path
    candidate = sessions_root() / str(key)
    if candidate.is_dir():
        return candidate
    row = Catalog().get(str(key))
    if row is not None and Path(row["path"]).is_dir():
        return Path(row["path"])
    raise MvcaptureError(f"no session {key!r}: give a session folder, or an id or name from `mvcapture sessions`")


def _rebuild_meta(path: Path) -> dict:
    """Best-effort session description from the files in a folder whose session.json is lost."""
    views = []
    media_dir = path / "media"
    i = 0
    while True:
        found = [p for p in media_dir.glob(f"view{i}.*") if p.suffix.lower() in VIDEO_SUFFIXES] \
            if media_dir.is_dir() else []
        segments = media_dir / f"view{i}.segments"
        if not found and not segments.is_dir():
            break
        entry: dict = {"timestamps": STAGES["timestamps"].format(v=i), "source": "", "probe": {}}
        if found:
            entry["media"] = str(found[0].relative_to(path))
            try:
                from mvcapture.io.video import probe

                entry["probe"] = probe(found[0]).to_dict()
            except MvcaptureError as exc:
                log.warning("rebuilding %s: %s", path, exc)
        else:
            entry["media"] = STAGES["media"].format(v=i)
        views.append(entry)
        i += 1
    recording = any((media_dir / f"view{j}.segments").is_dir() for j in range(len(views)))
    return {"format": "mvcapture-session", "version": FORMAT_VERSION, "id": path.name, "name": path.name,
            "athlete": None, "created": "", "kind": "recording" if recording else "unknown",
            "state": "recording" if recording else "damaged", "tags": [], "notes": "", "views": views,
            "models": []}
