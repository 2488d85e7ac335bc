"""One thread policy for the whole app: how many CPU threads the live loop, processing and training get.

Oversubscribed cores slow torch badly (a fine-tuning step on 2 cores with one other busy process: 2.7 s
with torch's default 2 threads, 1.1 s with 1), so every role sets its threads explicitly (torch intra-
and inter-op, onnxruntime sessions, OMP/MKL for its child processes) from one budget that together does
not exceed the physical cores. The live loop announces itself with a heartbeat file; the fine-tuning
worker polls it between steps and yields (fewer threads, lower priority) while live capture runs.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

ROLES = ("live", "process", "train")
# the heartbeat counts as "live capture runs" for this long after its last touch
LIVE_STALE_S = 3.0
# the live loop touches its heartbeat at most this often
LIVE_TOUCH_EVERY_S = 1.0
# niceness the training worker adds (once; an unprivileged process cannot undo it) when live capture starts
NICE_WHILE_LIVE = 10
# environment variables that size the thread pools of a child process's numeric libraries
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
HEARTBEAT_NAME = "live.heartbeat"

_state = {"role": None, "threads": None, "last_touch": 0.0}


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads of one core count once; the affinity mask
    and the Linux topology where known, else the logical CPU count)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topo.joinpath("physical_package_id").read_text().strip(),
                       topo.joinpath("core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def budgets(cores: int | None = None, live: bool = False) -> dict[str, int]:
    """Threads per role: {"live", "process", "train"}.

    While live capture runs it gets half the cores, processing and training share the rest; otherwise
    processing and training share all of them. They sum to the cores, except that every role keeps at
    least one thread: with fewer cores than running roles (2 cores, live + processing + training) the
    background roles also run at lower priority (training: `TrainingYield`), so the live loop still wins.
    """
    n = physical_cores() if cores is None else max(1, int(cores))
    if live:
        live_n = max(1, n // 2)
        process = max(1, (n - live_n) // 2)
        return {"live": live_n, "process": process, "train": max(1, n - live_n - process)}
    process = max(1, n // 2)
    return {"live": max(1, n // 2), "process": process, "train": max(1, n - process)}


def budget(role: str, live: bool | None = None) -> int:
    """Threads of one role now (`live` None: whether live capture runs, from its heartbeat)."""
    if role not in ROLES:
        raise ValueError(f"unknown thread role {role!r}; one of {', '.join(ROLES)}")
    return budgets(live=live_active() if live is None else live)[role]


def apply(role: str, threads: int | None = None) -> int:
    """Size this process's thread pools for `role` (or to `threads`): torch intra-op threads, inter-op
    threads (where torch still allows it), and OMP/MKL for child processes. Returns the thread count."""
    import torch

    n = budget(role) if threads is None else max(1, int(threads))
    torch.set_num_threads(n)
    try:  # allowed once, before any inter-op work started; later calls keep the first setting
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    _state["role"], _state["threads"] = role, None if threads is None else n
    log.info("threads: %s role, %d torch thread(s) (%d physical cores)", role, n, physical_cores())
    return n


def current_budget() -> int:
    """Threads for thread pools made now (onnxruntime sessions): what this process applied (`apply`: its
    role's budget or the explicit count), or processing's budget when it applied nothing."""
    return _state["threads"] or budget(_state["role"] or "process")


def live_view_workers(num_views: int) -> int:
    """Threads the live loop runs its views' pose model on side by side (one view each): one per view up
    to the physical cores — the live loop is the app's priority, and while it runs the background roles
    yield or run at lower priority — or the explicit count given to `apply` (e.g. `bench live --threads
    1`: one thread for everything)."""
    limit = _state["threads"] if _state["threads"] else physical_cores()
    return max(1, min(int(num_views), limit))


def child_env(role: str, env: dict | None = None) -> dict:
    """A copy of `env` (default os.environ) whose OMP/MKL/OpenBLAS pools start at `role`'s budget."""
    out = dict(os.environ if env is None else env)
    n = str(budget(role))
    for var in THREAD_ENV_VARS:
        out[var] = n
    return out


# ------------------------------------------------------------------------------------- live heartbeat

def heartbeat_path() -> Path:
    from mvcapture.paths import data_dir

    return data_dir() / HEARTBEAT_NAME


def live_heartbeat() -> None:
    """Called by the live loop for every frame: the first call sizes this process's threads for the
    live role (unless the process applied a role already, e.g. `bench live --threads`); then the
    heartbeat file is touched (at most once a second) so background training yields."""
    now = time.monotonic()
    if _state["role"] is None:
        apply("live")
    if now - _state["last_touch"] < LIVE_TOUCH_EVERY_S:
        return
    _state["last_touch"] = now
    try:
        heartbeat_path().write_text(str(os.getpid()), encoding="utf-8")
    except OSError as exc:  # a full or read-only disk must not stop the live preview
        log.debug("live heartbeat not written: %s", exc)


def live_active(stale_s: float = LIVE_STALE_S) -> bool:
    """Whether a live loop touched the heartbeat in the last `stale_s` seconds (any process)."""
    try:
        age = time.time() - heartbeat_path().stat().st_mtime
    except OSError:
        return False
    return age < stale_s


class TrainingYield:
    """The fine-tuning worker's side: polled between steps; while live capture runs, training drops to
    the live-time training budget and (once) lowers its priority by NICE_WHILE_LIVE; when live capture
    stops, its threads come back (the priority stays lowered: unprivileged processes cannot raise it).

    `poll()` returns an event dict when the setting changed (for the job's event stream), else None.
    """

    def __init__(self, check_every_s: float = 1.0):
        self.check_every_s = check_every_s
        self.live = False
        self.niced = False
        self._last_check = -float("inf")

    def poll(self) -> dict | None:
        now = time.monotonic()
        if now - self._last_check < self.check_every_s:
            return None
        self._last_check = now
        live = live_active()
        if live == self.live:
            return None
        self.live = live
        import torch

        n = budget("train", live=live)
        torch.set_num_threads(n)
        if live and not self.niced and hasattr(os, "nice"):
            try:
                os.nice(NICE_WHILE_LIVE)
                self.niced = True
            except OSError as exc:
                log.debug("could not lower the priority: %s", exc)
        log.info("live capture %s: training uses %d thread(s)%s", "runs" if live else "stopped", n,
                 ", lower priority" if self.niced else "")
        return {"event": "threads", "live": live, "threads": n, "niced": self.niced}
