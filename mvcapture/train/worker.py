"""Training worker process: `python -m mvcapture.train.worker JOB_DIR` (also under `torchrun`).

Reads `JOB_DIR/spec.json`, trains (resuming from `JOB_DIR/checkpoint.pt` when present), appends
progress as JSON lines to `JOB_DIR/events.jsonl`, stops cleanly when `JOB_DIR/cancel` appears or on
SIGINT/SIGTERM, and on success saves the model (store version, or the `out` path for pretraining).
Its threads follow the app's policy (`mvcapture.threads`): the training budget, and fewer threads and a
lower priority while live capture runs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import torch

from mvcapture import threads
from mvcapture.errors import MvcaptureError
from mvcapture.io.atomic import atomic_torch_save, atomic_write_json
from mvcapture.train.finetune import DistInfo, Trainer, TrainConfig, seed_everything

log = logging.getLogger(__name__)

SPEC = "spec.json"
EVENTS = "events.jsonl"
CHECKPOINT = "checkpoint.pt"
CANCEL = "cancel"
RESULT = "result.json"
VAL_HELD_OUT = "held-out windows (the tail of each training clip)"


class EventWriter:
    """Appends one JSON object per line (flushed), so readers can follow while the job runs."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_file() and path.stat().st_size:
            with open(path, "rb+") as f:  # a killed earlier run may have left half a line
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def __call__(self, event: dict) -> None:
        event = {"time": round(time.time(), 3), **event}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event, default=_jsonable) + "\n")
            f.flush()


