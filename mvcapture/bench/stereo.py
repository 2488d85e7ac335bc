"""`mvcapture bench stereo`: the two-view self-calibration on synthetic two-view sessions (the project's
generator and detector noise model; angles 20–160°, vertical FOV 40–90°, distances 3–8 m, 2-minute
sessions) and on the bundled real recording's camera pairs against its calibration, with the hardware named.

Synthetic: median / 95th-percentile rotation error, focal error (lenses unknown), fused MPJPE, the share
of degenerate sessions flagged, seconds per 1,000 frames. Real: rotation and optical-axes error, fused 3D
against the four-camera triangulation (PA-MPJPE, N-MPJPE), with the lenses from the recording's own
checkerboard pictures and without any lens, and the live triangulation time per frame pair.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import numpy as np

from mvcapture.cli import add_json_option, write_json

REAL_PAIRS = ("01-04", "02-03", "03-04", "01-02", "01-03", "02-04")


def register(bench_sub) -> None:
    parser = bench_sub.add_parser("stereo", help="two-view self-calibration: synthetic sessions and the real recording")
    parser.add_argument("--sessions", type=int, default=12, help="synthetic sessions (default 12)")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each synthetic session (default 120)")
    parser.add_argument("--degenerate", type=int, default=9, help="degenerate synthetic sessions (default 9)")
    parser.add_argument("--mocap", type=Path, default=None, help="BVH folder (default: the shared CMU clips)")
    parser.add_argument("--recording", type=Path, default=None,
                        help="calibrated recording folder (default: the shared pose2sim demo)")
    parser.add_argument("--seed", type=int, default=0)
    add_json_option(parser)
    parser.set_defaults(func=run)


def _long_motion(files: list[str], seconds: float, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(T, 17, 3) world metres: mocap clips played one after the other, each centred on the same spot (the
    athlete stays in the cameras' field, as in a session filmed in one place; a cut between clips jumps)."""
    from mvcapture.io.bvh import bvh_to_h36m

    need = int(seconds * fps)
    parts, have = [], 0
    while have < need:
        pose = bvh_to_h36m(files[int(rng.integers(len(files)))], fps=fps)[0]
        if len(pose) < 10:
            continue
        pose = pose - pose[:, :1].mean(0, keepdims=True) * [1, 0, 1]
        parts.append(pose)
        have += len(pose)
    return np.concatenate(parts)[:need]


def _intrinsics(clip, v):
    w, h = (int(x) for x in clip.image_size[v])
    f = float(clip.extras["focal_px"][v])
    return {"fx": f, "fy": f, "cx": w / 2, "cy": h / 2, "dist": [0.0] * 5, "image_size": [w, h]}


