"""Commands `mvcapture finetune`, `mvcapture train pretrain`, `mvcapture models ...` and `mvcapture eval`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from mvcapture.cli import add_json_option, write_json

# Provenance of the shipped mocap data (../shared/data/mocap/SOURCES.md), for the default lifter's card.
CMU_SOURCE = ("CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu), BVH conversion "
              "DragonForgedTheArtist/IClone-CMU-Mocap; synthetic camera views by `mvcapture data synth`")
CMU_LICENSE = ("CMU terms: free to use, modify and include in products and research, not to be resold as "
               "motion data; credit: data from mocap.cs.cmu.edu, database created with funding from "
               "NSF EIA-0196217")


def register(subparsers) -> None:
    _register_finetune(subparsers)
    _register_train(subparsers)
    _register_models(subparsers)
    _register_eval(subparsers)


# ------------------------------------------------------------------------------------------ finetune

def _add_training_options(p: argparse.ArgumentParser, epochs_help: str) -> None:
    p.add_argument("--epochs", type=int, default=None, help=epochs_help)
    p.add_argument("--batch-size", type=int, default=8, help="windows per step, all processes together")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same weights)")
    p.add_argument("--nproc", type=int, default=1,
                   help="processes under torchrun (one per GPU; gloo on CPU)")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="stop after this many minutes of training and keep the best epoch (the last, partial "
                        "epoch validated too; --epochs still caps the run); a resumed job goes on with the time "
                        "already used")


def _time_budget(args) -> dict:
    """The TrainConfig field for --time-budget (minutes), or nothing."""
    from mvcapture.errors import MvcaptureError

    if args.time_budget is None:
        return {}
    if not (math.isfinite(args.time_budget) and args.time_budget > 0):
        raise MvcaptureError(f"--time-budget takes minutes > 0, got {args.time_budget}")
    return {"time_budget_s": 60.0 * args.time_budget}


def _register_finetune(subparsers) -> None:
    from mvcapture.train.variants import VARIANTS

    p = subparsers.add_parser("finetune", help="fine-tune the lifter on multi-view clips (new model version)")
    p.add_argument("clips", nargs="*", type=Path, metavar="CLIPS_OR_DIRS",
                   help="multi-view clips (.npz) or folders of them")
    p.add_argument("--variant", choices=list(VARIANTS), default="l2d_con",
                   help="losses: l2d reprojection only, l2d_con + sequence consistency (default), "
                        "l2d_con_frame + per-frame consistency (moving cameras), l3d / l3d_con need gt3d, l3d_stereo: the two views' own triangulated 3D as pseudo-labels")
    p.add_argument("--lambda-con", type=float, default=None,
                   help="consistency weight (default 0.3 with 2D, 0.2 with 3D supervision)")
    p.add_argument("--model", default=None, help="lifter to start from: version name or weights path "
                   "(default: the active model)")
    p.add_argument("--config-for-tests", default=None, metavar="CONFIG",
                   help="start from an untrained network of this config instead (tests, smoke runs)")
    p.add_argument("--activate", action="store_true", help="make the new version the active model")
    p.add_argument("--held-out", type=Path, nargs="+", default=[], metavar="CLIP_OR_DIR",
                   help="sessions (clips or folders) never trained on: their consistency before and after is "
                        "reported when the job ends")
    p.add_argument("--resume", type=Path, default=None, metavar="JOB_DIR",
                   help="continue a cancelled or crashed job from its last checkpoint")
    _add_training_options(p, "training epochs (default: the paper's 30, and more on a short recording so that "
                             "training runs at least 100 steps)")
    add_json_option(p)
    p.set_defaults(func=_finetune)


def _finetune(args) -> int:
    from mvcapture.errors import MvcaptureError
    from mvcapture.train.jobs import JobSpec, resume_job, start_job

    if args.resume is not None:
        job = resume_job(args.resume)
    else:
        if not args.clips:
            raise MvcaptureError("give the clips (or folders of clips) to fine-tune on")
        from mvcapture.train.finetune import auto_epochs

        train = {"variant": args.variant, **auto_epochs(args.epochs), "batch_size": args.batch_size,
                 "seed": args.seed, **_time_budget(args)}
        if args.lambda_con is not None:
            train["lambda_con"] = args.lambda_con
        job = start_job(JobSpec(clips=[str(c) for c in args.clips], train=train, model=args.model,
                                config=args.config_for_tests, activate=args.activate, nproc=args.nproc,
                                held_out=[str(c) for c in args.held_out]))
    return _follow(job, args.json, "fine-tune", "mvcapture finetune --resume")


def format_held_out(event: dict) -> str:
    """The `held_out` event as lines: each metric before → after on the sessions never trained on."""
    lines = [f"held-out sessions ({len(event['clips'])}, {event['windows']} windows), before → after:"]
    for name, before in event["before"].items():
        after = event["after"].get(name)
        if after is not None:
            lines.append(f"  {name:16s} {before:10.4g} → {after:10.4g}")
    return "\n".join(lines)


def bar_total(step_event: dict) -> int:
    """The steps a run is expected to take, from a `step` event: all its epochs' steps, or under a time budget
    the steps at the current pace until the budget is spent, if fewer."""
    total = int(step_event["total_steps"])
    budget, used = float(step_event.get("time_budget_s") or 0.0), float(step_event.get("train_s") or 0.0)
    if budget > 0 and used > 0:
        total = min(total, max(int(step_event["global_step"]), round(step_event["global_step"] * budget / used)))
    return total


def _follow(job, json_path, what: str, resume_hint: str) -> int:
    """Show a job's progress as a tqdm bar; Ctrl+C cancels it cleanly (checkpoint kept)."""
    from tqdm import tqdm

    bar = tqdm(total=None, unit="step", desc=what, dynamic_ncols=True)
    history = []
    held_out = {}

    def show(event: dict) -> None:
        kind = event.get("event")
        if kind == "held_out":
            held_out.update(event)
            bar.write(format_held_out(event))
        if kind == "step":
            bar.total = bar_total(event)
            bar.n = event["global_step"]
            bar.set_postfix(epoch=f"{event['epoch']}/{event['epochs']}", loss=f"{event['losses']['total']:.4f}",
                            refresh=False)
            bar.refresh()
        elif kind == "epoch":
            history.append(event)
            val = event["validation"]
            extra = f", MPJPE {val['mpjpe_mm']:.1f} mm" if "mpjpe_mm" in val else ""
            bar.write(f"epoch {event['epoch']}/{event['epochs']}: train loss {event['train'].get('total', 0):.4f}, "
                      f"val consistency {val['consistency_mm']:.1f} mm{extra}" + (" (best)" if event.get("best") else ""))
        elif kind == "collapse":
            bar.write(f"stopped: {event['message']}")
        elif kind == "budget":
            bar.write(f"time budget spent ({event['seconds'] / 60:.1f} of {event['budget_s'] / 60:.1f} min, "
                      f"{event['global_step']} steps): validating the last epoch and stopping")
        elif kind == "start" and event.get("validation_set"):
            bar.write(f"validation on {event['validation_set']}")
        elif kind == "threads":
            bar.write(f"live capture {'runs: training yields' if event['live'] else 'stopped'} "
                      f"({event['threads']} thread(s){', lower priority' if event['niced'] else ''})")

    try:
        while True:
            try:
                for event in job.events():
                    show(event)
                break
            except KeyboardInterrupt:  # the worker runs in its own session: ask it to stop cleanly
                bar.write("cancelling: the job writes a checkpoint and stops after this step ...")
                job.cancel()
    finally:
        bar.close()
    final = job.result()
    payload = {"job": str(job.job_dir), "status": final.get("event"), "result": final, "epochs": history}
    if held_out:
        payload["held_out"] = {k: v for k, v in held_out.items() if k not in ("event", "time")}
    write_json(json_path, payload)
    status = final.get("event")
    if status == "done":
        where = f"version {final['version']}" if "version" in final else final.get("weights")
        print(f"saved {where} ({final.get('weights')})" + (", now active" if final.get("activated") else ""))
        return 0
    if status == "cancelled":
        print(f"cancelled; resume with: {resume_hint} {job.job_dir}", file=sys.stderr)
        return 130
    print(f"error: {final.get('error', 'training failed')} (log: {job.job_dir / 'worker.log'})", file=sys.stderr)
    return 1


