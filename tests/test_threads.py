"""The app's thread policy: budgets within the cores, the live heartbeat, training yielding to live capture."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from mvcapture import threads
from tests.train_helpers import write_clips


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setitem(threads._state, "role", None)
    monkeypatch.setitem(threads._state, "threads", None)
    monkeypatch.setitem(threads._state, "last_touch", 0.0)
    for var in threads.THREAD_ENV_VARS:
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores", [3, 4, 6, 8, 16, 64])
def test_budgets_of_the_running_roles_sum_to_at_most_the_cores(cores):
    live = threads.budgets(cores, live=True)
    assert sum(live.values()) <= cores and min(live.values()) >= 1
    idle = threads.budgets(cores, live=False)
    assert idle["process"] + idle["train"] <= cores
    # training yields while live capture runs; the live loop gets at least half the cores
    assert live["train"] <= idle["train"] and live["live"] >= cores // 2


@pytest.mark.parametrize("cores", [1, 2])
def test_small_machines_give_every_role_one_thread(cores):
    assert threads.budgets(cores, live=True) == {"live": 1, "process": 1, "train": 1}
    assert threads.budgets(cores, live=False)["train"] == 1


def test_physical_cores_within_the_affinity_mask():
    n = threads.physical_cores()
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= n <= allowed


def test_apply_sets_torch_and_child_thread_pools():
    n = threads.apply("train", 1)
    assert n == 1 and torch.get_num_threads() == 1
    assert all(os.environ[v] == "1" for v in threads.THREAD_ENV_VARS)
    env = threads.child_env("process", {"PATH": "/bin"})
    assert env["PATH"] == "/bin" and env["OMP_NUM_THREADS"] == str(threads.budget("process"))
    with pytest.raises(ValueError, match="unknown thread role"):
        threads.budget("gpu")


def test_live_heartbeat_marks_live_capture_until_it_goes_stale():
    assert not threads.live_active()
    threads.live_heartbeat()
    assert threads.live_active()
    assert threads._state["role"] == "live" and torch.get_num_threads() == threads.budget("live")
    old = time.time() - threads.LIVE_STALE_S - 1
    os.utime(threads.heartbeat_path(), (old, old))
    assert not threads.live_active()


def test_heartbeat_keeps_an_explicit_role():
    threads.apply("live", 1)  # e.g. `bench live --threads 1`
    threads.live_heartbeat()
    assert torch.get_num_threads() == 1


def test_an_explicit_thread_count_sizes_onnxruntime_and_the_views(monkeypatch):
    """`apply(role, n)` (e.g. `bench live --threads 2`) reaches the onnxruntime sessions made afterwards, not
    only torch; the live views run side by side on one thread each up to the cores, or up to that count."""
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    threads.apply("live")
    assert threads.current_budget() == 1 and threads.live_view_workers(2) == 2 and threads.live_view_workers(3) == 2
    threads.apply("live", 2)
    assert threads.current_budget() == 2 and torch.get_num_threads() == 2
    threads.apply("live", 1)
    assert threads.current_budget() == 1 and threads.live_view_workers(2) == 1
    monkeypatch.setattr(threads, "physical_cores", lambda: 1)
    threads.apply("live")
    assert threads.live_view_workers(2) == 1


def test_training_yields_while_live_runs(monkeypatch):
    niced = []
    monkeypatch.setattr(os, "nice", lambda inc: niced.append(inc) or inc)
    monkeypatch.setattr(threads, "budgets", lambda cores=None, live=False: {"live": 4, "process": 2,
                                                                               "train": 2 if live else 6})
    yielder = threads.TrainingYield(check_every_s=0.0)
    assert yielder.poll() is None  # nothing live: nothing changes
    threads.heartbeat_path().write_text("1")
    event = yielder.poll()
    assert event == {"event": "threads", "live": True, "threads": 2, "niced": True}
    assert torch.get_num_threads() == 2 and niced == [threads.NICE_WHILE_LIVE]
    assert yielder.poll() is None
    threads.heartbeat_path().unlink()
    assert yielder.poll()["threads"] == 6 and torch.get_num_threads() == 6
    threads.heartbeat_path().write_text("1")
    yielder.poll()
    assert niced == [threads.NICE_WHILE_LIVE]  # the priority is lowered once only


def test_training_worker_reports_that_it_yields_to_live_capture(tmp_path, capsys, _isolated_home):
    import json

    from mvcapture.cli import main

    clips = write_clips(tmp_path / "clips", n=1, T=60)
    stop = threading.Event()

    def live_loop():  # a live loop is running: its heartbeat stays fresh
        while not stop.is_set():
            threads.heartbeat_path().write_text("1")
            stop.wait(0.5)

    beat = threading.Thread(target=live_loop)
    beat.start()
    try:
        code = main(["finetune", str(clips), "--config-for-tests", "tiny", "--variant", "l2d", "--epochs", "1",
                     "--batch-size", "4"])
    finally:
        stop.set()
        beat.join()
    assert code == 0
    assert "live capture runs: training yields" in capsys.readouterr().out
    events_file = next((_isolated_home / "jobs").glob("*/events.jsonl"))
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    yielded = [e for e in events if e["event"] == "threads"]
    assert yielded and yielded[0]["live"] is True and yielded[0]["threads"] == threads.budget("train", live=True)


def test_detector_sessions_use_the_policy_threads(tmp_path):
    import numpy as np

    from mvcapture.detect.backends import RTMPoseDetector
    from mvcapture.detect.testing import make_rtmpose, make_yolox_rectangles

    threads.apply("process", 1)
    pose = make_rtmpose(tmp_path / "pose.onnx", np.arange(17), np.arange(17), (48, 64))
    det = make_yolox_rectangles(tmp_path / "det.onnx", (64, 64))
    detector = RTMPoseDetector(pose, det, device="cpu")
    for tool in (detector.pose, detector.det):
        options = tool.session.get_session_options()
        assert options.intra_op_num_threads == threads.current_budget()
        assert options.inter_op_num_threads == 1