def _synthetic(args, files, rng) -> dict:
    from mvcapture.core.normalize import HEIGHT_PROXY_RATIO, height_proxy
    from mvcapture.data.synth import synthesize_clip
    from mvcapture.geometry.fusion import fuse_tracks
    from mvcapture.geometry.projection import focal_from_vfov, rotation_angle_deg
    from mvcapture.geometry.stereo import despike, self_calibrate, smooth_track, triangulate_tracks

    fps = 30.0
    rows = []
    for i in range(args.sessions):
        angle = float(rng.uniform(20, 160))
        vfov = rng.uniform(40, 90, 2)
        sizes = [((1920, 1080), (1080, 1920), (1280, 720))[int(k)] for k in rng.integers(0, 3, 2)]
        focal = [float(focal_from_vfov(vfov[v], sizes[v][1])) for v in (0, 1)]
        pose = _long_motion(files, args.seconds, fps, rng)
        clip = synthesize_clip(pose, fps, seed=int(rng.integers(1 << 30)), angle_deg=angle,
                               distance_m=rng.uniform(3, 8, 2), focal_px=focal, image_size=sizes)
        R_cam = clip.extras["cam_R"]
        truth = R_cam[1] @ R_cam[0].T
        gt = clip.gt3d[0].astype(np.float64)
        height = float(np.median(height_proxy(gt))) / HEIGHT_PROXY_RATIO  # the athlete's height, as a user enters it
        row = {"angle_deg": angle, "vfov_deg": vfov.tolist(), "image_size": sizes, "frames": len(gt)}
        for known in (True, False):
            intr = [_intrinsics(clip, v) for v in (0, 1)] if known else [None, None]
            t0 = time.perf_counter()
            est = self_calibrate(clip.kp2d[0], clip.conf[0], clip.kp2d[1], clip.conf[1], clip.image_size[0],
                                 clip.image_size[1], intr[0], intr[1], fps=fps, layout="h36m17")
            seconds = time.perf_counter() - t0
            err = float(rotation_angle_deg(est.R @ truth.T))
            lo, hi = est.axis_angle_interval_deg
            from mvcapture.geometry.projection import optical_axes_angle_deg

            axis_truth = float(optical_axes_angle_deg(truth))
            key = "known_lens" if known else "unknown_lens"
            entry = {"status": est.status, "notes": est.notes, "interval_deg": list(est.axis_angle_interval_deg), "confidence": est.confidence, "rotation_error_deg": err, "seconds": seconds,
                     "seconds_per_1000_frames": 1000 * seconds / len(gt),
                     "interval_holds_truth": bool(lo - 1e-6 <= axis_truth <= hi + 1e-6),
                     "focal_error": float(np.mean(np.abs(est.focal_px / np.asarray(focal) - 1)))}
            if known and est.status != "degenerate":
                X, conf, _ = triangulate_tracks(est, clip.kp2d[0], clip.conf[0], clip.kp2d[1], clip.conf[1],
                                                clip.image_size[0], clip.image_size[1], intr[0], intr[1],
                                                layout="h36m17")
                no_lift = np.zeros((2,) + gt.shape)
                fused, source, _ = fuse_tracks(smooth_track(despike(X), fps), conf, no_lift, np.zeros((2,) + gt.shape[:2]), est.R,
                                               height, layout="h36m17")
                ok = np.isfinite(fused).all((-1, -2))
                g = gt - gt[:, :1]
                entry["fused_mpjpe_mm"] = float(np.mean(np.linalg.norm(fused[ok] - g[ok], axis=-1)) * 1000)
            row[key] = entry
        rows.append(row)
        k, u = row["known_lens"], row["unknown_lens"]
        print(f"  session {i + 1:2d}: {angle:5.1f}° apart, FOV {vfov[0]:4.1f}/{vfov[1]:4.1f}°: known lens "
              f"{k['status']:9s} rotation error {k['rotation_error_deg']:5.2f}°, fused MPJPE "
              f"{k.get('fused_mpjpe_mm', float('nan')):5.1f} mm, {k['seconds']:.1f} s | unknown lens {u['status']:9s} "
              f"error {u['rotation_error_deg']:5.1f}°, focal error {100 * u['focal_error']:4.1f} %, interval "
              f"{'holds' if u['interval_holds_truth'] else 'misses'} the truth")
    return {"sessions": rows}


