"""Background training jobs: a worker process per job, followed through its JSON-line event stream.

A job is a folder (`data_dir()/jobs/<id>` by default) holding `spec.json`, `events.jsonl`,
`checkpoint.pt` and, when finished, `result.json`. The GUI and the CLI both start jobs here and read
their events; `cancel()` asks the worker to checkpoint and exit, `resume_job()` continues after a
cancel, crash or kill.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mvcapture import threads
from mvcapture.errors import MvcaptureError
from mvcapture.io.atomic import atomic_write_json, atomic_write_text
from mvcapture.paths import data_dir
from mvcapture.train import store
from mvcapture.train.finetune import TrainConfig
from mvcapture.train.worker import CANCEL, CHECKPOINT, EVENTS, RESULT, SPEC, lock_job

TERMINAL_EVENTS = ("done", "cancelled", "failed")


@dataclass
class JobSpec:
    """What to train.

    Attributes:
        clips: multi-view clip files or folders (fine-tuning).
        train: TrainConfig fields (variant, epochs, lambda_con, seed, ...).
        model: lifter to start from (store version or weights path; None → the active model).
        config: start from a fresh network of this named config instead (pretraining, tests).
        kind: "finetune" (from `clips`) or "pretrain" (3D supervision from the clips in `data`, split by
            subject); the result becomes a new store version, or the weights file `out` when given.
        activate: make the new version the active one when the job succeeds.
        training_data: model-card provenance ([{source, license}]); default: the clips' own.
        nproc: processes (`torchrun`, one per GPU; gloo on CPU).
        held_out: clip files or folders of sessions never trained on: scored before (the starting lifter)
            and after (the new version) when the job ends (`held_out` event, model card `held_out`).
    """

    clips: list[str] = field(default_factory=list)
    train: dict = field(default_factory=dict)
    model: str | None = None
    config: str | None = None
    kind: str = "finetune"
    data: str | None = None
    out: str | None = None
    activate: bool = False
    name: str | None = None
    training_data: list[dict] | None = None
    device: str = "auto"
    nproc: int = 1
    checkpoint_every_s: float = 60.0
    held_out: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["clips"] = [str(Path(c).resolve()) for c in self.clips]
        for key in ("data", "out"):
            if d[key] is not None:
                d[key] = str(Path(d[key]).resolve())
        return d


def jobs_dir() -> Path:
    root = data_dir() / "jobs"
    root.mkdir(parents=True, exist_ok=True)
    return root


class Job:
    """A running or finished training job (its folder and, when started here, its process)."""

    def __init__(self, job_dir: Path, process: subprocess.Popen | None = None):
        self.job_dir = Path(job_dir)
        self.process = process
        self._offset = 0
        self._buffer = b""
        self._pending: collections.deque[dict] = collections.deque()
        self._terminal: dict | None = None

    @property
    def spec(self) -> dict:
        return json.loads((self.job_dir / SPEC).read_text(encoding="utf-8"))

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cancel(self) -> None:
        """Ask the worker to write a checkpoint and exit (it stops after the current step)."""
        atomic_write_text(self.job_dir / CANCEL, "cancel requested\n")

    def kill(self) -> None:
        """Hard-stop the worker (as a crash would); `resume_job` continues from the last checkpoint."""
        if self.running():
            if hasattr(os, "killpg"):  # the whole session: torchrun's workers too
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.kill()
            self.process.wait()

    def wait(self, timeout: float | None = None) -> int:
        if self.process is None:
            return 0
        return self.process.wait(timeout)

    def _read_new(self) -> None:
        """Queue the complete lines the worker appended since the last call."""
        path = self.job_dir / EVENTS
        if not path.is_file():
            return
        with open(path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        self._offset += len(chunk)
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                self._pending.append(json.loads(line))
            except ValueError:  # blank, or cut short by a killed worker
                continue

    def events(self, poll_s: float = 0.1) -> Iterator[dict]:
        """Yield progress events as the worker writes them, until it finishes (done/cancelled/failed).

        A worker that dies without a final event yields `{"event": "failed", "error": ...}`. Events
        are queued on the Job, so a new `events()` call after an interruption (Ctrl+C) loses none.
        """
        while self._terminal is None:
            exited = not self.running()
            self._read_new()
            while self._pending:
                event = self._pending.popleft()
                if event.get("event") in TERMINAL_EVENTS:
                    self._terminal = event
                    self.wait()
                yield event
                if self._terminal is not None:
                    return
            if exited:
                code = self.process.returncode if self.process is not None else None
                self._terminal = {"event": "failed", "error": f"training process exited (code {code}) "
                                  f"without finishing; resume it with resume_job('{self.job_dir}')"}
                yield self._terminal
                return
            time.sleep(poll_s)

    def result(self) -> dict | None:
        """The final event once the job has ended (`done` carries the new version)."""
        if self._terminal is None:
            for _ in self.events():
                pass
        return self._terminal


def _launch(job_dir: Path, nproc: int) -> subprocess.Popen:
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "mvcapture.train.worker", str(job_dir)]
    else:
        cmd = [sys.executable, "-m", "mvcapture.train.worker", str(job_dir)]
    env = threads.child_env("train")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                      env.get("PYTHONPATH")]))
    log_file = open(job_dir / "worker.log", "ab")
    try:
        # Own session: Ctrl+C in a terminal reaches the caller only, which then cancels cleanly.
        return subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    finally:
        log_file.close()


def start_job(spec: JobSpec | dict, job_dir: Path | str | None = None) -> Job:
    """Write the job folder and start its worker process."""
    spec = spec if isinstance(spec, JobSpec) else JobSpec(**spec)
    if spec.kind == "finetune" and not spec.clips:
        raise MvcaptureError("no training clips given")
    if spec.kind == "pretrain" and not spec.data:
        raise MvcaptureError("pretraining needs a folder of clips with gt3d")
    config = TrainConfig.from_dict(spec.train)  # bad settings fail here, not in the worker
    if spec.nproc < 1:
        raise MvcaptureError(f"--nproc must be at least 1 (one process per GPU), got {spec.nproc}")
    if spec.kind == "finetune":  # so do bad clips and clips the variant cannot train on
        from mvcapture.train import data as tdata

        files = tdata.clip_files(spec.clips)
        tdata.check_requirements([config.variant], tdata.load_training_clips(files), files)
        if spec.held_out:
            tdata.load_training_clips(spec.held_out)
    if spec.config is None:  # a missing or damaged starting model too
        from mvcapture.lifter import load_lifter

        load_lifter(str(store.resolve_model(spec.model)), device="cpu")
    if job_dir is None:
        job_dir = jobs_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=False)
    atomic_write_json(job_dir / SPEC, spec.to_dict())
    return Job(job_dir, _launch(job_dir, spec.nproc))


def resume_job(job_dir: Path | str) -> Job:
    """Start the worker again on an unfinished job; it continues from its last checkpoint."""
    job_dir = Path(job_dir)
    if not (job_dir / SPEC).is_file():
        raise MvcaptureError(f"{job_dir} is not a training job folder (no {SPEC})")
    if (job_dir / RESULT).is_file():
        raise MvcaptureError(f"job {job_dir.name} has already finished")
    (job_dir / CANCEL).unlink(missing_ok=True)
    job = Job(job_dir)
    job._read_new()  # skip events of earlier runs
    job._buffer = b""
    job._pending.clear()
    job.process = _launch(job_dir, int(job.spec.get("nproc", 1)))
    return job


def job_events(job_dir: Path | str) -> list[dict]:
    """Every event a job's workers have written so far (all runs, resumes included), in order."""
    job = Job(Path(job_dir))
    job._read_new()
    return list(job._pending)


def _worker_alive(job_dir: Path) -> bool:
    """Whether a worker holds the job's lock (the OS releases it when that process ends, even on a kill)."""
    lock = lock_job(job_dir)
    if lock is None:
        return True
    lock.close()  # ours for a moment: release it
    return False


def unfinished_jobs(kind: str = "finetune") -> list[Path]:
    """Jobs of `kind` that stopped with a checkpoint before finishing — cancelled, or the app or the computer
    went down — and that no worker is running now; newest first. `resume_job` continues any of them.
    A job whose last event says it failed (e.g. a collapse) is not listed: resuming would fail the same way."""
    found = []
    for job_dir in sorted(jobs_dir().iterdir(), reverse=True):
        if not ((job_dir / SPEC).is_file() and (job_dir / CHECKPOINT).is_file()) or (job_dir / RESULT).is_file():
            continue
        try:
            if json.loads((job_dir / SPEC).read_text(encoding="utf-8")).get("kind", "finetune") != kind:
                continue
        except ValueError:
            continue
        events = job_events(job_dir)
        if events and events[-1].get("event") == "failed":
            continue
        if not _worker_alive(job_dir):
            found.append(job_dir)
    return found