# -------------------------------------------------------------------------------------------- train

def _register_train(subparsers) -> None:
    p = subparsers.add_parser("train", help="train lifters from scratch")
    sub = p.add_subparsers(dest="train_command", metavar="WHAT", required=True)
    pre = sub.add_parser("pretrain", help="3D-supervised pretraining (L_3D) on synthetic multi-view clips")
    pre.add_argument("--data", type=Path, default=None,
                     help="folder of clips with gt3d + focal_px (required unless --resume)")
    pre.add_argument("--config", default="small", help="network config name (default small)")
    pre.add_argument("--out", type=Path, default=None,
                     help="weights file to write, model card beside it (resources/lifter/default.pt for the "
                          "shipped lifter); default: a new version in the model store")
    pre.add_argument("--lr", type=float, default=5e-4, help="learning rate (default 5e-4, from scratch)")
    pre.add_argument("--model", default=None, metavar="SPEC",
                     help="continue from these weights (a further stage on new data) instead of a fresh "
                          "--config network")
    pre.add_argument("--stride", type=int, default=None,
                     help="frames between window starts (default a third of the window; the window length "
                          "for no overlap, as the shipped lifter used)")
    pre.add_argument("--lr-schedule", choices=["exp", "cosine"], default="exp",
                     help="exp: × 0.99 per epoch (default); cosine: down to 2 %% of --lr over the run (its "
                          "epochs, or its --time-budget)")
    pre.add_argument("--warmup-steps", type=int, default=None,
                     help="steps over which the learning rate ramps up linearly (default 10)")
    pre.add_argument("--epoch-steps", type=int, default=None, metavar="N",
                     help="N random batches per epoch instead of one pass over the windows: validation and "
                          "model selection every N steps on a large data set")
    pre.add_argument("--redraw-noise", action="store_true",
                     help="new detector noise for every training window each epoch, drawn from the clips' exact "
                          "projections with the measured statistics in resources/noise (clips from `data synth`)")
    pre.add_argument("--data-source", default=CMU_SOURCE, help="provenance of the clips for the model card")
    pre.add_argument("--data-license", default=CMU_LICENSE, help="their license terms for the model card")
    pre.add_argument("--resume", type=Path, default=None, metavar="JOB_DIR",
                     help="continue a cancelled or crashed pretraining job")
    _add_training_options(pre, "training epochs (default 60)")
    pre.set_defaults(epochs=60, batch_size=16)
    add_json_option(pre)
    pre.set_defaults(func=_pretrain)