def _real(args) -> dict:
    from mvcapture.core.metrics import n_mpjpe, pa_mpjpe
    from mvcapture.data.calibrated import load_calibrated_recording, relative_rotation, to_camera, triangulate_reference
    from mvcapture.data.recording_eval import lift_recording
    from mvcapture.geometry.fusion import fuse_tracks
    from mvcapture.geometry.projection import optical_axes_angle_deg, rotation_angle_deg
    from mvcapture.geometry.stereo import StereoRig, despike, self_calibrate, smooth_track, triangulate_tracks
    from mvcapture.lifter.weights import load_lifter
    from mvcapture.paths import resources_dir

    import json

    folder = args.recording or Path(__file__).resolve().parents[3] / "shared" / "data" / "video" / "pose2sim_demo"
    if not folder.is_dir():
        print(f"real recording: {folder} not found, skipped")
        return {"skipped": str(folder)}
    rec = load_calibrated_recording(folder)
    world = triangulate_reference(rec).h36m()
    lifts, lift_conf, _ = lift_recording(rec, load_lifter("default"))
    lens_dir = resources_dir() / "demo" / "intrinsics"
    rows = []
    for pair in REAL_PAIRS:
        a, b = (rec.camera(p) for p in pair.split("-"))
        ia, ib = rec.index(a.name), rec.index(b.name)
        truth = relative_rotation(a, b)
        row = {"pair": pair, "calibration": {"optical_axes_deg": float(optical_axes_angle_deg(truth)),
                                             "rotation_deg": float(rotation_angle_deg(truth))}}
        for lens in ("checkerboard", "none"):
            intr = ([json.loads((lens_dir / f"{c.name}.json").read_text()) for c in (a, b)] if lens == "checkerboard"
                    else [None, None])
            t0 = time.perf_counter()
            est = self_calibrate(rec.kp2d_coco_px[ia], rec.conf_coco[ia], rec.kp2d_coco_px[ib], rec.conf_coco[ib],
                                 a.image_size, b.image_size, intr[0], intr[1], fps=rec.fps)
            seconds = time.perf_counter() - t0
            lo, hi = est.axis_angle_interval_deg
            entry = {"status": est.status, "axis_angle_deg": est.axis_angle_deg,
                     "axis_error_deg": est.axis_angle_deg - row["calibration"]["optical_axes_deg"],
                     "rotation_error_deg": float(rotation_angle_deg(est.R @ truth.T)),
                     "interval_deg": [lo, hi],
                     "interval_holds_calibration": bool(lo <= row["calibration"]["optical_axes_deg"] <= hi),
                     "focal_px": est.focal_px.tolist(), "confidence": est.confidence, "seconds": seconds}
            if est.status != "degenerate":
                X, conf, _ = triangulate_tracks(est, rec.kp2d_coco_px[ia], rec.conf_coco[ia], rec.kp2d_coco_px[ib],
                                                rec.conf_coco[ib], a.image_size, b.image_size, intr[0], intr[1])
                fused, source, _ = fuse_tracks(smooth_track(despike(X), rec.fps), conf, lifts[[ia, ib]], lift_conf[[ia, ib]], est.R, 1.75)
                ref = to_camera(world, a)
                ref = ref - ref[:, :1]
                ok = np.isfinite(fused).all((-1, -2)) & np.isfinite(ref).all((-1, -2))
                entry.update(fused_pa_mpjpe_mm=float(pa_mpjpe(fused[ok], ref[ok])),
                             fused_n_mpjpe_mm=float(n_mpjpe(fused[ok], ref[ok])),
                             triangulated_share=float((source == 1).mean()), frames_scored=int(ok.sum()))
                if lens == "checkerboard" and pair == REAL_PAIRS[0]:
                    rig = StereoRig(est, a.image_size, b.image_size, intr[0], intr[1])
                    n = rec.num_frames
                    t0 = time.perf_counter()
                    for t in range(n):
                        rig.triangulate_frame(rec.kp2d_coco_px[ia, t], rec.conf_coco[ia, t],
                                              rec.kp2d_coco_px[ib, t], rec.conf_coco[ib, t])
                    row["live_ms_per_pair"] = 1000 * (time.perf_counter() - t0) / n
            row[lens] = entry
        rows.append(row)
        c, n = row["checkerboard"], row["none"]
        print(f"  {pair} (axes {row['calibration']['optical_axes_deg']:5.1f}°): lenses from the board: {c['status']:9s} "
              f"axes {c['axis_error_deg']:+5.1f}°, rotation error {c['rotation_error_deg']:4.1f}°, fused PA-MPJPE "
              f"{c.get('fused_pa_mpjpe_mm', float('nan')):5.1f} mm, N-MPJPE {c.get('fused_n_mpjpe_mm', float('nan')):5.1f}"
              f" mm | no lens: {n['status']:9s} {n['axis_angle_deg']:5.1f}° in [{n['interval_deg'][0]:.0f}, "
              f"{n['interval_deg'][1]:.0f}]° ({'holds' if n['interval_holds_calibration'] else 'misses'} the calibration)")
    return {"pairs": rows, "frames": rec.num_frames, "fps": rec.fps}


def _summary(syn: dict) -> dict:
    rows = syn["sessions"]
    known = [r["known_lens"] for r in rows]
    unknown = [r["unknown_lens"] for r in rows]
    rot = np.array([k["rotation_error_deg"] for k in known])
    rot_ok = np.array([k["rotation_error_deg"] for k in known if k["status"] == "ok"])
    fused = np.array([k["fused_mpjpe_mm"] for k in known if "fused_mpjpe_mm" in k])
    return {
        "known_lens": {"rotation_error_median_deg": float(np.median(rot)), "rotation_error_p95_deg": float(np.percentile(rot, 95)),
                       "ok_rotation_error_median_deg": float(np.median(rot_ok)) if len(rot_ok) else None,
                       "ok_rotation_error_p95_deg": float(np.percentile(rot_ok, 95)) if len(rot_ok) else None,
                       "fused_mpjpe_median_mm": float(np.median(fused)) if len(fused) else None,
                       "flagged_share": float(np.mean([k["status"] != "ok" for k in known])),
                       "seconds_per_1000_frames": float(np.median([k["seconds_per_1000_frames"] for k in known]))},
        "unknown_lens": {"focal_error_median": float(np.median([u["focal_error"] for u in unknown])),
                         "rotation_error_median_deg": float(np.median([u["rotation_error_deg"] for u in unknown])),
                         "honest_share": float(np.mean([u["interval_holds_truth"] or u["status"] != "ok" for u in unknown])),
                         "flagged_share": float(np.mean([u["status"] != "ok" for u in unknown]))},
    }


