"""Monocular evaluation of a lifter on multi-view clips with ground truth, and `mvcapture eval`.

Every view of every test clip is lifted on its own and compared with its `gt3d` (root-relative, mm):
MPJPE, PA-MPJPE (per-frame similarity), N-MPJPE (scale), plus the mean two-view consistency residual
L_c (one similarity per sequence, PAPER.md). Predictions become metres exactly through the focal length:
the clip's `focal_px` (synthetic data), or estimated from its `gt3d` and `kp2d` (FORMATS.md clips).
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

from mvcapture.errors import MvcaptureError
from mvcapture.io.clip import MultiViewClip
from mvcapture.train.variants import EVAL_VARIANTS

log = logging.getLogger(__name__)

METRICS = ("mpjpe", "pa_mpjpe", "n_mpjpe", "consistency")


def prediction_metres(pred_norm: np.ndarray, clip: MultiViewClip, view: int) -> np.ndarray:
    """(T, 17, 3) normalized 2.5D of one view → root-relative metres in that camera's frame."""
    from mvcapture.core.normalize import norm25d_to_camera, norm25d_to_metres

    focal = clip.focal_px() if clip.gt3d is not None else None  # the clip's key, or estimated from gt3d
    if focal is not None:
        return norm25d_to_camera(pred_norm, np.float64(np.asarray(focal)[view]),
                                 clip.image_size[view].astype(np.float64), clip.gt3d[view, :, 0, :])
    return norm25d_to_metres(pred_norm)


def evaluate_lifter(lifter, clips: list[MultiViewClip], flip: bool = False) -> dict:
    """Frame-weighted means over all views of all clips (mm): mpjpe, pa_mpjpe, n_mpjpe, consistency.

    `flip`: with flip test-time augmentation (as `mvcapture process` lifts by default)."""
    from mvcapture.core import metrics

    sums = dict.fromkeys(METRICS, 0.0)
    frames = dict.fromkeys(METRICS, 0)
    for clip in clips:
        if clip.gt3d is None:
            raise MvcaptureError(f"test clip {clip.name} has no gt3d; evaluation needs 3D ground truth")
        pred = np.asarray(lifter.lift_views(clip, flip=flip), dtype=np.float64)
        pred_m = np.stack([prediction_metres(pred[v], clip, v) for v in range(clip.num_views)])
        gt = clip.gt3d.astype(np.float64)
        gt = gt - gt[:, :, :1]
        T = clip.num_frames
        for v in range(clip.num_views):
            for name, fn in (("mpjpe", metrics.mpjpe), ("pa_mpjpe", metrics.pa_mpjpe), ("n_mpjpe", metrics.n_mpjpe)):
                sums[name] += float(fn(pred_m[v], gt[v])) * T
                frames[name] += T
        for a, b in itertools.combinations(range(clip.num_views), 2):
            sums["consistency"] += float(metrics.consistency_residual(pred_m[a], pred_m[b]).mean_mm) * T
            frames["consistency"] += T
    return {k: sums[k] / frames[k] if frames[k] else float("nan") for k in METRICS}


def evaluate_model(model, clips: list[MultiViewClip], device=None) -> dict:
    """`evaluate_lifter` for a bare network (wrapped as a Lifter on `device`, default the best one)."""
    from mvcapture.lifter import Lifter

    return evaluate_lifter(Lifter(model, device=device), clips)