def _jsonable(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def init_distributed() -> DistInfo:
    """Join the `torchrun` process group when launched by it (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return DistInfo(rank=dist.get_rank(), world=dist.get_world_size())


def _device_for(dist: DistInfo, name: str) -> torch.device:
    if name == "auto" and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name == "auto":
        return torch.device("cpu")
    return torch.device(name)


def build_model(spec: dict, seed: int):
    """The network to train and its parent version: a fresh named config, or a lifter to fine-tune."""
    from mvcapture import lifter as lifter_pkg
    from mvcapture.lifter import store

    if spec.get("config"):
        seed_everything(seed)
        return lifter_pkg.create_lifter(spec["config"]), None
    model_spec = str(spec.get("model") or store.ACTIVE_VERSION)
    weights = store.resolve_model(model_spec)
    lifter = lifter_pkg.load_lifter(str(weights), device="cpu")
    if store.is_version_name(model_spec):
        parent = store.get_version(model_spec).version
    else:
        parent = lifter.card.get("version") or str(weights)
    return lifter.model, parent


def load_job_data(spec: dict, config: TrainConfig, window: int):
    """(all clips, their files, train clips, validation clips, test clips, validation set description,
    whether the validation windows are held out from training)."""
    from mvcapture.train import data as tdata

    if spec.get("kind") == "pretrain":
        from mvcapture.data.dataset import split_by_subject
        from mvcapture.io.clip import load_dataset

        files = sorted(Path(spec["data"]).glob("*.npz"))
        clips = load_dataset(spec["data"], min_views=1)
        split = split_by_subject([c.name for c in clips])
        by_name = {c.name: c for c in clips}
        train, val, test = ([by_name[n] for n in split[k]] for k in ("train", "val", "test"))
        if not train or not val:
            raise MvcaptureError(f"{spec['data']}: the subject split left no training or no validation clips "
                                 f"(train {len(train)}, val {len(val)}, test {len(test)})")
        return clips, files, train, val, test, "validation subjects (model selection)", True
    files = tdata.clip_files(spec["clips"])
    clips = tdata.load_training_clips(files)
    train, val, held_out = tdata.split_validation(clips, config.val_fraction, window)
    eval_set = (VAL_HELD_OUT if held_out else
                f"the training windows (every clip is shorter than {2 * window} frames, too short to hold out "
                f"a tail; the consistency residual needs no labels, but overfitting cannot be seen)")
    return clips, files, train, val, [], eval_set, held_out


def run_job(job_dir: Path, dist: DistInfo, emit, stop_requested) -> dict:
    """Train the job in `job_dir`; returns the final event."""
    from mvcapture.train import data as tdata

    spec = json.loads((job_dir / SPEC).read_text(encoding="utf-8"))
    config = TrainConfig.from_dict(spec.get("train", {}))
    kind = spec.get("kind", "finetune")
    device = _device_for(dist, spec.get("device", "auto"))
    model, parent = build_model(spec, config.seed)
    window = config.window or int(model.maxlen)
    clips, files, train_clips, val_clips, test_clips, eval_set, held_out = load_job_data(spec, config, window)
    if kind != "pretrain":
        train_clips, val_clips = tdata.variant_clips(config.variant, train_clips, val_clips)
    noise = None
    if config.redraw_noise:
        from mvcapture.data.detector_noise import MeasuredNoise

        noise = MeasuredNoise.load()
    train_set, val_set = tdata.make_datasets(train_clips, val_clips, window, config.stride,
                                             min_views=1 if kind == "pretrain" else 2, noise=noise, seed=config.seed)
    # sessions never trained on, scored when the job ends; loaded now, so that a bad one fails before training
    held_out_sessions = held_out_windows(spec["held_out"], window) if spec.get("held_out") else None
    trainer = Trainer(model, train_set, val_set, config, emit=emit, dist=dist, device=device)
    ckpt = job_dir / CHECKPOINT
    if ckpt.is_file():
        # CPU first: RNG states must stay CPU tensors; the optimizer moves its state to the parameters.
        trainer.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        emit({"event": "resumed", "epoch": trainer.epoch + 1, "step": trainer.step,
              "global_step": trainer.global_step})
    else:
        emit({"event": "start", "kind": kind, "variant": config.variant, "epochs": trainer.config.epochs,
              "steps_per_epoch": trainer.steps_per_epoch, "train_windows": len(train_set),
              "val_windows": len(val_set), "validation_set": eval_set, "validation_held_out": held_out,
              "test_clips": len(test_clips),
              "world_size": dist.world, "device": str(device), "parent_version": parent})
    result = trainer.run(stop_requested, save_checkpoint=lambda state: atomic_torch_save(ckpt, state),
                         checkpoint_every_s=float(spec.get("checkpoint_every_s", 60.0)))
    if result.status == "cancelled":
        return {"event": "cancelled", "epoch": trainer.epoch + 1, "step": trainer.step, "checkpoint": str(ckpt)}
    if trainer.best_state is None:
        raise MvcaptureError("training collapsed before any epoch could be kept: " + (
            trainer.collapse_message or "predicted poses shrank to a point. Lower λ_con."))
    if not dist.is_main:
        return {"event": "done"}
    model.load_state_dict(trainer.best_state)
    held_out_scores = (score_held_out(spec, trainer, held_out_sessions, emit) if held_out_sessions is not None
                       else None)
    card = {
        "name": spec.get("name") or f"{config.variant} fine-tune",
        "parent_version": parent,
        "training_data": spec.get("training_data") or tdata.data_sources(clips, files),
        "losses": {"variant": config.variant, "weights": config.loss_weights()},
        "epochs": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped": result.status,
        "metrics": {"eval_set": eval_set, **result.best_metrics},
        "training": {**asdict(trainer.config), "window": window, "world_size": dist.world},
    }
    if held_out_scores:
        card["held_out"] = held_out_scores
    if test_clips:
        from mvcapture.train.evaluate import evaluate_model

        card["validation"] = card["metrics"]
        card["metrics"] = {
            "eval_set": "held-out test subjects " + ", ".join(sorted({c.name.split("_")[0] for c in test_clips}))
                        + " (synthetic views with detector noise; monocular, every view; mm)",
            "n_clips": len(test_clips), **evaluate_model(model, test_clips, device=device)}
    return finish(job_dir, spec, model, card)


def held_out_windows(paths: list[str], window: int):
    """(files, windows): the held-out sessions' clip files (from files or folders) and their two-view
    windows, one per `window` frames."""
    from mvcapture.data.dataset import WindowDataset
    from mvcapture.train import data as tdata

    files = tdata.clip_files(paths)  # a missing file, or one with a single view, is an error naming it
    return files, WindowDataset(tdata.load_training_clips(files), window=window, stride=window, min_views=2)


def score_held_out(spec: dict, trainer: Trainer, held_out: tuple, emit) -> dict:
    """Validation metrics (consistency mm, reprojection, ...) on the held-out sessions' windows
    (`held_out_windows`), for the starting lifter (before) and the trained one (after, the kept epoch's
    weights); emitted as a `held_out` event and returned for the model card."""
    files, dataset = held_out
    after = trainer.validate(dataset)
    start_model, _ = build_model(spec, trainer.config.seed)
    before = trainer.validate(dataset, model=start_model.to(trainer.device))
    scores = {"clips": [str(f) for f in files], "windows": len(dataset),
              "before": {k: v for k, v in before.items() if k != "body_size"},
              "after": {k: v for k, v in after.items() if k != "body_size"}}
    emit({"event": "held_out", **scores})
    return scores


def finish(job_dir: Path, spec: dict, model, card: dict) -> dict:
    """Save the trained model: a new store version (optionally activated), or the file `out` when given
    (pretraining the shipped lifter: `resources/lifter/default.pt` becomes the root version "default")."""
    from mvcapture.lifter import save_lifter
    from mvcapture.lifter import store

    done_path = job_dir / RESULT
    if done_path.is_file():  # a crash after saving: do not register twice
        return json.loads(done_path.read_text(encoding="utf-8"))
    if spec.get("out"):
        out = Path(spec["out"])
        card["version"] = store.DEFAULT_VERSION if out.name == "default.pt" else out.stem
        written = save_lifter(model, out, card)  # atomic, card beside it
        final = {"event": "done", "weights": str(out), "version": written["version"], "metrics": written["metrics"]}
    else:
        staged = job_dir / store.WEIGHTS_NAME
        written = save_lifter(model, staged, card)
        version = store.register_version(staged, written)
        if spec.get("activate"):
            store.activate(version.version)
        final = {"event": "done", "version": version.version, "weights": str(version.weights),
                 "activated": bool(spec.get("activate")), "metrics": version.card["metrics"]}
    atomic_write_json(done_path, final)
    return final


def lock_job(job_dir: Path):
    """Hold an exclusive lock on the job for this process's life (released by the OS even on a kill).

    Returns the open lock file, or None when another worker holds it. No-op lock where fcntl is missing.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no second-worker protection
        return open(os.devnull)
    f = open(job_dir / "worker.lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def main(argv: list[str] | None = None) -> int:
    from mvcapture.logs import setup_logging

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mvcapture.train.worker JOB_DIR", file=sys.stderr)
        return 2
    setup_logging()
    job_dir = Path(argv[0])
    dist = init_distributed()
    lock = lock_job(job_dir) if dist.is_main else None  # held until this process ends
    if dist.is_main and lock is None:
        print(f"job {job_dir} is already running in another process", file=sys.stderr)
        return 3
    emit = EventWriter(job_dir / EVENTS) if dist.is_main else (lambda event: None)
    stop = {"signal": False}
    threads.apply("train")
    yielder = threads.TrainingYield()

    def stop_requested() -> bool:
        """Polled between steps: yield to live capture, then whether to stop."""
        change = yielder.poll()
        if change is not None:
            emit(change)
        return stop["signal"] or (job_dir / CANCEL).exists()

    def on_signal(signum, frame):
        stop["signal"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        final = run_job(job_dir, dist, emit, stop_requested)
        code = 0
    except Exception as exc:  # the job's owner reads the failure from the event stream
        log.exception("training job %s failed", job_dir)
        final = {"event": "failed", "error": str(exc), "traceback": traceback.format_exc()}
        code = 1
    emit(final)
    if dist.world > 1:
        import torch.distributed

        torch.distributed.destroy_process_group()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
