import sys, torch, numpy as np
torch.set_num_threads(1)
from mvcapture.lifter import load_lifter
from mvcapture.lifter.runtime import to_metres
from mvcapture.core.normalize import normalize_kp2d
from mvcapture.data.calibrated import load_calibrated_recording, triangulate_reference
from mvcapture.data.recording_eval import evaluate_lifts, coco_to_h36m
L = load_lifter("default")
rec = load_calibrated_recording('../shared/data/video/pose2sim_demo')
tri = triangulate_reference(rec)
def live_lift(kp, conf, size, W, flip=False):
    fr = normalize_kp2d(kp, conf, np.asarray(size, np.float32))  # (T,17,3)
    T = len(fr); wins = []
    for t in range(T):
        s = max(0, t - W + 1); w = fr[s:t+1]
        if len(w) < W: w = np.concatenate([np.repeat(w[:1], W - len(w), 0), w])
        wins.append(w)
    out = L.lift_windows(np.stack(wins).astype(np.float32), flip=flip)[:, -1]
    return out
for W in map(int, sys.argv[1:]):
    poses, confs = [], []
    for v, cam in enumerate(rec.cameras):
        kp, conf = coco_to_h36m(rec.kp2d_coco_px[v].astype(np.float32), rec.conf_coco[v].astype(np.float32))
        p = live_lift(kp, conf, cam.image_size, W)
        poses.append(to_metres(p, cam.image_size)); confs.append(conf)
    r = evaluate_lifts(rec, np.stack(poses).astype(np.float64), np.stack(confs).astype(np.float64), None, tri.h36m())
    print('W', W, {k: (round(v['n_mpjpe'],1), round(v['pa_mpjpe'],1)) for k, v in r['views'].items()},
          {p['pair']: round(p['optical_axis_angle_deg']['error'],1) for p in r['pairs']}, flush=True)
