"""Background training jobs: cancel/resume determinism, kill safety, torchrun (gloo), CLI commands."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
import torch

from mvcapture.lifter import load_lifter

from mvcapture.train import store
from mvcapture.train.jobs import JobSpec, resume_job, start_job
from tests.train_helpers import make_clip, tiny_weights, write_clips

TRAIN = {"variant": "l2d_con", "epochs": 2, "batch_size": 4, "lr": 1e-3, "seed": 7, "flip": True}


@pytest.fixture
def clips_dir(tmp_path):
    return write_clips(tmp_path / "clips", n=2, T=80)


def _weights(version: str) -> dict:
    return load_lifter(version).model.state_dict()


def _assert_same_weights(a: dict, b: dict, atol=1e-6):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=atol)


def test_cancelled_job_resumes_to_the_weights_of_an_uninterrupted_run(clips_dir, tmp_path):
    spec = JobSpec(clips=[str(clips_dir)], config="tiny", train=TRAIN)
    full = start_job(spec, tmp_path / "full").result()
    assert full["event"] == "done", full

    job = start_job(spec, tmp_path / "interrupted")
    job.cancel()  # before the worker's first step: it stops after exactly one step
    events = list(job.events())
    assert events[-1]["event"] == "cancelled", events[-1]
    assert (job.job_dir / "checkpoint.pt").is_file()
    assert [e["global_step"] for e in events if e["event"] == "step"] == [1]

    resumed = resume_job(job.job_dir)
    events = list(resumed.events())
    assert events[0]["event"] == "resumed" and events[0]["global_step"] == 1
    assert events[-1]["event"] == "done", events[-1]
    assert events[-1]["version"] != full["version"]
    _assert_same_weights(_weights(full["version"]), _weights(events[-1]["version"]))


def test_killed_job_leaves_active_model_intact_and_is_resumable(clips_dir, tmp_path):
    previous = store.register_version(tiny_weights(tmp_path / "w.pt"), {"name": "previous"})
    store.activate(previous.version)
    before = previous.weights.read_bytes()
    spec = JobSpec(clips=[str(clips_dir)], config="tiny", activate=True, checkpoint_every_s=0.0,
                   train={**TRAIN, "epochs": 300})
    job = start_job(spec, tmp_path / "job")
    for event in job.events():
        if event["event"] == "checkpoint":
            job.kill()  # SIGKILL, as a crash or power cut would
            break
    assert not job.running()
    assert store.active_version() == previous.version
    assert [v.version for v in store.user_versions()] == [previous.version]
    assert previous.weights.read_bytes() == before
    state = torch.load(job.job_dir / "checkpoint.pt", weights_only=True)
    assert state["global_step"] >= 1

    resumed = resume_job(job.job_dir)
    resumed.cancel()
    events = list(resumed.events())
    assert events[0]["event"] == "resumed" and events[0]["global_step"] >= state["global_step"]
    assert events[-1]["event"] == "cancelled"
    assert store.active_version() == previous.version


def test_torchrun_two_gloo_processes_match_single_process(clips_dir, tmp_path):
    train = {**TRAIN, "epochs": 1, "batch_size": 4}
    one = start_job(JobSpec(clips=[str(clips_dir)], config="tiny", train=train), tmp_path / "one")
    single_events = list(one.events())
    single = single_events[-1]
    double = start_job(JobSpec(clips=[str(clips_dir)], config="tiny", train=train, nproc=2), tmp_path / "two")
    events = list(double.events())
    assert events[-1]["event"] == "done", (events[-1], (tmp_path / "two" / "worker.log").read_text()[-3000:])
    assert next(e for e in events if e["event"] == "start")["world_size"] == 2
    losses_one = [e["losses"]["total"] for e in single_events if e["event"] == "step"]
    losses_two = [e["losses"]["total"] for e in events if e["event"] == "step"]
    np.testing.assert_allclose(losses_two, losses_one, rtol=1e-4)  # all-reduced means of the global batch
    # Parameters the output does not depend on (e.g. the head's bias, cancelled by root-relative poses)
    # get pure round-off gradients that Adam scales up to ±lr; compare what the models predict instead.
    clip = make_clip(T=60, seed=99)
    a, b = (np.asarray(load_lifter(v).lift_views(clip)) for v in (single["version"], events[-1]["version"]))
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_finetune_and_models_commands(clips_dir, tmp_path, capsys):
    from mvcapture.cli import main

    report = tmp_path / "ft.json"
    assert main(["finetune", str(clips_dir), "--config-for-tests", "tiny", "--epochs", "1", "--batch-size", "4",
                 "--variant", "l2d_con_frame", "--lambda-con", "0.5", "--activate", "--json", str(report)]) == 0
    payload = json.loads(report.read_text())
    assert payload["status"] == "done" and payload["result"]["version"] == "v0001"
    card = store.get_version("v0001").card
    assert card["losses"] == {"variant": "l2d_con_frame",
                             "weights": {"reproj": 1.0, "con_frame": 0.5, "guard": 1.0}}
    assert card["sha256"] == hashlib.sha256(store.get_version("v0001").weights.read_bytes()).hexdigest()
    assert store.active_version() == "v0001"

    assert main(["finetune", str(clips_dir), "--model", "v0001", "--epochs", "1", "--batch-size", "4"]) == 0
    assert store.get_version("v0002").card["parent_version"] == "v0001"
    assert store.active_version() == "v0001"  # not activated without --activate
    # a time limit (2.4 s): stops long before its 100,000 epochs, keeps the best epoch, says why it stopped
    report = tmp_path / "limited.json"
    assert main(["finetune", str(clips_dir), "--model", "v0001", "--epochs", "100000", "--batch-size", "4",
                 "--time-budget", "0.04", "--json", str(report)]) == 0
    card = store.get_version("v0003").card
    assert card["stopped"] == "budget" and card["training"]["time_budget_s"] == pytest.approx(2.4)
    assert 1 <= card["epochs_run"] < 100000 and card["epochs"] <= card["epochs_run"]
    assert len(json.loads(report.read_text())["epochs"]) == card["epochs_run"]

    listing = tmp_path / "list.json"
    assert main(["models", "list", "--json", str(listing)]) == 0
    assert json.loads(listing.read_text())["active"] == "v0001"
    assert main(["models", "show", "v0001"]) == 0
    assert main(["models", "export", "v0001", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "v0001.pt").is_file() and (tmp_path / "out" / "v0001.json").is_file()
    assert main(["models", "activate", "v0042"]) == 2
    assert "no model version 'v0042'" in capsys.readouterr().err


def test_held_out_sessions_are_scored_before_and_after_with_the_right_models(clips_dir, tmp_path, capsys):
    """`--held-out`: sessions never trained on, scored with the starting lifter and with the new version
    (checked against the validation of each model recomputed here), in the event stream, the JSON report,
    the printed table and the model card."""
    from mvcapture.cli import main
    from mvcapture.data.dataset import WindowDataset
    from mvcapture.lifter import create_lifter
    from mvcapture.train.data import load_training_clips
    from mvcapture.train.finetune import Trainer, TrainConfig, seed_everything

    held = write_clips(tmp_path / "held", n=1, T=60, first_seed=11)
    report = tmp_path / "ft.json"
    assert main(["finetune", str(clips_dir), "--config-for-tests", "tiny", "--epochs", "2", "--batch-size", "4",
                 "--seed", "7", "--held-out", str(held), "--json", str(report)]) == 0
    payload = json.loads(report.read_text())
    scores = payload["held_out"]
    dataset = WindowDataset(load_training_clips(sorted(held.glob("*.npz"))), window=27, stride=27, min_views=2)
    assert scores["clips"] == [str(p) for p in sorted(held.glob("*.npz"))] and scores["windows"] == len(dataset)
    assert f"held-out sessions (1, {len(dataset)} windows), before → after:" in capsys.readouterr().out
    card = store.get_version(payload["result"]["version"]).card
    assert card["held_out"] == scores
    assert sum(d["clips"] for d in card["training_data"]) == 2  # the two training clips, not the held-out one

    config = TrainConfig.from_dict({"variant": "l2d_con", "batch_size": 4})
    seed_everything(7)
    start = create_lifter("tiny")
    new = load_lifter(payload["result"]["version"]).model
    for model, when in ((start, "before"), (new, "after")):
        expected = Trainer(model, dataset, dataset, config, device="cpu").validate()
        for key, value in scores[when].items():
            assert value == pytest.approx(expected[key], rel=1e-5), (when, key)
    assert scores["before"]["consistency_mm"] != pytest.approx(scores["after"]["consistency_mm"], rel=1e-3)


def test_held_out_sessions_without_two_views_fail_before_training(clips_dir, tmp_path):
    """A held-out session with nothing to compare (one view) is refused before the job starts, not after the
    training."""
    from mvcapture.errors import InvalidClipError

    single = write_clips(tmp_path / "single", n=1, T=60, views=1, first_seed=5)
    with pytest.raises(InvalidClipError, match="clip00.npz: needs at least 2 views"):
        start_job(JobSpec(clips=[str(clips_dir)], config="tiny", train=TRAIN, held_out=[str(single)]),
                  tmp_path / "job")
    assert not (tmp_path / "job").exists()


def test_finetune_on_a_clip_too_short_to_hold_out_a_tail(tmp_path):
    """A 40-frame recording (tiny lifter: 27-frame windows, a tail needs 54 frames) fine-tunes, validating
    on its own windows, and the card says so (it failed with "clips are too short" before)."""
    short = write_clips(tmp_path / "short", n=1, T=40)
    job = start_job(JobSpec(clips=[str(short)], config="tiny", train={**TRAIN, "flip": False}), tmp_path / "job")
    events = list(job.events())
    assert events[-1]["event"] == "done", events[-1]
    start = next(e for e in events if e["event"] == "start")
    assert start["validation_set"].startswith("the training windows") and start["validation_held_out"] is False
    card = store.get_version(events[-1]["version"]).card
    assert card["metrics"]["eval_set"] == start["validation_set"]
    assert np.isfinite(card["metrics"]["consistency_mm"])


def test_progress_bar_total_follows_the_time_budget_when_it_comes_first():
    from mvcapture.train.cli import bar_total

    step = {"global_step": 30, "total_steps": 300_000, "train_s": 60.0}
    assert bar_total(step) == 300_000, "no budget: every epoch's steps"
    assert bar_total({**step, "time_budget_s": 600.0}) == 300, "30 steps a minute for ten minutes"
    assert bar_total({**step, "total_steps": 100, "time_budget_s": 600.0}) == 100, "the epochs end first"
    assert bar_total({**step, "time_budget_s": 30.0}) == 30, "never fewer than the steps taken"


def test_pretrain_command_writes_weights_and_card_with_held_out_metrics(tmp_path):
    from mvcapture.cli import main
    from mvcapture.lifter import load_lifter

    data = write_clips(tmp_path / "synth", T=60, names=["002_01_r0", "002_02_r0", "003_01_r0", "007_01_r0"])
    out = tmp_path / "resources" / "lifter" / "default.pt"
    report = tmp_path / "pretrain.json"
    assert main(["train", "pretrain", "--data", str(data), "--config", "tiny", "--epochs", "1",
                 "--batch-size", "4", "--out", str(out), "--json", str(report)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["version"] == "default" and card["parent_version"] is None
    assert card["architecture"]["config_name"] == "tiny"
    assert card["losses"]["weights"] == {"pos": 1.0, "vel": 20.0, "scale": 0.5}
    assert "007" in card["metrics"]["eval_set"] and card["metrics"]["n_clips"] == 1
    assert card["metrics"]["mpjpe"] > 0 and card["metrics"]["pa_mpjpe"] > 0
    assert "CMU" in card["training_data"][0]["source"]
    assert load_lifter(out).card["sha256"] == card["sha256"]
    assert json.loads(report.read_text())["status"] == "done"
    # a further stage: continue from those weights (their config, their parent) with its own stride
    stage2 = tmp_path / "stage2" / "default.pt"
    assert main(["train", "pretrain", "--data", str(data), "--model", str(out), "--epochs", "1", "--stride", "27",
                 "--batch-size", "4", "--lr", "2e-4", "--out", str(stage2)]) == 0
    card2 = json.loads(stage2.with_suffix(".json").read_text())
    assert card2["parent_version"] == "default" and card2["architecture"]["config_name"] == "tiny"
    assert card2["training"]["stride"] == 27 and card2["training"]["lr"] == 2e-4
    # a stage on a time budget (as a device lease fixes it): short epochs, cosine schedule, stopped by the clock
    stage3 = tmp_path / "stage3" / "default.pt"
    report3 = tmp_path / "stage3.json"
    assert main(["train", "pretrain", "--data", str(data), "--model", str(stage2), "--epochs", "100000",
                 "--epoch-steps", "3", "--lr-schedule", "cosine", "--warmup-steps", "4", "--time-budget", "0.03",
                 "--batch-size", "4", "--out", str(stage3), "--json", str(report3)]) == 0
    card3 = json.loads(stage3.with_suffix(".json").read_text())
    assert card3["stopped"] == "budget" and card3["parent_version"] == "default"
    training = card3["training"]
    assert (training["time_budget_s"], training["epoch_steps"], training["lr_schedule"], training["warmup_steps"]) \
        == (pytest.approx(1.8), 3, "cosine", 4)
    epochs = json.loads(report3.read_text())["epochs"]
    assert 1 <= len(epochs) < 100000 and card3["epochs_run"] == len(epochs)


def test_ctrl_c_in_finetune_command_cancels_cleanly(clips_dir, tmp_path, _isolated_home):
    import os
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "mvcapture", "finetune", str(clips_dir), "--config-for-tests", "tiny",
           "--epochs", "300", "--batch-size", "4"]
    # Ctrl+C as in a terminal: a test run started in the background by a shell (`pytest &`) inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler; restore the default for the command
    cli = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
                           preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if os.name == "posix" else None)
    deadline = time.time() + 300  # waits for the first step; generous, so a busy machine is no failure
    events_file = None
    while time.time() < deadline:
        found = list((_isolated_home / "jobs").glob("*/events.jsonl")) if (_isolated_home / "jobs").is_dir() else []
        if found and b'"step"' in found[0].read_bytes():
            events_file = found[0]
            break
        time.sleep(0.1)
    assert events_file is not None, cli.communicate(timeout=30)
    cli.send_signal(signal.SIGINT)
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 130, err.decode()
    assert "resume with: mvcapture finetune --resume" in err.decode()
    last = json.loads(events_file.read_text().splitlines()[-1])
    assert last["event"] == "cancelled"
    assert (events_file.parent / "checkpoint.pt").is_file()
    assert not store.user_versions()


def test_a_job_runs_in_one_worker_at_a_time(tmp_path):
    from mvcapture.train.worker import lock_job as _lock

    first = _lock(tmp_path)
    assert first is not None
    assert _lock(tmp_path) is None
    first.close()
    again = _lock(tmp_path)
    assert again is not None
    again.close()


def test_unfinished_jobs_lists_resumable_jobs_newest_first(clips_dir, tmp_path):
    """Cancelled jobs with a checkpoint are listed (newest first); finished jobs, failed ones and one whose
    worker still holds the lock are not."""
    import fcntl

    from mvcapture.train.jobs import job_events, jobs_dir, unfinished_jobs

    train = {**TRAIN, "epochs": 3}
    older = start_job(JobSpec(clips=[str(clips_dir)], config="tiny", train=train), jobs_dir() / "20260101-000000-a")
    older.cancel()
    assert older.result()["event"] == "cancelled"
    newer = start_job(JobSpec(clips=[str(clips_dir)], config="tiny", train=train), jobs_dir() / "20260102-000000-b")
    newer.cancel()
    assert newer.result()["event"] == "cancelled"
    done = start_job(JobSpec(clips=[str(clips_dir)], config="tiny", train={**TRAIN, "epochs": 1}),
                     jobs_dir() / "20260103-000000-c")
    assert done.result()["event"] == "done"
    assert unfinished_jobs() == [newer.job_dir, older.job_dir]
    assert [e["event"] for e in job_events(newer.job_dir)][-1] == "cancelled"
    with open(newer.job_dir / "worker.lock", "w") as held:  # as a running worker holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert unfinished_jobs() == [older.job_dir]
    with open(older.job_dir / "events.jsonl", "a") as f:
        f.write(json.dumps({"event": "failed", "error": "collapsed"}) + "\n")
    assert unfinished_jobs() == [newer.job_dir]
