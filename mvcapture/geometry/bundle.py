"""Two-view bundle adjustment of keypoint tracks with priors on the human body: relative pose, focal
lengths and every frame's 3D joints, with bone lengths constant over time and left/right limbs of equal
length as soft priors (Triggs et al., "Bundle adjustment — a modern synthesis"; scipy's sparse
trust-region least squares with a robust loss).

Units: centred pixels (principal point subtracted, distortion removed); 3D in view a's camera frame in
units of the baseline (|t| = 1). View b sees X_a at R X_a + t.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mvcapture.geometry.essential import rotation_from_vector, vector_from_rotation
from mvcapture.geometry.projection import angles_from_unit_vector, unit_vector_from_angles

# COCO-17 limbs whose length is constant over time (joint-centre-like keypoints; the face is left out)
COCO17_RIGID_BONES = ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16),
                      (5, 11), (6, 12), (5, 6), (11, 12))
# pairs of indices into the rigid bones: left and right limb of the same kind
COCO17_SYMMETRIC_BONES = ((0, 2), (1, 3), (4, 6), (5, 7), (8, 9))


@dataclass
class BundleResult:
    """R (3, 3), t (3,) unit, focal_a/focal_b px, points (N, J, 3) NaN where not estimated,
    reprojection_px (2, N, J) NaN where not observed, bone_lengths (n_bones,) baseline units, cost."""

    R: np.ndarray
    t: np.ndarray
    focal_a: float
    focal_b: float
    points: np.ndarray
    reprojection_px: np.ndarray
    bone_lengths: np.ndarray
    cost: float
    success: bool


def bundle_adjust(xa_px: np.ndarray, xb_px: np.ndarray, weight_a: np.ndarray, weight_b: np.ndarray,
                  R: np.ndarray, t: np.ndarray, focal_a: float, focal_b: float, points0: np.ndarray,
                  free_focal: tuple[bool, bool] = (False, False), bones=COCO17_RIGID_BONES,
                  symmetric=COCO17_SYMMETRIC_BONES, sigma_px: float = 4.0, sigma_bone: float = 0.06,
                  sigma_symmetry: float = 0.08, max_nfev: int = 60) -> BundleResult:
    """Adjust R, t, the free focal lengths and the 3D joints of N frames together.

    Args:
        xa_px, xb_px: (N, J, 2) centred pixels. weight_a, weight_b: (N, J) ≥ 0 (0 = not seen); a joint
            enters only where both weights are positive and `points0` is finite.
        R, t, focal_a, focal_b: start (from `refine_relative_pose`). points0: (N, J, 3) start (triangulated).
        free_focal: which focal lengths are estimated.
        bones: (parent, child) joint pairs of constant length; symmetric: pairs of indices into `bones`.
        sigma_px, sigma_bone, sigma_symmetry: the residuals' scales (pixels; relative length deviations).

    Returns:
        BundleResult.
    """
    from scipy.optimize import least_squares
    from scipy.sparse import coo_matrix

    xa = np.asarray(xa_px, np.float64)
    xb = np.asarray(xb_px, np.float64)
    N, J = xa.shape[:2]
    use = (weight_a > 0) & (weight_b > 0) & np.isfinite(points0).all(-1)
    pidx = np.full((N, J), -1)
    pidx[use] = np.arange(use.sum())
    K = int(use.sum())
    swa = np.sqrt(weight_a[use])[:, None]
    swb = np.sqrt(weight_b[use])[:, None]
    oa, ob = xa[use], xb[use]
    bones = np.asarray(bones, int)
    bp, bc = pidx[:, bones[:, 0]], pidx[:, bones[:, 1]]        # (N, nb)
    bone_ok = (bp >= 0) & (bc >= 0)
    bn, bk = np.nonzero(bone_ok)
    b_par, b_chi = bp[bn, bk], bc[bn, bk]
    bw = np.sqrt(np.minimum(np.minimum(weight_a[bn, bones[bk, 0]], weight_a[bn, bones[bk, 1]]),
                            np.minimum(weight_b[bn, bones[bk, 0]], weight_b[bn, bones[bk, 1]])))
    nb = len(bones)
    sym = np.asarray(symmetric, int).reshape(-1, 2)
    free = [i for i in (0, 1) if free_focal[i]]
    nf = len(free)
    logf0 = np.log([focal_a, focal_b])

    lengths0 = np.linalg.norm(points0[:, bones[:, 1]] - points0[:, bones[:, 0]], axis=-1)
    lengths0 = np.where(bone_ok, lengths0, np.nan)
    with warnings.catch_warnings():   # a bone whose joints never enter (e.g. a derived joint) has no length
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(lengths0, axis=0) if bone_ok.any() else np.ones(nb)
    med = np.where(np.isfinite(med) & (med > 0), med, np.nanmedian(med) if np.isfinite(med).any() else 1.0)
    theta, phi = angles_from_unit_vector(t)
    x0 = np.concatenate([vector_from_rotation(R), [theta, phi], logf0[free], np.log(med), points0[use].ravel()])
    n_cam = 5 + nf
    o_len = n_cam
    o_pts = n_cam + nb

    def unpack(x):
        lf = logf0.copy()
        lf[free] = x[5:5 + nf]
        return (rotation_from_vector(x[:3]), unit_vector_from_angles(x[3], x[4]), np.exp(lf),
                x[o_len:o_pts], x[o_pts:].reshape(K, 3))

    def project(X, f):
        z = np.maximum(X[:, 2:3], 1e-6)
        return f * X[:, :2] / z

    def residuals(x):
        Rx, tx, f, loglen, X = unpack(x)
        Xb = X @ Rx.T + tx
        ra = swa * (project(X, f[0]) - oa) / sigma_px
        rb = swb * (project(Xb, f[1]) - ob) / sigma_px
        length = np.linalg.norm(X[b_chi] - X[b_par], axis=-1)
        rl = bw * (np.log(np.maximum(length, 1e-9)) - loglen[bk]) / sigma_bone
        rs = (loglen[sym[:, 0]] - loglen[sym[:, 1]]) / sigma_symmetry
        return np.concatenate([ra.ravel(), rb.ravel(), rl, rs])

    # sparsity pattern of the Jacobian
    rows, cols = [], []
    pt_cols = o_pts + 3 * np.arange(K)[:, None] + np.arange(3)           # (K, 3)
    r_a = np.arange(2 * K).reshape(K, 2)
    r_b = 2 * K + r_a
    for r in (r_a, r_b):
        rows.append(np.repeat(r, 3, axis=1).ravel())
        cols.append(np.tile(pt_cols, (1, 2)).reshape(K, 2, 3).ravel())
    rows.append(np.repeat(r_b.ravel(), 5))
    cols.append(np.tile(np.arange(5), 2 * K))
    for i, v in enumerate(free):
        rows.append((r_a if v == 0 else r_b).ravel())
        cols.append(np.full(2 * K, 5 + i))
    base = 4 * K
    nbr = len(bn)
    rb_idx = base + np.arange(nbr)
    rows += [np.repeat(rb_idx, 3), np.repeat(rb_idx, 3), rb_idx]
    cols += [pt_cols[b_par].ravel(), pt_cols[b_chi].ravel(), o_len + bk]
    rs_idx = base + nbr + np.arange(len(sym))
    rows += [rs_idx, rs_idx]
    cols += [o_len + sym[:, 0], o_len + sym[:, 1]]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    n_res = base + nbr + len(sym)
    pattern = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_res, len(x0))).tocsr()
    pattern.data[:] = 1

    sol = least_squares(residuals, x0, jac_sparsity=pattern, loss="huber", f_scale=1.5, method="trf",
                        tr_solver="lsmr", x_scale="jac", max_nfev=max_nfev)
    Rx, tx, f, loglen, X = unpack(sol.x)
    points = np.full((N, J, 3), np.nan)
    points[use] = X
    rep = np.full((2, N, J), np.nan)
    rep[0][use] = np.linalg.norm(project(X, f[0]) - oa, axis=-1)
    rep[1][use] = np.linalg.norm(project(X @ Rx.T + tx, f[1]) - ob, axis=-1)
    return BundleResult(Rx, tx, float(f[0]), float(f[1]), points, rep, np.exp(loglen), float(sol.cost),
                        bool(sol.success))


def expected_error_px(x_px: np.ndarray, weight: np.ndarray, fraction: float = 0.01) -> np.ndarray:
    """A detector's expected keypoint error per frame: `fraction` × the diagonal of the athlete's 2D box.

    Args:
        x_px: (T, J, 2) pixels. weight: (T, J) ≥ 0 (0 = not seen).

    Returns:
        (T,) pixels, at least 0.5; a frame with fewer than two joints seen gets the median frame's.
    """
    seen = weight > 0
    lo = np.where(seen[..., None], x_px, np.inf).min(1)
    hi = np.where(seen[..., None], x_px, -np.inf).max(1)
    diag = np.where(seen.sum(1) >= 2, np.linalg.norm(hi - lo, axis=-1), np.nan)
    fill = np.nanmedian(diag) if np.isfinite(diag).any() else 100.0
    return np.maximum(fraction * np.where(np.isfinite(diag), diag, fill), 0.5)


def rigid_skeleton_cost(xa_px: np.ndarray, xb_px: np.ndarray, weight_a: np.ndarray, weight_b: np.ndarray,
                        R: np.ndarray, t: np.ndarray, focal_a: float, focal_b: float, bones=COCO17_RIGID_BONES,
                        symmetric=COCO17_SYMMETRIC_BONES, noise_fraction: float = 0.02, sigma_bone: float = 0.05,
                        iterations: int = 6) -> np.ndarray:
    """How well one rigid skeleton seen by the cameras (R, t, focal_a, focal_b) explains both views' keypoints.

    Each frame is triangulated and refined with the bone lengths held constant over the frames
    (`refine_points_with_bones`); the cost is Σ weight · log(1 + e²) over both views' joints, e the
    reprojection error in units of the detector's expected error (`expected_error_px`). Camera hypotheses
    that fit the epipolar geometry equally well — the focal lengths along the one-parameter family left
    when the two optical axes (nearly) meet, the usual set-up — differ here: with the wrong focal lengths
    the reconstruction is stretched, and bones that keep their length cannot reproject onto the keypoints
    as the athlete turns and moves through depth.

    Args:
        xa_px, xb_px: (T, J, 2) centred pixels (view b in view a's joint labels).
        weight_a, weight_b: (T, J) ≥ 0 confidences (0 = not seen).
        R (3, 3), t (3,): view a's frame → view b's; focal_a, focal_b: pixels.
        bones, symmetric, noise_fraction, sigma_bone: as `refine_points_with_bones`; the default error, 2 % of
            the athlete's box diagonal, is the one measured for MediaPipe on the bundled recording (per axis
            1.0–1.8 %, resources/noise). Assumed much smaller, the skeleton is held to wide-angle hypotheses:
            on the bench's synthetic sessions 1 % made the median focal error 7.0 %, against 3.0 % with 2 %.

    Returns:
        (T,) cost per frame (0 for a frame with no joint seen by both views).
    """
    from mvcapture.geometry.triangulation import triangulate_points, two_view_projections

    xa = np.nan_to_num(np.asarray(xa_px, np.float64))
    xb = np.nan_to_num(np.asarray(xb_px, np.float64))
    wa, wb = np.maximum(np.nan_to_num(weight_a), 0.0), np.maximum(np.nan_to_num(weight_b), 0.0)
    R, t = np.asarray(R, np.float64), np.asarray(t, np.float64).reshape(3)
    X = triangulate_points(two_view_projections(R, t, focal_a, focal_b), np.stack([xa, xb]), np.stack([wa, wb]))
    X = refine_points_with_bones(X, xa, xb, wa, wb, R, t, focal_a, focal_b, bones=bones, symmetric=symmetric,
                                 noise_fraction=noise_fraction, sigma_bone=sigma_bone, iterations=iterations)
    cost = np.zeros(X.shape[0])
    for Xv, f, x, w in ((X, focal_a, xa, wa), (X @ R.T + t, focal_b, xb, wb)):
        z = Xv[..., 2]
        valid = np.isfinite(z) & (w > 0)
        front = valid & (z > 1e-9)
        proj = f * Xv[..., :2] / np.where(front, z, 1.0)[..., None]
        e = np.linalg.norm(proj - x, axis=-1) / expected_error_px(x, w, noise_fraction)[:, None]
        # a joint behind the camera counts as badly as an outlier ten expected errors off
        cost += np.where(front, w * np.log1p(np.minimum(e, 1e6) ** 2),
                         np.where(valid, w * np.log1p(100.0), 0.0)).sum(-1)
    return cost


def refine_points_with_bones(points: np.ndarray, xa_px: np.ndarray, xb_px: np.ndarray, weight_a: np.ndarray,
                             weight_b: np.ndarray, R: np.ndarray, t: np.ndarray, focal_a: float, focal_b: float,
                             bones=COCO17_RIGID_BONES, symmetric=COCO17_SYMMETRIC_BONES,
                             noise_fraction: float = 0.01, sigma_bone: float = 0.05, huber: float = 2.0,
                             iterations: int = 4) -> np.ndarray:
    """Each frame's triangulated joints refined with the cameras fixed: reprojection error in both views
    plus constant bone lengths over the recording (soft), by a batched Gauss-Newton with Huber weights.

    The pixel residuals are measured in units of the detector's expected error in that frame and view,
    `noise_fraction` × the diagonal of the athlete's 2D box (a detector's error grows with the person's
    size in the picture), so a view that sees the athlete small is not trusted more than it should be.
    Bone lengths are the track's median lengths, left and right limbs of one kind averaged; a bone deviates
    by `sigma_bone` (relative) at one unit of cost. Joints not triangulated stay NaN and constrain nothing.

    Args:
        points: (T, J, 3) triangulated joints in view a's frame (baseline units; NaN = not triangulated).
        xa_px, xb_px: (T, J, 2) centred pixels of views a and b (view b already in view a's joint labels).
        weight_a, weight_b: (T, J) ≥ 0 confidences (0 = not seen).
        R (3, 3), t (3,): view a's frame → view b's; focal_a, focal_b: pixels.
        bones: (parent, child) joint pairs of constant length; symmetric: pairs of indices into `bones`.

    Returns:
        (T, J, 3) refined points, NaN where `points` is.
    """
    X = np.array(points, np.float64)
    T, J = X.shape[:2]
    ok = np.isfinite(X).all(-1)
    if not ok.any():
        return X
    xa = np.nan_to_num(np.asarray(xa_px, np.float64))
    xb = np.nan_to_num(np.asarray(xb_px, np.float64))
    R = np.asarray(R, np.float64)
    t = np.asarray(t, np.float64)
    wa = np.where(ok, np.maximum(np.nan_to_num(weight_a), 0.0), 0.0)
    wb = np.where(ok, np.maximum(np.nan_to_num(weight_b), 0.0), 0.0)

    sa, sb = expected_error_px(xa, wa, noise_fraction), expected_error_px(xb, wb, noise_fraction)
    bones = np.asarray(bones, int).reshape(-1, 2)
    nb = len(bones)
    lengths = np.linalg.norm(X[:, bones[:, 1]] - X[:, bones[:, 0]], axis=-1)   # (T, nb), NaN where unknown
    L = np.array([np.nanmedian(lengths[:, k]) if np.isfinite(lengths[:, k]).any() else np.nan for k in range(nb)])
    for i, j in np.asarray(symmetric, int).reshape(-1, 2):
        if np.isfinite(L[i]) and np.isfinite(L[j]):
            L[i] = L[j] = 0.5 * (L[i] + L[j])
    bone_ok = ok[:, bones[:, 0]] & ok[:, bones[:, 1]] & np.isfinite(L)                 # (T, nb)
    cols = 3 * np.arange(J)[:, None] + np.arange(3)                                      # (J, 3)
    joints = np.arange(J)

    def view_terms(Xv, Rv, f, obs, w, s):
        """Per joint: residual (T, J, 2) in noise units and its Jacobian wrt X (T, J, 2, 3)."""
        z = np.where(ok, Xv[..., 2], 1.0)
        z = np.where(np.abs(z) < 1e-9, 1e-9, z)
        r = (f * Xv[..., :2] / z[..., None] - obs) / s[:, None, None]
        Jp = np.zeros((T, J, 2, 3))
        Jp[..., 0, 0] = f / z
        Jp[..., 1, 1] = f / z
        Jp[..., :, 2] = -f * Xv[..., :2] / (z * z)[..., None]
        return r, (Jp @ Rv) / s[:, None, None, None]

    for _ in range(iterations):
        Xs = np.where(ok[..., None], X, 0.0)
        H = np.zeros((T, 3 * J, 3 * J))
        H5 = H.reshape(T, J, 3, J, 3)                                                     # a view of H
        g = np.zeros((T, 3 * J))
        blocks = 0.0
        for Rv, tv, f, obs, w, s in ((np.eye(3), np.zeros(3), focal_a, xa, wa, sa), (R, t, focal_b, xb, wb, sb)):
            r, Jr = view_terms(Xs @ Rv.T + tv, Rv, f, obs, w, s)
            norm = np.linalg.norm(r, axis=-1)
            rw = w * np.where(norm > huber, huber / np.maximum(norm, 1e-12), 1.0)          # (T, J) IRLS weights
            JrT = np.swapaxes(Jr, -1, -2) * rw[..., None, None]                          # (T, J, 3, 2)
            blocks = blocks + JrT @ Jr                                                    # (T, J, 3, 3)
            g += (JrT @ r[..., None])[..., 0].reshape(T, 3 * J)
        H5[:, joints, :, joints, :] += np.moveaxis(blocks, 1, 0)
        d = Xs[:, bones[:, 1]] - Xs[:, bones[:, 0]]                                       # (T, nb, 3)
        length = np.linalg.norm(d, axis=-1)
        u = d / np.maximum(length, 1e-12)[..., None]
        scale = sigma_bone * np.where(np.isfinite(L), L, 1.0)
        rl = np.where(bone_ok, (length - np.nan_to_num(L)) / scale, 0.0)                  # (T, nb)
        bw = np.where(bone_ok, np.where(np.abs(rl) > huber, huber / np.maximum(np.abs(rl), 1e-12), 1.0), 0.0)
        Ju = u / scale[:, None]                                                           # d rl / d X_child
        outer = bw[..., None, None] * Ju[..., :, None] * Ju[..., None, :]                # (T, nb, 3, 3)
        gb = (bw * rl)[..., None] * Ju                                                    # (T, nb, 3)
        for k, (p, c) in enumerate(bones):
            H5[:, c, :, c, :] += outer[:, k]
            H5[:, p, :, p, :] += outer[:, k]
            H5[:, c, :, p, :] -= outer[:, k]
            H5[:, p, :, c, :] -= outer[:, k]
            g[:, cols[c]] += gb[:, k]
            g[:, cols[p]] -= gb[:, k]
        # joints not triangulated: fixed; a little damping keeps every step well posed
        fixed = np.repeat(~ok, 3, axis=1)
        diag = np.einsum("tii->ti", H)
        H[:, np.arange(3 * J), np.arange(3 * J)] = np.where(fixed, 1.0, diag * 1.001 + 1e-9)
        g = np.where(fixed, 0.0, g)
        step = np.linalg.solve(H, -g[..., None])[..., 0]
        X = np.where(ok[..., None], X + step.reshape(T, J, 3), np.nan)
    return X
