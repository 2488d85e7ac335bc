"""One GPU training candidate for issue #17 (run by run_device.sh; several run side by side on one GPU).

usage: python train_gpu.py OUT_DIR JSON_SPEC
spec: {"name", "init": weights file or config name, "lr", "batch", "kinds" (clip kinds of gen.py to train on),
       "stride", "deadline" (unix time at which training stops), "seed", "warmup", optional "val_kinds" (the clip
       kinds of subject 003 to validate on; default "kinds"), "threads", "epoch_steps"}
Trains with `train.finetune.Trainer` (variant l3d: MotionBERT's L_3D, AdamW weight decay 0.01, half the windows
mirrored, bf16 autocast on CUDA), validation on subject 003 (model selection, as `train pretrain`), the learning
rate on a cosine from the first step to the deadline (the budget, not an epoch count, is what a device lease fixes:
`TrainConfig.time_budget_s`, as `mvcapture train pretrain --time-budget`).
Writes OUT_DIR/<name>.pt (+ card .json: the validation-best epoch) and OUT_DIR/<name>_log.json.
"""
import json
import sys
import time
from pathlib import Path

import torch


def main(out_dir: Path, spec: dict) -> None:
    from mvcapture.data.dataset import split_by_subject
    from mvcapture.io.clip import load_dataset
    from mvcapture.lifter import create_lifter, load_lifter, save_lifter
    from mvcapture.train import data as tdata
    from mvcapture.train.finetune import Trainer, TrainConfig, seed_everything

    torch.set_num_threads(int(spec.get("threads", 2)))
    t_load = time.time()
    kind = lambda c: c.name.split("_")[2][0]  # noqa: E731 (gen.py's clip names: <subject>_<trial>_<kind>...)
    val_kinds = spec.get("val_kinds", spec["kinds"])  # the second run validates every candidate on one set
    clips = [c for c in load_dataset(spec["data"], min_views=1) if kind(c) in spec["kinds"] + val_kinds]
    split = split_by_subject([c.name for c in clips])
    by_name = {c.name: c for c in clips}
    train = [by_name[n] for n in split["train"] if kind(by_name[n]) in spec["kinds"]]
    val = [by_name[n] for n in split["val"] if kind(by_name[n]) in val_kinds]
    assert not split["test"], "held-out subject in the training data"
    seed_everything(int(spec["seed"]))
    init = spec["init"]
    model = load_lifter(init, device="cpu").model if init.endswith(".pt") else create_lifter(init)
    window = int(model.maxlen)
    train_set, val_set = tdata.make_datasets(train, val, window, int(spec["stride"]), min_views=1, seed=int(spec["seed"]))
    epoch_steps = int(spec.get("epoch_steps", 150))
    budget = max(1.0, float(spec["deadline"]) - time.time())
    # short "epochs" of `epoch_steps` random batches over all windows (validation and selection every so
    # often), the learning rate on a cosine to 2 % over the time budget, the last partial epoch validated:
    # the Trainer's own options now (the runs of the first two leases overrode its batches and schedule in a
    # subclass with the same formulas; tests/test_train.py checks the batches against that formula)
    config = TrainConfig(variant="l3d", epochs=100000, lr=float(spec["lr"]), batch_size=int(spec["batch"]),
                         weight_decay=0.01, stride=int(spec["stride"]), seed=int(spec["seed"]),
                         warmup_steps=int(spec.get("warmup", 100)), lr_schedule="cosine", lr_floor=0.02,
                         epoch_steps=epoch_steps, time_budget_s=budget, flip=True, amp=True)
    log = {"spec": spec, "train_clips": len(train), "val_clips": len(val), "train_windows": len(train_set),
           "val_windows": len(val_set), "load_s": time.time() - t_load, "epochs": [],
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    t0 = [None]

    def emit(event):
        if event.get("event") in ("epoch", "validation"):
            rec = {k: event[k] for k in ("epoch", "validation", "lr", "best") if k in event}
            rec["t"] = round(time.time() - (t0[0] or time.time()), 1)
            log["epochs"].append(rec)
            v = event["validation"]
            print(f"[{spec['name']}] {event['event']} {event.get('epoch')} t={rec['t']}s "
                  f"val mpjpe {v.get('mpjpe_mm', float('nan')):.1f} lr {event.get('lr', 0):.2e}", flush=True)

    trainer = Trainer(model, train_set, val_set, config, emit=emit, device="auto")
    log["steps_per_epoch"] = epoch_steps
    log["budget_s"] = budget
    t0[0] = time.time()
    result = trainer.run(save_checkpoint=None)
    log["train_s"] = time.time() - t0[0]
    log["steps"] = trainer.global_step
    log["status"] = result.status
    log["best_epoch"] = trainer.best_epoch
    log["best_validation"] = trainer.best_metrics
    if trainer.best_state is not None:
        model.load_state_dict(trainer.best_state)
        save_lifter(model.cpu(), out_dir / f"{spec['name']}.pt", card={
            "name": f"issue-17 GPU candidate {spec['name']}", "version": spec["name"],
            "parent_version": Path(init).stem if init.endswith(".pt") else None,
            "losses": {"variant": "l3d", "weights": config.loss_weights()},
            "epochs": trainer.best_epoch, "metrics": {"eval_set": "validation subject 003", **trainer.best_metrics},
            "training": {**spec, "steps": trainer.global_step, "device": log["device"]}})
    (out_dir / f"{spec['name']}_log.json").write_text(json.dumps(log, indent=1, default=float))
    print(f"[{spec['name']}] done: {trainer.global_step} steps, best epoch {trainer.best_epoch}, "
          f"val {trainer.best_metrics.get('mpjpe_mm')}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