def _degenerate(args, files, rng) -> dict:
    from mvcapture.data.synth import synthesize_clip
    from mvcapture.geometry.stereo import self_calibrate

    fps = 30.0
    cases = []
    kinds = ("close", "static", "occluded")
    for i in range(args.degenerate):
        kind = kinds[i % 3]
        pose = _long_motion(files, min(args.seconds, 30.0), fps, rng)
        if kind == "static":
            pose = np.repeat(pose[len(pose) // 2][None], len(pose), 0)
        clip = synthesize_clip(pose, fps, seed=int(rng.integers(1 << 30)),
                               angle_deg=float(rng.uniform(3, 12)) if kind == "close" else 90.0)
        conf = clip.conf.copy()
        if kind == "occluded":
            conf[1, : int(0.85 * conf.shape[1])] = 0.0
        intr = [_intrinsics(clip, v) for v in (0, 1)]
        est = self_calibrate(clip.kp2d[0], conf[0], clip.kp2d[1], conf[1], clip.image_size[0], clip.image_size[1],
                             intr[0], intr[1], fps=fps, layout="h36m17")
        cases.append({"kind": kind, "status": est.status, "notes": est.notes})
    flagged = float(np.mean([c["status"] != "ok" for c in cases])) if cases else float("nan")
    print(f"  degenerate sessions ({', '.join(kinds)}): {100 * flagged:.0f} % flagged of {len(cases)}")
    return {"cases": cases, "flagged_share": flagged}


def run(args) -> int:
    from mvcapture.bench.common import hardware
    from mvcapture.errors import MvcaptureError

    hw = hardware()
    print(f"stereo: hardware {hw['cpu']} ({hw['cpu_cores']} cores), CPU (numpy/scipy/OpenCV)")
    mocap = args.mocap or Path(__file__).resolve().parents[3] / "shared" / "data" / "mocap"
    files = sorted(glob.glob(str(mocap / "**" / "*.bvh"), recursive=True))
    if not files:
        raise MvcaptureError(f"no BVH files under {mocap}: pass --mocap DIR")
    rng = np.random.default_rng(args.seed)
    print(f"synthetic: {args.sessions} two-view sessions of {args.seconds:g} s at 30 fps, default detector noise")
    syn = _synthetic(args, files, rng)
    summary = _summary(syn)
    k, u = summary["known_lens"], summary["unknown_lens"]
    print(f"  known lenses: rotation error median {k['rotation_error_median_deg']:.2f}°, 95th percentile "
          f"{k['rotation_error_p95_deg']:.2f}° (the sessions marked ok: {k['ok_rotation_error_median_deg'] or float('nan'):.2f}° / "
          f"{k['ok_rotation_error_p95_deg'] or float('nan'):.2f}°); fused MPJPE median {k['fused_mpjpe_median_mm']:.1f} mm; "
          f"{k['seconds_per_1000_frames']:.2f} s per 1,000 frames; {100 * k['flagged_share']:.0f} % not ok")
    print(f"  unknown lenses: focal error median {100 * u['focal_error_median']:.1f} %, rotation error median "
          f"{u['rotation_error_median_deg']:.1f}°, {100 * u['flagged_share']:.0f} % flagged, "
          f"{100 * u['honest_share']:.0f} % honest (interval holds the truth, or flagged)")
    deg = _degenerate(args, files, rng)
    print("real recording (shipped detections):")
    real = _real(args)
    write_json(args.json, {"hardware": hw, "synthetic": syn, "synthetic_summary": summary, "degenerate": deg,
                           "real": real})
    return 0
