"""`mvcapture process SESSION` (the whole pipeline, with a progress bar per stage) and `mvcapture demo`."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import sys
from pathlib import Path

from mvcapture.cli import add_json_option, write_json
from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)


def _add_processing_options(parser: argparse.ArgumentParser) -> None:
    from mvcapture.detect.models import MODES
    from mvcapture.pipeline.process import PIPELINE_STAGES

    parser.add_argument("--model", default=None, metavar="SPEC",
                        help="lifter: 'default', a weights file, a model directory or a model version "
                             "(default: the active model)")
    parser.add_argument("--mode", choices=MODES, default="balanced", help="2D detector mode (default: balanced)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="folder with the detector's ONNX models, searched before rtmlib's cache")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--height", type=float, default=None, metavar="M",
                        help="athlete height in metres (default: the session's, else 1.75)")
    parser.add_argument("--force", action="store_true", help="redo every stage, detection included")
    parser.add_argument("--from", dest="from_stage", choices=PIPELINE_STAGES, default=None,
                        help="redo this stage and the ones after it")
    add_json_option(parser)


def register(subparsers) -> None:
    proc = subparsers.add_parser(
        "process", help="process a session: 2D detection, time alignment, 3D per view, consistency, camera angle",
        description="Run the processing pipeline on a session. Stages whose results are up to date are skipped "
                    "(--from STAGE or --force redo them). Results go into the session folder.")
    proc.add_argument("session", help="session id, name or folder")
    _add_processing_options(proc)
    proc.set_defaults(func=run_process)

    demo = subparsers.add_parser(
        "demo", help="the demo session (two real cameras ~100° apart), processed and opened in the app",
        description="Create (once) and process the demo session built from the shipped two-camera recording, "
                    "then open it in the app; --no-gui writes the results and a rendered image to --out.")
    demo.add_argument("--no-gui", action="store_true", help="do not open the app; write results to --out")
    demo.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="with --no-gui: folder for analysis.npz, metrics.json, results.json, demo.png")
    _add_processing_options(demo)
    demo.set_defaults(func=run_demo)


class StageBars:
    """tqdm progress bars, one per pipeline stage, fed by the pipeline's progress callback."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar = None

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=100, unit="%", leave=True, bar_format="{desc} {percentage:3.0f}%|{bar:24}|")
        self.bar.n = round(100 * fraction)
        self.bar.set_description_str(f"{stage:<10} {message[:60]:<60}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _process(session, args: argparse.Namespace):
    from mvcapture import threads
    from mvcapture.pipeline.process import SessionPipeline

    threads.apply("process")
    bars = StageBars()
    pipeline = SessionPipeline(session, model=args.model, detector_mode=args.mode, model_dir=args.model_dir,
                               device=args.device, height_m=args.height, progress=bars, force=args.force,
                               from_stage=args.from_stage)
    try:
        analysis = pipeline.run()
    finally:
        bars.close()
    return pipeline, analysis


def _summary(pipeline, analysis) -> dict:
    m = pipeline.metrics
    return {"session": pipeline.session.id, "path": str(pipeline.session.path), "ran": pipeline.ran,
            "skipped": pipeline.skipped, "notes": pipeline.notes,
            "analysis": str(pipeline.session.path_for("analysis")),
            "metrics_file": str(pipeline.session.path_for("metrics")), "metrics": m}


def _print_summary(pipeline, analysis) -> None:
    m = pipeline.metrics
    model = m["model"]
    print(f"session {pipeline.session.id}: {analysis.num_views} views, {analysis.num_frames} frames at "
          f"{analysis.fps:.2f} fps ({m['frames_seen_by_all_views']} seen by every view)")
    print(f"  lifter {model['name']}" + (f"@{model['version']}" if model.get("version") else "")
          + f" ({model['config']}), athlete height {m['height_m']:.2f} m")
    for v in range(1, analysis.num_views):
        print(f"  view {v}: offset {m['offset_s'][v]:+.4f} s ({m['sync'][v].get('method')}), camera rotation "
              f"{m['camera_rotation_deg'][v]:.1f}°, optical axes {m['camera_axis_angle_deg'][v]:.1f}° apart, "
              f"scale {m['scale'][v]:.3f}")
    print(f"  consistency residual: mean {m['residual_mean_mm']:.1f} mm")
    st = m.get("stereo")
    if st:
        lo, hi = st.get("axis_angle_interval_deg") or (None, None)
        interval = f" (95 % {lo:.0f}–{hi:.0f}°)" if lo is not None and hi is not None else ""
        focal = ", ".join(f"{f:.0f}" if f is not None else "?" for f in st.get("focal_px", []))
        if st.get("status") == "degenerate":
            print("  two-view geometry: not available (see the notes); angle and 3D from the lifter")
        else:
            print(f"  two-view geometry ({st['status']}): optical axes {st['axis_angle_deg']:.1f}°{interval}, "
                  f"rotation {st['rotation_deg']:.1f}°, focal {focal} px ({'/'.join(st.get('lens', []))}), "
                  f"reprojection {st['reprojection_px']:.1f} px, confidence {st['confidence']:.2f}")
    print(f"  cameras {m['camera_angle_deg']:.0f}° apart ({m['camera_angle_source']}): {m['camera_angle_advice']}")
    for note in pipeline.notes:
        print(f"note: {note}", file=sys.stderr)


def run_process(args: argparse.Namespace) -> int:
    from mvcapture.session.store import Session

    session = Session.open(args.session)
    for problem in session.problems:
        print(f"note: {problem}", file=sys.stderr)
    pipeline, analysis = _process(session, args)
    _print_summary(pipeline, analysis)
    write_json(args.json, _summary(pipeline, analysis))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from mvcapture.pipeline.demo import compare_with_calibration, demo_session, render_analysis

    if args.out is not None and not args.no_gui:
        raise MvcaptureError("--out is for the headless demo: add --no-gui")
    if args.no_gui and args.out is None and args.json is None:
        raise MvcaptureError("the headless demo needs --out DIR (or --json PATH) for its results")
    session = demo_session()
    print(f"demo session {session.id} in {session.path}")
    pipeline, analysis = _process(session, args)
    _print_summary(pipeline, analysis)
    comparison = compare_with_calibration(pipeline.metrics)
    cal = comparison["calibration"]
    for label, est in (("shown", comparison["estimated"] | {"error_deg": comparison["error_deg"]}),
                       ("lifter alone", comparison["lifter_only"]), ("two-view geometry", comparison["stereo"])):
        if est is None:
            continue
        err = est["error_deg"]
        print(f"  vs calibration, {label}{' (' + est['source'] + ')' if 'source' in est else ''}: relative rotation "
              f"{est['relative_rotation_deg']:.1f}° (calibration {cal['relative_rotation_deg']:.1f}°, error "
              f"{err['relative_rotation']:+.1f}°), optical axes {est['optical_axis_angle_deg']:.1f}° (calibration "
              f"{cal['optical_axis_angle_deg']:.1f}°, error {err['optical_axis']:+.1f}°)")
    result = {**_summary(pipeline, analysis), "calibration_check": comparison}
    if args.no_gui:
        if args.out is not None:
            out = args.out
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(session.path_for("analysis"), out / "analysis.npz")
            shutil.copyfile(session.path_for("metrics"), out / "metrics.json")
            image = render_analysis(session, analysis, out / "demo.png", metrics=pipeline.metrics)
            result["files"] = {"analysis": str(out / "analysis.npz"), "metrics": str(out / "metrics.json"),
                               "results": str(out / "results.json"), "image": str(image)}
            write_json(out / "results.json", result)
            print(f"wrote {out / 'analysis.npz'}, metrics.json, results.json and {image.name} in {out}")
        write_json(args.json, result)
        return 0
    write_json(args.json, result)
    if importlib.util.find_spec("mvcapture.gui") is None:
        raise MvcaptureError(f"the app's window (mvcapture.gui) is not part of this version yet; the demo session "
                             f"is processed in {session.path}. Run `mvcapture demo --no-gui --out DIR` for its "
                             f"results and a rendered image.")
    from mvcapture.cli import main

    return main(["gui", str(session.path)])
