"""`mvcapture experiment`: does consistency fine-tuning help? (the paper's Table 1, in small).

One command builds everything from the shipped CMU motion capture (../shared/data/mocap/cmu):

1. source: synthetic 2-view clips (several camera rigs) of the source subjects (`--split`, SPLITS:
   "walks" = the walks of 003 and 007; "dance" = everything of 002, 003 and 007); a lifter of the given
   config (default `tiny`) is pretrained on them with L_3D (`train.finetune.fit`, the pretraining
   settings of `mvcapture train pretrain`).
2. target: other subjects AND actions ("walks": 002 run, jump, punch, bend, swordplay, wash and 005
   dance; "dance": 005 dance), two synthetic phone views `angle` degrees apart (default 90°) with the
   detector noise model. Split by clip into target-train clips (2D only is used by the l2d* variants)
   and held-out target-test clips (the split's test clips, always filmed at 90°).
3. `train.evaluate.run_eval` (the `mvcapture eval` machinery, FORMATS.md) from the source model:
   baseline, l2d, l2d_con, l2d_con_frame, l3d, l3d_con, evaluated monocularly on every view of every
   target-test clip.
4. a λ_con sweep of l2d_con and a sweep of the angle between the two target-train cameras (test views
   unchanged).

Writes `results.json` and `results.md` (the tables) into the output folder; on the way, each evaluation's
results after every variant (`eval_*.json`) and the source lifter (`source_lifter.pt`, `source.json`), so a
run killed late keeps what it finished and `--resume` continues it.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mvcapture.cli import add_json_option, write_json
from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)

SOURCE_SUBJECTS = ("003", "007")                  # walking only
# Target clips (SOURCES.md): other subjects, other actions. 002_01/02 and 005_01 are walks: left out.
TARGET_CLIPS = ("002_03", "002_04", "002_05", "002_06", "002_07", "002_08", "002_09", "002_10",
                *(f"005_{i:02d}" for i in range(2, 21)))
# Held out for evaluation, by clip: one swordplay clip of 002 and four dance clips of 005, so every
# test action also occurs (in other clips) in the target-train data.
TARGET_TEST_CLIPS = ("002_09", "005_04", "005_09", "005_14", "005_19")


@dataclass(frozen=True)
class Split:
    """Which CMU clips are source (3D pretraining), target-train (2D only) and target-test."""

    name: str
    source_subjects: tuple
    target_clips: tuple
    test_clips: tuple
    description: str


SPLITS = {
    # a walking-only source: the target motions are all new to the lifter
    "walks": Split("walks", SOURCE_SUBJECTS, TARGET_CLIPS, TARGET_TEST_CLIPS,
                   "source: walks of subjects 003, 007; target: 002 actions and 005 dance"),
    # a broader source (walks, run, jump, punch, bend, swordplay, wash of three subjects); the target is
    # a new subject doing a new sport: 005's dance (its walk 005_01 left out)
    "dance": Split("dance", ("002", "003", "007"), tuple(f"005_{i:02d}" for i in range(2, 21)),
                   ("005_04", "005_09", "005_14", "005_19"),
                   "source: all clips of subjects 002, 003, 007; target: subject 005's dance"),
}
VARIANT_ORDER = ("baseline", "l2d", "l2d_con", "l2d_con_frame", "l3d", "l3d_con")  # the paper's table
# variants the table may add (`--variants`): the stereo pseudo-labels need a confident two-view geometry per
# clip, which the short clips of --quick do not give
EXTRA_VARIANTS = ("l3d_stereo",)
LAMBDAS = (0.1, 0.3, 0.6, 1.0)
ANGLES = (15.0, 45.0, 90.0, 135.0)
TEST_ANGLE = 90.0


@dataclass
class ExperimentConfig:
    """Settings of one experiment run (defaults: the README's run, ~20 CPU minutes, 1 thread)."""

    bvh_dir: str = ""
    split: str = "dance"
    config: str = "tiny"
    # a lifter to start from instead of pretraining one (a weights file, model version or MotionBERT
    # checkpoint that never saw the target subjects, e.g. one trained on Human3.6M); "" = pretrain `config`
    source_model: str = ""
    pretrain_epochs: int = 40
    pretrain_lr: float = 1e-3
    pretrain_batch_size: int = 8
    source_rigs: int = 4
    epochs: int = 30
    lr: float = 5e-4                # the paper's 2e-4 barely moves the tiny lifter in ~400 steps
    batch_size: int = 8
    stride: int | None = None       # fine-tuning window stride; None → the window (no overlap)
    warmup_steps: int = 10          # lr warm-up steps (pretraining and fine-tuning; the app's default)
    flip: bool = True               # fine-tuning flip augmentation (the app's default; evaluation lifts
                                    # without flip TTA)
    target_rigs: int = 1
    angle: float = 90.0             # between the two target-train cameras in the main table
    lambdas: tuple = LAMBDAS
    angles: tuple = ANGLES
    fps: float = 30.0
    noise: float = 1.0
    seed: int = 0
    max_frames: int | None = None   # cut every motion to this many frames (--quick)
    max_files: int | None = None    # at most this many BVH files per group (--quick)
    variants: tuple = VARIANT_ORDER

    @classmethod
    def quick(cls, **kw) -> "ExperimentConfig":
        """A tiny end-to-end version (for the test): few short clips, one epoch everywhere."""
        base = dict(pretrain_epochs=1, epochs=1, source_rigs=1, max_frames=60, max_files=2,
                    lambdas=(0.3, 1.0), angles=(45.0, 90.0))
        base.update(kw)
        return cls(**base)


def default_bvh_dir() -> Path:
    """`<repo>/../shared/data/mocap/cmu` (the shipped CMU clips)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mocap" / "cmu"


# ----------------------------------------------------------------------------------------------- data

def _bvh_files(cfg: ExperimentConfig) -> tuple[list[Path], list[Path], list[Path]]:
    root = Path(cfg.bvh_dir) if cfg.bvh_dir else default_bvh_dir()
    if not root.is_dir():
        raise MvcaptureError(f"motion capture folder {root} not found; pass --bvh DIR (the CMU .bvh files)")
    files = {p.stem: p for p in sorted(root.rglob("*.bvh"))}
    split = get_split(cfg.split)
    source = [p for s, p in files.items() if s.split("_")[0] in split.source_subjects]
    target_train = [files[s] for s in split.target_clips if s in files and s not in split.test_clips]
    target_test = [files[s] for s in split.test_clips if s in files]
    if cfg.max_files:
        source, target_train, target_test = (g[:cfg.max_files] for g in (source, target_train, target_test))
    missing = [name for name, g in (("source", source), ("target-train", target_train),
                                    ("target-test", target_test)) if not g]
    if missing:
        raise MvcaptureError(f"{root}: no BVH files for the {', '.join(missing)} clips (need CMU subjects "
                             f"{', '.join(split.source_subjects)} and "
                             f"{', '.join(sorted({c[:3] for c in split.target_clips}))})")
    return source, target_train, target_test


def get_split(name: str) -> Split:
    if name not in SPLITS:
        raise MvcaptureError(f"unknown split {name!r}; choose from {', '.join(SPLITS)}")
    return SPLITS[name]


def _write_clips(files: list[Path], out: Path, cfg: ExperimentConfig, rigs: int, angle: float,
                 cache: dict) -> dict:
    from mvcapture.data.synth import NoiseModel, synthesize_clip
    from mvcapture.io.bvh import bvh_to_h36m

    out.mkdir(parents=True, exist_ok=True)
    frames = 0
    for path in files:
        if path not in cache:
            pose, fps = bvh_to_h36m(path, fps=cfg.fps)
            cache[path] = (pose[:cfg.max_frames] if cfg.max_frames else pose, fps)
        pose, fps = cache[path]
        for rig in range(rigs):
            clip = synthesize_clip(pose, fps, name=f"{path.stem}_r{rig}", seed=cfg.seed, views=2,
                                   angle_deg=angle, noise=NoiseModel().scaled(cfg.noise))
            clip.save(out / f"{clip.name}.npz")
            frames += clip.num_frames
    return {"dir": str(out), "clips": len(files) * rigs, "frames": frames,
            "files": [p.stem for p in files], "angle_deg": angle, "rigs": rigs}


def build_data(cfg: ExperimentConfig, data_dir: Path) -> dict:
    """Synthesize source, target-train (one folder per angle) and target-test clips under `data_dir`."""
    source, target_train, target_test = _bvh_files(cfg)
    cache: dict = {}
    info = {"source": _write_clips(source, data_dir / "source", cfg, cfg.source_rigs, 90.0, cache),
            "target_test": _write_clips(target_test, data_dir / "target_test", cfg, 1, TEST_ANGLE, cache),
            "target_train": {}}
    for angle in sorted({cfg.angle, *cfg.angles}):
        info["target_train"][_angle_key(angle)] = _write_clips(
            target_train, data_dir / f"target_train_{_angle_key(angle)}", cfg, cfg.target_rigs, angle, cache)
    return info


def _angle_key(angle: float) -> str:
    return f"{angle:g}"


# ------------------------------------------------------------------------------------------ pretrain

def pretrain_source(cfg: ExperimentConfig, source_dir: Path, out: Path, emit=lambda event: None) -> dict:
    """Pretrain a `cfg.config` lifter with L_3D on the source clips (tail of each clip validates)."""
    from mvcapture.io.clip import load_dataset
    from mvcapture.lifter import create_lifter, save_lifter
    from mvcapture.train.data import split_tail
    from mvcapture.train.finetune import TrainConfig, fit, seed_everything

    seed_everything(cfg.seed)
    net = create_lifter(cfg.config)
    train_cfg = TrainConfig(variant="l3d", epochs=cfg.pretrain_epochs, lr=cfg.pretrain_lr, weight_decay=0.01,
                            warmup_steps=cfg.warmup_steps, flip=True, batch_size=cfg.pretrain_batch_size,
                            seed=cfg.seed)
    clips = load_dataset(source_dir, min_views=2)
    train, val = split_tail(clips, train_cfg.val_fraction, int(net.maxlen))
    t0 = time.perf_counter()
    result = fit(net, train, val, train_cfg, emit=emit, device="cpu")
    seconds = time.perf_counter() - t0
    split = get_split(cfg.split)
    card = {"name": f"experiment source lifter ({cfg.config}, split {split.name}: subjects "
                    f"{', '.join(split.source_subjects)})",
            "parent_version": None,
            "training_data": [{"source": f"CMU mocap subjects {', '.join(split.source_subjects)}, synthetic "
                                         "2-view clips", "license": "CMU terms (mocap.cs.cmu.edu)"}],
            "losses": {"variant": "l3d", "weights": train_cfg.loss_weights()},
            "epochs": result.best_epoch, "metrics": {"eval_set": "source validation tails", **result.best_metrics}}
    save_lifter(net, out, card)
    return {"weights": str(out), "epochs": cfg.pretrain_epochs, "best_epoch": result.best_epoch,
            "status": result.status, "train_seconds": round(seconds, 2),
            "validation": result.best_metrics, "train_windows_clips": len(train)}


def given_source(spec: str) -> dict:
    """The `source` entry of the results for a lifter given with --source-model (not pretrained here)."""
    from mvcapture.lifter import load_lifter

    lifter = load_lifter(spec, device="cpu")  # fails early, with the loader's message, on a bad spec
    return {"weights": str(spec), "given": True, "name": lifter.name, "config": lifter.config_name, "epochs": 0,
            "best_epoch": None, "status": "given", "train_seconds": 0.0, "validation": {}}


# ---------------------------------------------------------------------------------------- experiment

def run_experiment(cfg: ExperimentConfig, out: Path, progress=lambda msg: None, emit=lambda v, e: None,
                   resume: bool = False) -> dict:
    """Run everything; returns (and writes to `out/results.json`) the payload.

    `resume`: keep the source lifter and the finished variants of an earlier run into `out` (same settings).
    """
    import torch

    from mvcapture.bench.common import hardware
    from mvcapture.io.atomic import atomic_write_json, atomic_write_text
    from mvcapture.train.evaluate import run_eval

    out = Path(out)
    split = get_split(cfg.split)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    progress("synthesizing source and target clips ...")
    data = build_data(cfg, out / "data")
    source_json = out / "source.json"
    if cfg.source_model:
        source = given_source(cfg.source_model)
        progress(f"source lifter: {source['weights']} (given; no pretraining)")
    elif resume and source_json.is_file() and (out / "source_lifter.pt").is_file():
        source = json.loads(source_json.read_text(encoding="utf-8"))
        if source.get("setup") != _source_setup(cfg):
            raise MvcaptureError(f"{source_json}: the source lifter was pretrained with other settings; "
                                 f"remove {out} or drop --resume")
        progress(f"source lifter: {source['weights']} (kept from the resumed run)")
    else:
        progress(f"pretraining the source lifter ({cfg.config}, {cfg.pretrain_epochs} epochs) ...")
        source = pretrain_source(cfg, Path(data["source"]["dir"]), out / "source_lifter.pt",
                                 emit=lambda e: emit("pretrain", e))
        atomic_write_json(source_json, {**source, "setup": _source_setup(cfg)})
    source.pop("setup", None)
    overrides = {"lr": cfg.lr, "stride": cfg.stride or None, "warmup_steps": cfg.warmup_steps, "flip": cfg.flip}
    if overrides["stride"] is None:
        from mvcapture.lifter import load_lifter

        overrides["stride"] = int(load_lifter(source["weights"], device="cpu").model.maxlen)
    test_dir = data["target_test"]["dir"]
    common = dict(model=source["weights"], epochs=cfg.epochs, seed=cfg.seed, batch_size=cfg.batch_size,
                  train_overrides=overrides)

    def train_dir(angle):
        return data["target_train"][_angle_key(angle)]["dir"]

    progress(f"variants {', '.join(cfg.variants)} ({cfg.epochs} epochs each) ...")
    main = run_eval(train_dir(cfg.angle), test_dir, variants=cfg.variants, emit=emit, out=out / "eval_variants.json",
                    resume=resume, **common)
    lambda_sweep = {}
    for lam in cfg.lambdas:
        default_lam = main["variants"].get("l2d_con", {}).get("lambda_con")
        if default_lam is not None and abs(lam - default_lam) < 1e-12:
            lambda_sweep[f"{lam:g}"] = main["variants"]["l2d_con"]
            continue
        progress(f"λ_con sweep: l2d_con with λ_con = {lam:g} ...")
        r = run_eval(train_dir(cfg.angle), test_dir, variants=["l2d_con"], lambda_con=lam,
                     emit=lambda v, e, lam=lam: emit(f"l2d_con λ={lam:g}", e),
                     out=out / f"eval_lambda_{lam:g}.json", resume=resume, **common)
        lambda_sweep[f"{lam:g}"] = r["variants"]["l2d_con"]
    angle_sweep = {}
    for angle in cfg.angles:
        if abs(angle - cfg.angle) < 1e-9 and "l2d_con" in main["variants"]:
            angle_sweep[_angle_key(angle)] = main["variants"]["l2d_con"]
            continue
        progress(f"angle sweep: l2d_con, target-train cameras {angle:g}° apart ...")
        r = run_eval(train_dir(angle), test_dir, variants=["l2d_con"],
                     emit=lambda v, e, a=angle: emit(f"l2d_con {a:g}°", e),
                     out=out / f"eval_angle_{_angle_key(angle)}.json", resume=resume, **common)
        angle_sweep[_angle_key(angle)] = r["variants"]["l2d_con"]

    v = main["variants"]
    ratios = {}
    if "l2d" in v and "l2d_con" in v:
        ratios["l2d_con_over_l2d_mpjpe"] = v["l2d_con"]["mpjpe"] / v["l2d"]["mpjpe"]
    if "baseline" in v and "l2d_con" in v:
        ratios["l2d_con_over_baseline_mpjpe"] = v["l2d_con"]["mpjpe"] / v["baseline"]["mpjpe"]
    if "l2d" in v and "l3d" in v:
        # l3d trains on the 3D ground truth of the same clips: what the lifter can learn from them at all,
        # so l2d_con / l2d cannot be expected below this (the paper: 28.7 / 64.4 = 0.45)
        ratios["l3d_over_l2d_mpjpe"] = v["l3d"]["mpjpe"] / v["l2d"]["mpjpe"]
    ratios["paper_l2d_con_over_l2d_mpjpe"] = 36.2 / 64.4
    ratios["goal_max"] = 0.6
    payload = {
        "variants": v,
        "lambda_sweep": lambda_sweep,
        "angle_sweep": angle_sweep,
        "ratios": ratios,
        "source": source,
        "data": data,
        "setup": {**asdict(cfg), "bvh_dir": str(Path(cfg.bvh_dir) if cfg.bvh_dir else default_bvh_dir()),
                  "source_subjects": list(split.source_subjects), "target_test_clips": list(split.test_clips),
                  "split_description": split.description,
                  "test_angle_deg": TEST_ANGLE, "train_overrides": overrides,
                  "torch_threads": torch.get_num_threads()},
        "model": main["model"], "n_train_clips": main["n_train_clips"], "n_test_clips": main["n_test_clips"],
        "device": main["device"],
        "hardware": hardware(),
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
    }
    atomic_write_json(out / "results.json", json.loads(json.dumps(payload, default=_jsonable)))
    atomic_write_text(out / "results.md", format_markdown(payload))
    return payload


def _source_setup(cfg: ExperimentConfig) -> dict:
    """The settings that make the pretrained source lifter what it is (a resumed run must share them)."""
    keys = ("bvh_dir", "split", "config", "pretrain_epochs", "pretrain_lr", "pretrain_batch_size", "source_rigs",
            "warmup_steps", "fps", "noise", "seed", "max_frames", "max_files")
    return json.loads(json.dumps({k: getattr(cfg, k) for k in keys}))


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (Path, tuple)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    raise TypeError(type(obj).__name__)


def _row(name: str, r: dict) -> str:
    best = r.get("best_epoch")
    if r.get("stopped") == "collapsed":
        # stopped by a collapse guard; with no epoch kept, the numbers are the collapsed network's
        best = f"{best}, then collapsed" if best is not None else "collapsed in epoch 1, none kept"
    elif best is None:
        best = "-"
    return (f"| {name} | {r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | {r['n_mpjpe']:.1f} | {r['consistency']:.1f} "
            f"| {r['epochs']} | {best} | {r['train_seconds']:.0f} |")


_HEAD = ("| MPJPE | PA-MPJPE | N-MPJPE | L_c | epochs | best epoch | train s |\n"
         "|---|---|---|---|---|---|---|---|")


def format_markdown(payload: dict) -> str:
    """The three result tables (mm) as markdown."""
    s = payload["setup"]
    lines = [f"### Variants (target-train views {s['angle']:g}° apart; test views {s['test_angle_deg']:g}°)", "",
             "| variant " + _HEAD]
    for name, r in payload["variants"].items():
        label = name + (f" (λ_con {r['lambda_con']:g})" if r.get("lambda_con") is not None else "")
        lines.append(_row(label, r))
    ratios = payload["ratios"]
    lines.append("")
    if "l2d_con_over_l2d_mpjpe" in ratios:
        lines.append(f"l2d_con / l2d MPJPE = **{ratios['l2d_con_over_l2d_mpjpe']:.2f}** "
                     f"(paper 36.2 / 64.4 = 0.56; goal ≤ 0.6)")
    if "l2d_con_over_baseline_mpjpe" in ratios:
        lines.append(f"l2d_con / baseline MPJPE = **{ratios['l2d_con_over_baseline_mpjpe']:.2f}**")
    if "l3d_over_l2d_mpjpe" in ratios:
        lines.append(f"l3d / l2d MPJPE = {ratios['l3d_over_l2d_mpjpe']:.2f}: with 3D labels on the same clips "
                     f"(the bound for any 2D-only variant here; paper 28.7 / 64.4 = 0.45)")
    lines += ["", f"### λ_con sweep (l2d_con, views {s['angle']:g}° apart)", "", "| λ_con " + _HEAD]
    for lam, r in payload["lambda_sweep"].items():
        lines.append(_row(lam, r))
    lines += ["", "### Angle between the two target-train cameras (l2d_con, λ_con default; test views 90°)", "",
              "| angle " + _HEAD]
    for angle, r in payload["angle_sweep"].items():
        lines.append(_row(f"{angle}°", r))
    src = payload["source"]
    if src.get("given"):
        origin = f"Source lifter: given ({src['weights']}; not pretrained here, the source clips unused). "
    else:
        origin = (f"Source lifter: {s['config']} pretrained {src['epochs']} epochs with L_3D on CMU "
                  f"{', '.join(s['source_subjects'])} (best epoch {src['best_epoch']}, {src['train_seconds']:.0f} s). ")
    lines += ["", origin +
              f"{payload['n_train_clips']} target-train / {payload['n_test_clips']} target-test clips; "
              f"mm, monocular, every view of every test clip. Device {payload['device']}; "
              f"{payload['hardware'].get('cpu', platform.processor())}; wall {payload['wall_seconds']:.0f} s, "
              f"CPU {payload['cpu_seconds']:.0f} s.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- CLI

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment", help="does consistency fine-tuning help? source pretrain → target fine-tune → eval + sweeps",
        description="Reproduce the README experiment (the paper's Table 1 in small) with one command.")
    p.add_argument("--out", type=Path, default=Path("experiment_out"), help="output folder (default experiment_out)")
    p.add_argument("--bvh", type=Path, default=None, help="folder of the CMU .bvh files "
                   "(default <repo>/../shared/data/mocap/cmu)")
    p.add_argument("--config", default="tiny", help="lifter config (default tiny)")
    p.add_argument("--source-model", default="", metavar="SPEC",
                   help="start from this lifter instead of pretraining one (weights file, model version or "
                        "MotionBERT checkpoint that never saw the target subjects)")
    p.add_argument("--split", default="dance", choices=sorted(SPLITS),
                   help="; ".join(f"{k}: {v.description}" for k, v in SPLITS.items()) + " (default dance)")
    p.add_argument("--pretrain-epochs", type=int, default=None, help="source pretraining epochs (default 40)")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs per variant (default 30, the paper's)")
    p.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default 5e-4; the paper: 2e-4)")
    p.add_argument("--angle", type=float, default=90.0, help="degrees between the target-train cameras (default 90)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the app's training budget, mvcapture.threads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a tiny smoke version (short clips, 1 epoch)")
    p.add_argument("--variants", nargs="+", default=None, choices=VARIANT_ORDER + EXTRA_VARIANTS,
                   help="the table's variants (default the paper's: " + ", ".join(VARIANT_ORDER) + "; "
                        "l3d_stereo adds the two views' own 3D as pseudo-labels)")
    p.add_argument("--resume", action="store_true",
                   help="continue an earlier run into --out with the same settings: keep its source lifter and "
                        "finished variants (each is written as it finishes)")
    add_json_option(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from tqdm import tqdm

    from mvcapture import threads

    threads.apply("train", args.threads)
    kw = {"config": args.config, "split": args.split, "seed": args.seed, "angle": args.angle,
          "source_model": args.source_model,
          "bvh_dir": str(args.bvh) if args.bvh else ""}
    for key in ("pretrain_epochs", "epochs", "lr"):
        if getattr(args, key) is not None:
            kw[key] = getattr(args, key)
    if args.variants:
        kw["variants"] = tuple(args.variants)
    cfg = ExperimentConfig.quick(**kw) if args.quick else ExperimentConfig(**kw)
    bars: dict = {}

    def emit(name, event):
        kind = event.get("event")
        if kind == "step":
            bar = bars.get(name)
            if bar is None:
                bar = bars[name] = tqdm(total=event["total_steps"], unit="step", desc=name, leave=False)
            bar.n = event["global_step"]
            bar.refresh()
        elif kind == "epoch":
            val = event["validation"]
            log.info("%s epoch %s: %s", name, event["epoch"], json.dumps(val))
        elif kind in ("evaluated", "collapse") and name in bars:
            bars.pop(name).close()
            if kind == "evaluated":
                tqdm.write(f"{name}: MPJPE {event['mpjpe']:.1f} mm, PA {event['pa_mpjpe']:.1f}, "
                           f"L_c {event['consistency']:.1f} ({event['train_seconds']:.0f} s)")
        if kind == "collapse":
            tqdm.write(f"{name}: {event['message']}")

    def progress(msg):
        for bar in bars.values():
            bar.close()
        bars.clear()
        tqdm.write(msg)

    payload = run_experiment(cfg, args.out, progress=progress, emit=emit, resume=args.resume)
    for bar in bars.values():
        bar.close()
    write_json(args.json, json.loads(json.dumps(payload, default=_jsonable)))
    print(format_markdown(payload))
    print(f"results: {Path(args.out) / 'results.json'}, {Path(args.out) / 'results.md'}")
    return 0