def run_eval(train_dir, test_dir, model: str | None = None, variants=EVAL_VARIANTS, epochs: int = 30,
             lambda_con: float | None = None, seed: int = 0, batch_size: int = 8,
             emit=lambda variant, event: None, train_overrides: dict | None = None,
             out=None, resume: bool = False) -> dict:
    """`mvcapture eval`: fine-tune one model per variant on `train_dir`, evaluate each on `test_dir`.

    Every variant's and every clip's requirements are checked before any training starts. With `out`,
    results.json is written after each variant (a run killed late keeps what it finished); `resume`
    continues such a file: its finished variants are kept and skipped, when it was made with the same
    settings. `train_overrides` are further TrainConfig fields for every fine-tune (e.g. lr, stride; used
    by `mvcapture experiment`). Returns the results.json payload of FORMATS.md.
    """
    import copy
    import time
    from pathlib import Path

    from mvcapture.io.atomic import atomic_write_json
    from mvcapture.io.clip import load_clip, load_dataset
    from mvcapture.lifter import Lifter, load_lifter, select_device
    from mvcapture.train.data import check_requirements, clip_files, split_tail
    from mvcapture.train.finetune import TrainConfig, fit, seed_everything

    unknown = [v for v in variants if v not in EVAL_VARIANTS]
    if unknown:
        raise MvcaptureError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(EVAL_VARIANTS)}")
    test_files = sorted(Path(test_dir).glob("*.npz"))
    test_clips = load_dataset(test_dir, min_views=1)
    for clip, path in zip(test_clips, test_files):
        if clip.gt3d is None:
            raise MvcaptureError(f"{path}: test clip has no key 'gt3d'; evaluation needs 3D ground truth "
                                 f"(float32 (V, T, 17, 3) metres)")
        clip.focal_px(str(path))  # the metres of every prediction come through it: fail now, not after training
    trained = [v for v in variants if v != "baseline"]
    train_files = clip_files([train_dir]) if trained else []
    train_clips = [load_clip(f, min_views=2) for f in train_files]
    check_requirements(trained, train_clips, train_files)
    model_name = model or "default"
    base = load_lifter(model_name)
    device = select_device()
    settings = {"model": model_name, "epochs": epochs, "lambda_con": lambda_con, "seed": seed,
                "batch_size": batch_size, "train_overrides": dict(train_overrides or {}),
                "train_clips": [Path(f).name for f in train_files], "test_clips": [p.name for p in test_files]}
    common = TrainConfig(variant=trained[0], epochs=epochs, seed=seed, batch_size=batch_size,
                         **(train_overrides or {})) if trained else None
    if common is not None:  # clips too short for training and validation windows: fail before any training
        split_tail(train_clips, common.val_fraction, common.window or int(base.model.maxlen))
    results = _resumed(out, settings) if resume else {}
    payload = {}
    for variant in variants:
        if variant in results:
            emit(variant, {"event": "skipped", "reason": "finished in the resumed results"})
            continue
        t0 = time.perf_counter()
        if variant == "baseline":
            lifter, entry = base, {"epochs": 0}
        else:
            config = TrainConfig(variant=variant, epochs=epochs, seed=seed, batch_size=batch_size,
                                 **(train_overrides or {}),
                                 **({"lambda_con": lambda_con} if lambda_con is not None and "con" in variant else {}))
            net = copy.deepcopy(base.model)
            seed_everything(seed)
            window = config.window or int(net.maxlen)
            train, val = split_tail(train_clips, config.val_fraction, window)
            result = fit(net, train, val, config, emit=lambda event, v=variant: emit(v, event), device=device)
            lifter = Lifter(net, device=device)
            entry = {"epochs": epochs, "best_epoch": result.best_epoch, "stopped": result.status,
                     "lambda_con": config.lambda_con if "con" in variant else None}
        train_seconds = time.perf_counter() - t0
        metrics = evaluate_lifter(lifter, test_clips)
        results[variant] = {**metrics, "epochs": entry.pop("epochs"),
                            "train_seconds": round(train_seconds if variant != "baseline" else 0.0, 2), **entry}
        payload = _payload(results, variants, settings, train_clips, test_clips, device)
        if out is not None:
            atomic_write_json(Path(out), payload)
        emit(variant, {"event": "evaluated", **results[variant]})
    return payload or _payload(results, variants, settings, train_clips, test_clips, device)


def _payload(results: dict, variants, settings: dict, train_clips: list, test_clips: list, device) -> dict:
    """results.json (FORMATS.md) with the variants finished so far, in the requested order; `settings` and
    `unfinished` (extensions) let `--resume` continue it."""
    import torch

    return {"variants": {v: results[v] for v in variants if v in results}, "model": settings["model"],
            "n_train_clips": len(train_clips), "n_test_clips": len(test_clips),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
            "unfinished": [v for v in variants if v not in results], "settings": settings}


def _resumed(out, settings: dict) -> dict:
    """The finished variants of an earlier run's results file, when it was made with the same settings."""
    import json
    from pathlib import Path

    if out is None or not Path(out).is_file():
        return {}
    try:
        earlier = json.loads(Path(out).read_text(encoding="utf-8"))
        done = dict(earlier["variants"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MvcaptureError(f"{out}: cannot resume from this results file ({exc}); remove it or drop --resume")
    if earlier.get("settings") != json.loads(json.dumps(settings)):
        raise MvcaptureError(f"{out}: made with other settings (model, epochs, seed, batch size, λ_con or clips) "
                             f"than this run; remove it or drop --resume")
    log.info("resuming %s: %s finished", out, ", ".join(done) or "none")
    return done


def format_table(payload: dict) -> str:
    """The eval results as a plain-text table (mm)."""
    head = f"{'variant':<15}{'MPJPE':>9}{'PA-MPJPE':>10}{'N-MPJPE':>9}{'L_c':>8}{'epochs':>8}{'train s':>9}"
    lines = [head, "-" * len(head)]
    for name, r in payload["variants"].items():
        lines.append(f"{name:<15}{r['mpjpe']:>9.1f}{r['pa_mpjpe']:>10.1f}{r['n_mpjpe']:>9.1f}"
                     f"{r['consistency']:>8.1f}{r['epochs']:>8}{r['train_seconds']:>9.1f}")
    lines.append(f"model {payload['model']}, {payload['n_train_clips']} train / {payload['n_test_clips']} test "
                 f"clips, device {payload['device']} (mm; monocular, every view of every test clip)")
    return "\n".join(lines)
