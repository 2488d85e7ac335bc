"""Where the shipped lifter's error on the bundled recording comes from: each view lifted (as eval-recording does,
flip TTA, no side repair) from (1) the MediaPipe detections as shipped, (2) the same with the sides the 4-camera
triangulation found swapped exchanged back, (3) the triangulated reference reprojected into each camera (perfect
2D, confidence 1). Then, for (3), the per-frame-Procrustes error split into the camera's x / y / z (depth) axes.
Run from the repository root: python docs/runs/issue17-side-repair/clean_input.py
"""
import numpy as np, torch
torch.set_num_threads(1)
from mvcapture.core.procrustes import procrustes
from mvcapture.core.skeleton import coco_to_h36m
from mvcapture.data.calibrated import COCO17_FLIP_PERMUTATION, load_calibrated_recording, triangulate_reference
from mvcapture.data.recording_eval import evaluate_lifts, reference_in_cameras
from mvcapture.lifter import load_lifter
from mvcapture.lifter.runtime import to_metres

rec = load_calibrated_recording("../shared/data/video/pose2sim_demo")
tri = triangulate_reference(rec)
ref = reference_in_cameras(rec, tri.h36m())
known = np.isfinite(ref).all((0, 2, 3))
lifter = load_lifter("default")


def lift(kps, confs):
    out = []
    for v, cam in enumerate(rec.cameras):
        kp, c = coco_to_h36m(kps[v].astype(np.float32), confs[v].astype(np.float32))
        out.append(to_metres(lifter.lift_clip(kp, c, cam.image_size, flip=True), cam.image_size))
    pose = np.stack(out)
    return pose - pose[:, :, :1]


det = rec.kp2d_coco_px
fixed = np.where(tri.swapped.T[:, :, None, None], det[:, :, COCO17_FLIP_PERMUTATION], det)
clean = np.stack([c.project(tri.world_coco_m) for c in rec.cameras])
clean_conf = np.isfinite(clean).all(-1).astype(np.float64)
for label, kps, confs in (("detections", det, rec.conf_coco), ("sides fixed", fixed, rec.conf_coco),
                          ("clean reproj", np.nan_to_num(clean), clean_conf)):
    pose = lift(kps, confs)
    res = evaluate_lifts(rec, pose, np.ones(pose.shape[:3]), None, tri.h36m())
    print(label, " ".join(f"{k}:{v['n_mpjpe']:.0f}/{v['pa_mpjpe']:.0f}" for k, v in res["views"].items()),
          " ".join(f"{r['pair']}:{r['optical_axis_angle_deg']['error']:+.0f}" for r in res["pairs"]))
for v in range(len(rec.cameras)):
    p, g = pose[v, known], ref[v, known]
    fit = procrustes(p, g, None, mode="frame")
    d = fit.aligned - g
    print(rec.names[v], "clean-input PA error rms along camera x / y / z (mm):",
          np.round(np.sqrt((d ** 2).mean((0, 1))) * 1000).astype(int))
