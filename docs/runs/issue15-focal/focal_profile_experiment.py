"""Focal length along the epipolar valley: bone-CV of raw triangulation vs cost after bone-constrained refinement.

Inputs (not in the repository): the bench's synthetic sessions and their stereo estimates pickled to
/work/t15/sNN.pkl and /work/t15/estNN.pkl. The bone-CV helper is this script's own (stereo's private one was
removed when the rigid-skeleton cost replaced it); the camera matrices come from triangulation.two_view_projections.
"""
import sys, pickle, time
import numpy as np
sys.path.insert(0, '/work/main')
import mvcapture.geometry.stereo as st
import warnings
def _bcv(points, bones):
    b = np.asarray(bones)
    length = np.linalg.norm(points[:, b[:, 1]] - points[:, b[:, 0]], axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(length, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = (length / np.where(med > 0, med, np.nan) - 1.0) ** 2
    seen = np.isfinite(dev)
    return np.where(seen, dev, 0.0).sum(-1) / np.maximum(seen.sum(-1), 1)
from mvcapture.geometry.essential import essential_ransac, refine_relative_pose, fundamental_from_essential, sampson_distance
from mvcapture.geometry.projection import essential_from_Rt, focal_from_vfov, rotation_angle_deg, optical_axes_angle_deg
from mvcapture.geometry.triangulation import triangulate_points, two_view_projections
from mvcapture.geometry.bundle import refine_points_with_bones

i = int(sys.argv[1]); NSUB = int(sys.argv[2]) if len(sys.argv) > 2 else 300
d = pickle.load(open(f'/work/t15/s{i:02d}.pkl', 'rb'))
kp, conf = d['kp2d'], d['conf']
est = pickle.load(open(f'/work/t15/est{i:02d}.pkl', 'rb'))
lay = st.LAYOUTS['h36m17']
xa, _, _ = st.centred_pixels(kp[0], d['image_size'][0], None)
xb, _, _ = st.centred_pixels(kp[1], d['image_size'][1], None)
T = len(xa); rows = np.arange(T)[:, None]
xb = xb[rows, est.labels_b]; cb = conf[1][rows, est.labels_b]; ca = conf[0]
body = np.isin(np.arange(17), lay.calibration_joints)
both = (ca >= .5) & (cb >= .5) & body
pa, pb, w = xa[both], xb[both], np.sqrt(ca * cb)[both]
keep = st._even_subset(len(pa), 2000); pa, pb, w = pa[keep], pb[keep], w[keep]
sub = st._even_subset(T, NSUB)
TH = float(__import__('os').environ.get('TH', '0.3')); BODY = __import__('os').environ.get('BODY') == '1'
msk = body if BODY else np.ones(17, bool)
wa = np.where((ca[sub] >= TH) & msk, ca[sub], 0.0); wb = np.where((cb[sub] >= TH) & msk, cb[sub], 0.0)
ha, hb = d['image_size'][0][1], d['image_size'][1][1]
fa_true, fb_true = d['focal']
grid = np.arange(35, 96, 2.5)
# valley: for each focal of a, view b's focal free; warm start from the neighbour
fa0 = focal_from_vfov(62.5, ha); fb0 = focal_from_vfov(62.5, hb)
f = essential_ransac(pa / fa0, pb / fb0, 8 / np.sqrt(fa0 * fb0), seed=0)
R0, t0 = f[0], f[1]
m = len(grid) // 2
out = {}
for order in (range(m, len(grid)), range(m - 1, -1, -1)):
    if order.start != m:
        R0, t0, fb0 = start_m
    for k in order:
        fa = focal_from_vfov(grid[k], ha)
        R0, t0, _, fb, res = refine_relative_pose(pa, pb, w, R0, t0, fa, fb0, free_focal=(False, True), max_nfev=60)
        fb0 = fb
        if k == m:
            start_m = (R0, t0, fb0)
        epi = float((w * np.log1p((res / 4) ** 2)).sum())
        P = two_view_projections(R0, t0, fa, fb)
        X = triangulate_points(P, np.stack([xa[sub], xb[sub]]), np.stack([wa, wb]))
        cv = float(_bcv(X, lay.rigid_bones).sum())
        Xr = refine_points_with_bones(X, xa[sub], xb[sub], wa, wb, R0, t0, fa, fb, bones=lay.rigid_bones,
                                      symmetric=lay.symmetric_bones, iterations=6)
        # cost after refinement: pixel residuals in noise units (as the refinement) + bone term
        Xb = Xr @ R0.T + t0
        ra = fa * Xr[..., :2] / Xr[..., 2:3] - xa[sub]; rb = fb * Xb[..., :2] / Xb[..., 2:3] - xb[sub]
        def npx(x, wv):
            seen = wv > 0
            lo = np.where(seen[..., None], x, np.inf).min(1); hi = np.where(seen[..., None], x, -np.inf).max(1)
            return np.maximum(0.01 * np.linalg.norm(hi - lo, axis=-1), 0.5)
        sa, sbn = npx(xa[sub], wa), npx(xb[sub], wb)
        ea = np.linalg.norm(ra, axis=-1) / sa[:, None]; eb = np.linalg.norm(rb, axis=-1) / sbn[:, None]
        okp = np.isfinite(Xr).all(-1)
        rep = float(np.nansum(np.where(okp & (wa > 0), wa * np.log1p(ea ** 2), 0)) + np.nansum(np.where(okp & (wb > 0), wb * np.log1p(eb ** 2), 0)))
        cvr = float(_bcv(Xr, lay.rigid_bones).sum())
        out[k] = (grid[k], fa, fb, epi, cv, rep, cvr, rotation_angle_deg(R0 @ d['truth'].T))
print(f'session {i}: truth vfov {np.round(d["vfov"],1)} f {np.round(d["focal"])} angle {d["angle"]:.0f}')
rows_ = [out[k] for k in sorted(out)]
arr = np.array(rows_)
for name, col in (('epi', 3), ('cv', 4), ('rep', 5), ('cvr', 6), ('rep+cvr/0.05^2', None)):
    c = arr[:, col] if col is not None else arr[:, 5] + arr[:, 6] / 0.05 ** 2
    b = int(np.argmin(c))
    print(f'  {name:16s} best vfov_a {arr[b,0]:.1f}: fa err {100*(arr[b,1]/fa_true-1):+.1f}% fb err {100*(arr[b,2]/fb_true-1):+.1f}% rot {arr[b,7]:.1f}')
if '-v' in sys.argv:
    np.set_printoptions(linewidth=220, suppress=True, precision=3)
    for r in rows_:
        print('   ', f'{r[0]:.1f} fa {r[1]:.0f} fb {r[2]:.0f} epi {r[3]:.1f} cv {r[4]:.3f} rep {r[5]:.1f} cvr {r[6]:.4f} rot {r[7]:.1f}')
# sub-grid: parabola through the rep minimum and its neighbours
c = arr[:, 5]; b = int(np.argmin(c))
if 0 < b < len(c) - 1:
    den = c[b - 1] - 2 * c[b] + c[b + 1]
    off = 0.5 * (c[b - 1] - c[b + 1]) / den if den > 0 else 0.0
    v = arr[b, 0] + off * 2.5
    fa_p = focal_from_vfov(v, ha)
    fb_p = np.exp(np.interp(off, [-1, 0, 1], np.log(arr[b-1:b+2, 2])))
    print(f'  parabola vfov_a {v:.2f}: fa err {100*(fa_p/fa_true-1):+.1f}% fb err {100*(fb_p/fb_true-1):+.1f}%  mean {50*(abs(fa_p/fa_true-1)+abs(fb_p/fb_true-1)):.1f}%')
if '-ba' in sys.argv:
    from mvcapture.geometry.bundle import bundle_adjust
    k = sorted(out)[b]
    _, fa, fb = out[k][:3]
    Rk, tk = refine_relative_pose(pa, pb, w, R0, t0, fa, fb)[:2]
    sub2 = st._even_subset(T, 150)
    wa2 = np.where(ca[sub2] >= .3, ca[sub2], 0.0); wb2 = np.where(cb[sub2] >= .3, cb[sub2], 0.0)
    X0 = triangulate_points(two_view_projections(Rk, tk, fa, fb), np.stack([xa[sub2], xb[sub2]]), np.stack([wa2, wb2]))
    for sb_ in (0.06, 0.02):
        t1 = time.time()
        ba = bundle_adjust(xa[sub2], xb[sub2], wa2, wb2, Rk, tk, fa, fb, X0, free_focal=(True, True), bones=lay.rigid_bones,
                           symmetric=lay.symmetric_bones, sigma_bone=sb_, max_nfev=100)
        print(f'  BA free focals sigma_bone {sb_}: fa err {100*(ba.focal_a/fa_true-1):+.1f}% fb err {100*(ba.focal_b/fb_true-1):+.1f}% rot {rotation_angle_deg(ba.R @ d["truth"].T):.1f} ({time.time()-t1:.0f}s)')
if "-2d" in sys.argv or "-nm" in sys.argv:
    from mvcapture.geometry.bundle import rigid_skeleton_cost
    NF = float(__import__('os').environ.get('NF', '0.01')); SBONE = float(__import__('os').environ.get('SBONE', '0.05'))
    def rep_cost(fa, fb, R, t):
        R, t, _, _, res = refine_relative_pose(pa, pb, w, R, t, fa, fb, max_nfev=60)
        return float(rigid_skeleton_cost(xa[sub], xb[sub], wa, wb, R, t, fa, fb, bones=lay.rigid_bones, symmetric=lay.symmetric_bones, noise_fraction=NF, sigma_bone=SBONE).sum()), R
    k = sorted(out)[b]
    Rk, tk = refine_relative_pose(pa, pb, w, R0, t0, out[k][1], out[k][2])[:2]
    best = None
    if '-2d' not in sys.argv: tab_skip = True
    tab = []
    for da in ((-2, -1, 0, 1, 2) if '-2d' in sys.argv else ()):
        fa = focal_from_vfov(arr[b, 0] + 1.25 * da, ha)
        row = []
        for mb in (0.75, 0.85, 0.93, 1.0, 1.07, 1.17, 1.3):
            fb = arr[b, 2] * mb
            cst, Rx = rep_cost(fa, fb, Rk, tk)
            row.append(cst)
            if best is None or cst < best[0]:
                best = (cst, fa, fb, rotation_angle_deg(Rx @ d['truth'].T))
        tab.append(row)
    if tab: print(np.round(np.array(tab) - min(map(min, tab))).astype(int))
    if best: print(f'  2D best: fa err {100*(best[1]/fa_true-1):+.1f}% fb err {100*(best[2]/fb_true-1):+.1f}% rot {best[3]:.1f} mean {50*(abs(best[1]/fa_true-1)+abs(best[2]/fb_true-1)):.1f}%')
if '-nm' in sys.argv:
    from scipy.optimize import minimize
    t1 = time.time()
    k = sorted(out)[b]
    Rk, tk = refine_relative_pose(pa, pb, w, R0, t0, out[k][1], out[k][2])[:2]
    cache = {}
    def f2(x):
        fa, fb = np.exp(x)
        c, Rx = rep_cost(fa, fb, Rk, tk)
        cache[tuple(x)] = (c, Rx)
        return c
    x0 = np.log([out[k][1], out[k][2]])
    sim = np.array([x0, x0 + [0.08, 0], x0 + [0, 0.08]])
    sol = minimize(f2, x0, method='Nelder-Mead', options=dict(initial_simplex=sim, xatol=0.004, fatol=0.5, maxfev=60))
    fa, fb = np.exp(sol.x)
    Rx = cache[tuple(sol.x)][1] if tuple(sol.x) in cache else rep_cost(fa, fb, Rk, tk)[1]
    ct, Rt_ = rep_cost(fa_true, fb_true, Rk, tk)
    print(f'  cost at NM {sol.fun:.1f} at truth {ct:.1f} (rot at truth {rotation_angle_deg(Rt_ @ d["truth"].T):.1f})')
    print(f'  NM ({sol.nfev} evals, {time.time()-t1:.0f}s): fa err {100*(fa/fa_true-1):+.1f}% fb err {100*(fb/fb_true-1):+.1f}% rot {rotation_angle_deg(Rx @ d["truth"].T):.1f} mean {50*(abs(fa/fa_true-1)+abs(fb/fb_true-1)):.1f}%')
