import sys, glob, torch, numpy as np
torch.set_num_threads(1)
from mvcapture.lifter import load_lifter
from mvcapture.lifter.runtime import to_metres
from mvcapture.core.normalize import normalize_kp2d
from mvcapture.core.metrics import n_mpjpe, pa_mpjpe
L = load_lifter("default")
def live_lift(kp, conf, size, W):
    fr = normalize_kp2d(kp, conf, np.asarray(size, np.float32)); T = len(fr); wins = []
    for t in range(T):
        w = fr[max(0, t - W + 1):t+1]
        if len(w) < W: w = np.concatenate([np.repeat(w[:1], W - len(w), 0), w])
        wins.append(w)
    return L.lift_windows(np.stack(wins).astype(np.float32))[:, -1]
for folder in sys.argv[1:]:
    res = {81: [[], []], 27: [[], []]}
    n = 0                                               # view-frames scored
    for f in sorted(glob.glob(folder + '/*.npz')):
        d = np.load(f)
        n += d['kp2d'].shape[0] * d['kp2d'].shape[1]
        for v in range(d['kp2d'].shape[0]):
            g = d['gt3d'][v].astype(np.float64); g = g - g[:, :1]
            for W in (81, 27):
                p = to_metres(live_lift(d['kp2d'][v].astype(np.float32), d['conf'][v].astype(np.float32), d['image_size'][v], W), d['image_size'][v]).astype(np.float64)
                p = p - p[:, :1]
                res[W][0].append(n_mpjpe(p, g) * len(g)); res[W][1].append(pa_mpjpe(p, g) * len(g))
    for W in (81, 27):
        print(folder, 'W', W, 'N-MPJPE %.1f PA-MPJPE %.1f' % (sum(res[W][0]) / n, sum(res[W][1]) / n), flush=True)
