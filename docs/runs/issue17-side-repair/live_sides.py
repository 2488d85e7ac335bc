import numpy as np, torch
torch.set_num_threads(1)
from mvcapture.core.skeleton import coco_to_h36m
from mvcapture.data.calibrated import load_calibrated_recording, triangulate_reference
from mvcapture.data.recording_eval import evaluate_lifts
from mvcapture.lifter import load_lifter
from mvcapture.lifter.runtime import to_metres
from mvcapture.pipeline.live import live_lift_window
rec = load_calibrated_recording("../shared/data/video/pose2sim_demo")
world = triangulate_reference(rec).h36m()
lifter = load_lifter("default")
for fps in (None, rec.fps):
    poses, confs = [], []
    for v, cam in enumerate(rec.cameras):
        kp, conf = coco_to_h36m(rec.kp2d_coco_px[v].astype(np.float32), rec.conf_coco[v].astype(np.float32))
        live = lifter.live(window=live_lift_window(lifter), sides_fps=fps)
        poses.append(to_metres(np.stack([live.push(kp[t], conf[t], cam.image_size) for t in range(len(kp))]), cam.image_size))
        confs.append(conf)
    r = evaluate_lifts(rec, np.stack(poses).astype(np.float64), np.stack(confs).astype(np.float64), None, world)
    print("sides_fps", fps, " ".join(f"{k}:{v['n_mpjpe']:.1f}/{v['pa_mpjpe']:.1f}" for k, v in r["views"].items()),
          " ".join(f"{p['pair']}:{p['optical_axis_angle_deg']['error']:+.1f}" for p in r["pairs"]))
