"""Held-out subject 007: each view lifted with / without the 2D side-swap repair; MPJPE / PA / N against gt3d."""
import sys, json, glob
import numpy as np, torch
torch.set_num_threads(1)
from dataclasses import replace
from mvcapture.io.clip import load_clip
from mvcapture.lifter import load_lifter
from mvcapture.lifter.runtime import clip_to_metres
from mvcapture.core.metrics import mpjpe, pa_mpjpe, n_mpjpe
from mvcapture.core.sides import repair_side_swaps
folder, model = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "default"
lifter = load_lifter(model)
acc = {"raw": [], "repaired": []}
frames_fixed = 0; frames_total = 0
for f in sorted(glob.glob(folder + "/*.npz")):
    clip = load_clip(f)
    kp = np.asarray(clip.kp2d); conf = np.asarray(clip.conf)
    fixed = [repair_side_swaps(kp[v], conf[v], clip.fps) for v in range(len(kp))]
    frames_fixed += sum(int((o != np.arange(17)).any(-1).sum()) for _, _, o in fixed); frames_total += kp.shape[0] * kp.shape[1]
    clip2 = replace(clip, kp2d=np.stack([a for a, _, _ in fixed]).astype(np.float32), conf=np.stack([b for _, b, _ in fixed]).astype(np.float32))
    gt = np.asarray(clip.gt3d, np.float64); gt = gt - gt[:, :, :1]
    for key, c in (("raw", clip), ("repaired", clip2)):
        pose, _ = clip_to_metres(lifter.lift_views(c, flip=True), c)
        pose = pose - pose[:, :, :1]
        for v in range(len(pose)):
            acc[key].append((mpjpe(pose[v], gt[v]), pa_mpjpe(pose[v], gt[v]), n_mpjpe(pose[v], gt[v]), len(gt[v])))
out = {}
for key, rows in acc.items():
    a = np.array(rows); w = a[:, 3]
    out[key] = {m: float((a[:, i] * w).sum() / w.sum()) for i, m in enumerate(("mpjpe", "pa_mpjpe", "n_mpjpe"))}
out["frames_repaired_share"] = frames_fixed / frames_total
print(folder, json.dumps(out))