def _pretrain(args) -> int:
    from mvcapture.errors import MvcaptureError
    from mvcapture.train.jobs import JobSpec, resume_job, start_job

    if args.resume is not None:
        job = resume_job(args.resume)
    else:
        if args.data is None:
            raise MvcaptureError("pretraining needs --data DIR (clips with gt3d, e.g. from `mvcapture data synth`)")
        train = {"variant": "l3d", "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                 "lr": args.lr, "weight_decay": 0.01, "flip": True}
        if args.stride is not None:
            train["stride"] = args.stride
        if args.lr_schedule != "exp":
            train["lr_schedule"] = args.lr_schedule
        if args.warmup_steps is not None:
            train["warmup_steps"] = args.warmup_steps
        if args.epoch_steps is not None:
            train["epoch_steps"] = args.epoch_steps
        train.update(_time_budget(args))
        if args.redraw_noise:
            train["redraw_noise"] = True
        shipped = args.out is not None and args.out.name == "default.pt"
        name = f"mvcapture default lifter ({args.config})" if shipped else f"pretrained {args.config} lifter"
        job = start_job(JobSpec(kind="pretrain", data=str(args.data), out=args.out and str(args.out),
                                config=None if args.model else args.config, model=args.model, train=train, nproc=args.nproc, name=name,
                                training_data=[{"source": args.data_source, "license": args.data_license,
                                                "clips_folder": str(args.data)}],
                                checkpoint_every_s=300.0))
    return _follow(job, args.json, "pretrain", "mvcapture train pretrain --resume")


# ------------------------------------------------------------------------------------------- models

def _register_models(subparsers) -> None:
    p = subparsers.add_parser("models", help="list, inspect, activate and export lifter versions")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="all versions (* = active)")
    add_json_option(ls)
    ls.set_defaults(func=_models_list)
    show = sub.add_parser("show", help="a version's model card")
    show.add_argument("version", nargs="?", default="active")
    add_json_option(show)
    show.set_defaults(func=_models_show)
    act = sub.add_parser("activate", help="use this version for lifting (instant; nothing is deleted)")
    act.add_argument("version")
    act.set_defaults(func=_models_activate)
    exp = sub.add_parser("export", help="copy a version's weights and card to a file or folder")
    exp.add_argument("version")
    exp.add_argument("dest", type=Path)
    exp.set_defaults(func=_models_export)


