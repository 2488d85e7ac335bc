"""Live mode's 3D on the bundled four-camera recording, every camera pair, against its 4-camera triangulation.

Per view: the shipped lifter pushed frame by frame through `LiveLifter` as live mode runs it (the last
`LIVE_WINDOW` frames, stride 1, no flip) -> N-MPJPE / PA-MPJPE and each pair's lifter-only optical-axes angle
(`evaluate_lifts`). Per pair: the live two-view 3D, `StereoRig.triangulate_frame` one frame pair at a time with the
pair's self-calibrated estimate (lenses from the checkerboard pictures; no smoothing, no lift fill: what the live
3D view shows) -> PA-MPJPE / N-MPJPE over the frames where all 17 joints were triangulated, and that share.
Synthetic: the same live triangulation on 2-minute synthetic sessions saved as pickles (bench stereo's generator).
Run from the repository root: python docs/runs/issue18-live/live_on_recording.py [SESSIONS_GLOB]
"""
import glob, json, pickle, sys
import numpy as np, torch
torch.set_num_threads(1)
from mvcapture.core.metrics import mpjpe, n_mpjpe, pa_mpjpe
from mvcapture.core.skeleton import coco_to_h36m
from mvcapture.data.calibrated import (load_calibrated_recording, relative_rotation, to_camera,
                                       triangulate_reference)
from mvcapture.data.recording_eval import default_pairs, evaluate_lifts
from mvcapture.geometry.projection import optical_axes_angle_deg
from mvcapture.geometry.stereo import StereoRig, self_calibrate
from mvcapture.lifter import load_lifter
from mvcapture.lifter.runtime import to_metres
from mvcapture.paths import resources_dir
from mvcapture.pipeline.live import live_lift_window

rec = load_calibrated_recording("../shared/data/video/pose2sim_demo")
world = triangulate_reference(rec).h36m()
lifter = load_lifter("default")
poses, confs = [], []
for v, cam in enumerate(rec.cameras):
    kp, conf = coco_to_h36m(rec.kp2d_coco_px[v].astype(np.float32), rec.conf_coco[v].astype(np.float32))
    live = lifter.live(window=live_lift_window(lifter))
    poses.append(to_metres(np.stack([live.push(kp[t], conf[t], cam.image_size) for t in range(len(kp))]),
                           cam.image_size))
    confs.append(conf)
lifts = evaluate_lifts(rec, np.stack(poses).astype(np.float64), np.stack(confs).astype(np.float64), None, world)
lens_dir = resources_dir() / "demo" / "intrinsics"
rows = []
for a_name, b_name in default_pairs(rec):
    a, b = rec.camera(a_name), rec.camera(b_name)
    ia, ib = rec.index(a_name), rec.index(b_name)
    intr = [json.loads((lens_dir / f"{c.name}.json").read_text()) for c in (a, b)]
    est = self_calibrate(rec.kp2d_coco_px[ia], rec.conf_coco[ia], rec.kp2d_coco_px[ib], rec.conf_coco[ib],
                         a.image_size, b.image_size, intr[0], intr[1], fps=rec.fps)
    rig = StereoRig(est, a.image_size, b.image_size, intr[0], intr[1])
    frames = [rig.triangulate_frame(rec.kp2d_coco_px[ia, t], rec.conf_coco[ia, t], rec.kp2d_coco_px[ib, t],
                                    rec.conf_coco[ib, t]) for t in range(rec.num_frames)]
    X = np.stack([f if f is not None else np.full((17, 3), np.nan) for f in frames])
    ref = to_camera(world, a); ref = ref - ref[:, :1]
    ok = np.isfinite(X).all((-1, -2)) & np.isfinite(ref).all((-1, -2))
    pair = next(p for p in lifts["pairs"] if p["cameras"] == [a_name, b_name])
    rows.append({"pair": f"{a_name}-{b_name}", "status": est.status,
                 "calibration_axes_deg": float(optical_axes_angle_deg(relative_rotation(a, b))),
                 "stereo_axes_error_deg": est.axis_angle_deg - float(optical_axes_angle_deg(relative_rotation(a, b))),
                 "lifter_axes_error_deg": pair["optical_axis_angle_deg"]["error"],
                 "live_lift_mm": {n: [lifts["views"][n]["n_mpjpe"], lifts["views"][n]["pa_mpjpe"]] for n in (a_name, b_name)},
                 "live_fused_pa_mm": float(pa_mpjpe(X[ok], ref[ok])), "live_fused_n_mm": float(n_mpjpe(X[ok], ref[ok])),
                 "live_fused_share": float(ok.mean())})
    r = rows[-1]
    print(f"{r['pair']:<12} stereo {r['status']:<9} axes {r['stereo_axes_error_deg']:+5.1f}° | live fused PA {r['live_fused_pa_mm']:5.1f}"
          f" N {r['live_fused_n_mm']:5.1f} mm ({100 * r['live_fused_share']:.0f} % of frames) | live lifts "
          + ", ".join(f"{n} {v[0]:.1f}/{v[1]:.1f}" for n, v in r["live_lift_mm"].items())
          + f" | lifter-only axes {r['lifter_axes_error_deg']:+5.1f}°", flush=True)
syn = []
for path in sorted(glob.glob(sys.argv[1])) if len(sys.argv) > 1 else []:
    d = pickle.load(open(path, "rb"))
    kp, conf = d["kp2d"], d["conf"]
    est = self_calibrate(kp[0], conf[0], kp[1], conf[1], d["image_size"][0], d["image_size"][1], d["intr"][0],
                         d["intr"][1], fps=30, layout="h36m17")
    rig = StereoRig(est, d["image_size"][0], d["image_size"][1], d["intr"][0], d["intr"][1],
                    height_m=d["height"], layout="h36m17")
    X = np.stack([f if (f := rig.triangulate_frame(kp[0, t], conf[0, t], kp[1, t], conf[1, t])) is not None
                  else np.full((17, 3), np.nan) for t in range(len(kp[0]))])
    g = d["gt"].astype(np.float64); g = g - g[:, :1]
    ok = np.isfinite(X).all((-1, -2))
    syn.append({"session": path, "status": est.status, "live_fused_mpjpe_mm": float(mpjpe(X[ok], g[ok])),
                "live_fused_pa_mm": float(pa_mpjpe(X[ok], g[ok])), "share": float(ok.mean())})
    print(f"synthetic {path}: {est.status}, live fused MPJPE {syn[-1]['live_fused_mpjpe_mm']:.1f} mm, "
          f"PA {syn[-1]['live_fused_pa_mm']:.1f} mm ({100 * syn[-1]['share']:.0f} % of frames)", flush=True)
if syn:
    print("synthetic live fused MPJPE median %.1f mm, PA median %.1f mm over %d sessions" % (
        np.median([s["live_fused_mpjpe_mm"] for s in syn]), np.median([s["live_fused_pa_mm"] for s in syn]), len(syn)))
json.dump({"recording": rows, "synthetic": syn}, open("/tmp/live_on_recording.json", "w"), indent=1)
