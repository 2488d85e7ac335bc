"""Make the GPU candidate `s_def_pac` the shipped default lifter (issue #17): keep the earlier default loadable as
`default-v1`, measure the candidate the way the card reports it, and write `resources/lifter/default.pt` + card.

usage: python ship_default.py CANDIDATE.pt TRAIN_LOG.json RECORDING_DIR SYNTH_007_S2 SYNTH_007_S3 SYNTH_007_S4 REAL_007
(the synthetic 007 sets: `data synth bvh_007 DIR --rigs 4 --seed 2`, `... --seed 3 --height 0.8-2.8 --distance
2.5-7`, `... --seed 4 --height 0.8-2.8 --distance 2.5-7`; REAL_007: `--realistic --rigs 4 --seed 1007`).
"""
import json
import shutil
import sys
from pathlib import Path

import torch

from mvcapture.data.recording_eval import evaluate_recording
from mvcapture.io.clip import load_dataset
from mvcapture.lifter import load_lifter, save_lifter
from mvcapture.train.evaluate import evaluate_lifter

torch.set_num_threads(2)
cand_path, log_path, recording, s2, s3, s4, real = sys.argv[1:8]
res = Path("resources/lifter")
old_card = json.loads((res / "default.json").read_text())
if not (res / "default-v1.pt").is_file():
    shutil.copyfile(res / "default.pt", res / "default-v1.pt")
    card_v1 = dict(old_card, version="default-v1", weights_file="default-v1.pt", parent_version=None,
                   name="mvcapture default lifter (small), stages 1-4 on a CPU",
                   superseded="2026-12-04 by the GPU-trained default (stage 5); loadable by name: `--model default-v1`")
    (res / "default-v1.json").write_text(json.dumps(card_v1, indent=1, ensure_ascii=False) + "\n")

log = json.loads(Path(log_path).read_text())
lifter = load_lifter(cand_path, device="cpu")


def rounded(d, nd=1):
    return {k: round(v, nd) for k, v in d.items()}


def held_out(folder):
    clips = load_dataset(folder, min_views=1)
    plain, flip = evaluate_lifter(lifter, clips), evaluate_lifter(lifter, clips, flip=True)
    return plain, {"mpjpe": round(flip["mpjpe"], 1), "pa_mpjpe": round(flip["pa_mpjpe"], 1)}