def _models_list(args) -> int:
    from mvcapture.train import store

    active = store.active_version()
    rows = []
    for v in store.list_versions():
        card = v.card
        rows.append({"version": v.version, "active": v.version == active, "name": card.get("name"),
                     "parent_version": card.get("parent_version"), "date": card.get("date"),
                     "variant": (card.get("losses") or {}).get("variant"), "weights": str(v.weights)})
    for r in rows:
        print(f"{'*' if r['active'] else ' '} {r['version']:<9} {str(r['date'] or ''):<26} "
              f"{str(r['variant'] or ''):<14} parent {str(r['parent_version'] or '-'):<9} {r['name'] or ''}")
    if not rows:
        print("no model versions yet (the shipped default lifter is missing)")
    write_json(args.json, {"active": active, "versions": rows})
    return 0


def _models_show(args) -> int:
    import json

    from mvcapture.train import store

    v = store.get_version(args.version)
    payload = {"version": v.version, "weights": str(v.weights), "active": v.version == store.active_version(),
               "card": v.card}
    print(json.dumps(payload, indent=2))
    write_json(args.json, payload)
    return 0


def _models_activate(args) -> int:
    from mvcapture.train import store

    v = store.activate(args.version)
    print(f"active model: {v.version}")
    return 0


def _models_export(args) -> int:
    from mvcapture.train import store

    dest = store.export_version(args.version, args.dest)
    print(f"exported {args.version} to {dest} (+ {dest.with_suffix('.json').name})")
    return 0


# --------------------------------------------------------------------------------------------- eval

def _register_eval(subparsers) -> None:
    from mvcapture.train.variants import EVAL_VARIANTS

    p = subparsers.add_parser("eval", help="fine-tune per variant on --train, evaluate monocularly on --test")
    p.add_argument("--train", type=Path, required=True, help="folder of multi-view training clips")
    p.add_argument("--test", type=Path, required=True, help="folder of test clips with gt3d")
    p.add_argument("--out", type=Path, required=True, help="results.json to write")
    p.add_argument("--model", default=None, help="starting lifter (default: the shipped one)")
    p.add_argument("--variants", nargs="+", default=list(EVAL_VARIANTS), choices=list(EVAL_VARIANTS))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lambda-con", type=float, default=None, help="consistency weight for the *_con variants")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8, help="windows per training step")
    p.add_argument("--resume", action="store_true",
                   help="continue the --out file of an earlier run with the same settings: its finished "
                        "variants are kept, the rest are run (results are written after each variant)")
    add_json_option(p)
    p.set_defaults(func=_eval)


def _eval(args) -> int:
    from tqdm import tqdm

    from mvcapture.io.atomic import atomic_write_json
    from mvcapture.train.evaluate import format_table, run_eval

    bars: dict[str, tqdm] = {}

    def emit(variant, event):
        if event.get("event") == "step":
            bar = bars.get(variant)
            if bar is None:
                bar = bars[variant] = tqdm(total=event["total_steps"], unit="step", desc=variant, leave=False)
            bar.n = event["global_step"]
            bar.refresh()
        elif event.get("event") == "evaluated" and variant in bars:
            bars.pop(variant).close()
        elif event.get("event") == "skipped":
            tqdm.write(f"{variant}: kept from {args.out} (--resume)")

    payload = run_eval(args.train, args.test, model=args.model, variants=args.variants, epochs=args.epochs,
                       lambda_con=args.lambda_con, seed=args.seed, batch_size=args.batch_size, emit=emit,
                       out=args.out, resume=args.resume)
    atomic_write_json(args.out, payload)
    write_json(args.json, payload)
    print(format_table(payload))
    return 0