metrics_s4, flip_s4 = held_out(s4)
metrics_s2, flip_s2 = held_out(s2)
metrics_s3, flip_s3 = held_out(s3)
realistic = evaluate_lifter(lifter, load_dataset(real, min_views=1))
rec = evaluate_recording(recording, model=lifter)
keep = ("n_mpjpe", "pa_mpjpe", "depth_ratio", "reference_depth_ratio", "side_swapped_frames", "side_repaired_frames")
real_footage = {
    "eval_set": old_card["real_footage"]["eval_set"],
    "views": {k: {m: (round(v[m], 2 if "ratio" in m else 1) if isinstance(v[m], float) else v[m]) for m in keep}
              for k, v in rec["views"].items()},
    "pairs": {p["pair"]: {a: {"lifter": round(p[a]["lifter"], 1), "calibration": round(p[a]["calibration"], 1)}
                          for a in ("optical_axis_angle_deg", "relative_rotation_deg")} for p in rec["pairs"]},
    "default_v1": {"views": {k: {m: v[m] for m in ("n_mpjpe", "pa_mpjpe")} for k, v in old_card["real_footage"]["views"].items()},
                   "pairs": {k: v["optical_axis_angle_deg"] for k, v in old_card["real_footage"]["pairs"].items()}},
}
spec = log["spec"]
stage5 = {
    "stage": 5, "from": "stage 4 weights (default-v1)",
    "data": (f"CMU subjects 002 / 005 (train) and 003 (validation), 48 rigs per clip in each of three kinds "
             f"(docs/runs/issue17-gpu/gen.py, seed 2026): plain views of the stage-4 cameras, motion-augmented "
             f"copies (MotionAugment) on those cameras, and motion-augmented copies filmed by realistic phone / "
             f"webcam cameras with the plain noise model; {log['train_windows']} training windows (81 frames, "
             f"stride 27), {log['val_windows']} validation windows"),
    "steps": log["steps"], "batch_size": spec["batch"], "best_epoch": log["best_epoch"],
    "epoch": "150 steps (random batches over all windows)",
    "lr": spec["lr"], "lr_schedule": "100-step warm-up, cosine to 2 % over the wall-clock budget",
    "flip_augmentation": True, "amp": "bf16 autocast",
    "train_seconds": round(log["train_s"], 1),
    "validation_mpjpe_mm": {"start": round(log["epochs"][0]["validation"]["mpjpe_mm"], 1),
                            "best": round(log["best_validation"]["mpjpe_mm"], 1)},
    "metrics": {"eval_set": old_card["metrics"]["eval_set"], "n_clips": 48, **metrics_s4},
}
card = {
    "name": "mvcapture default lifter (small), stage 5 on a GPU",
    "version": "default",
    "parent_version": "default-v1",
    "training_data": old_card["training_data"] + [{
        "source": "stage 5: CMU subjects 002, 003, 005 (007 held out) filmed by 48 new rigs per clip and kind — "
                  "plain, motion-augmented, and motion-augmented with realistic phone / webcam cameras "
                  "(docs/runs/issue17-gpu/gen.py)",
        "license": old_card["training_data"][0]["license"]}],
    "losses": old_card["losses"],
    "epochs": log["best_epoch"],
    "metrics": {"eval_set": old_card["metrics"]["eval_set"], "n_clips": 48, **metrics_s4},
    "epochs_run": len(log["epochs"]) - 1,
    "stopped": "wall-clock budget",
    "training": {"variant": "l3d", "lr": spec["lr"], "weight_decay": 0.01, "batch_size": spec["batch"],
                 "grad_clip": 1.0, "seed": spec["seed"], "window": 81, "stride": spec["stride"], "amp": True,
                 "flip": True, "steps": log["steps"], "script": "docs/runs/issue17-gpu/train_gpu.py"},
    "validation": {"eval_set": "validation subject 003 (its clips of all three kinds; model selection)",
                   **log["best_validation"]},
    "training_stages": old_card["training_stages"] + [stage5],
    "metrics_by_test_rigs": {
        "eval_set": old_card["metrics_by_test_rigs"]["eval_set"],
        "synth_r4s2 (rigs seed 2: 0.8-1.8 m high, 3.5-7 m away)": {**rounded({k: metrics_s2[k] for k in ("mpjpe", "pa_mpjpe", "n_mpjpe")}), "flip": flip_s2},
        "synth_r4s3 (rigs seed 3: 0.8-2.8 m high, 2.5-7 m away)": {**rounded({k: metrics_s3[k] for k in ("mpjpe", "pa_mpjpe", "n_mpjpe")}), "flip": flip_s3},
        "synth_r4s4 (rigs seed 4, the stage-4 data; the headline metrics)": {**rounded({k: metrics_s4[k] for k in ("mpjpe", "pa_mpjpe", "n_mpjpe")}), "flip": flip_s4},
    },
    "hardware": old_card["hardware"] + f"; stage 5: one NVIDIA H200 ({log['train_s']:.0f} s of training, bf16, "
                                       "three other runs sharing the GPU; ~5 steps/s, CPU-bound batching)",
    "real_footage": real_footage,
    "metrics_realistic_views": {"eval_set": old_card["metrics_realistic_views"]["eval_set"], **rounded(realistic)},
}
save_lifter(lifter.model, res / "default.pt", card)
print(json.dumps({"metrics": card["metrics"], "by_rigs": card["metrics_by_test_rigs"], "realistic": card["metrics_realistic_views"],
                  "views": real_footage["views"], "pairs": {k: v["optical_axis_angle_deg"] for k, v in real_footage["pairs"].items()}}, indent=1))
