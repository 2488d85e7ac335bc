"""Relative pose of two views from point correspondences: Sampson distance, the essential matrix by
5-point RANSAC (OpenCV), its refinement with the focal lengths free, and the choice of each frame's
left/right labelling that fits the epipolar geometry (Hartley & Zisserman, 2nd ed., ch. 9 and 11.4.3).

Correspondences are pixels with the principal point subtracted and lens distortion removed
("centred pixels"): x_px = f · (X/Z, Y/Z). View b sees view a's point X_a at R X_a + t.
"""

from __future__ import annotations

import numpy as np

from mvcapture.geometry.projection import (angles_from_unit_vector, essential_from_Rt, skew,
                                           unit_vector_from_angles)


def fundamental_from_essential(E: np.ndarray, focal_a, focal_b) -> np.ndarray:
    """F = K_b⁻ᵀ E K_a⁻¹ for centred pixels (K = diag(f, f, 1)). E (..., 3, 3), focals (...,) px."""
    fa = np.asarray(focal_a, np.float64)[..., None]
    fb = np.asarray(focal_b, np.float64)[..., None]
    ka = np.stack([1 / fa, 1 / fa, np.ones_like(fa)], -1)   # (..., 1, 3) diagonal of K_a⁻¹
    kb = np.stack([1 / fb, 1 / fb, np.ones_like(fb)], -2)   # (..., 3, 1) diagonal of K_b⁻ᵀ
    return kb * np.asarray(E, np.float64) * ka


def sampson_distance(F: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Signed first-order geometric error (H&Z eq. 11.9) of correspondences under F, in pixels.

    Args:
        F: (3, 3) fundamental matrix with x_bᵀ F x_a = 0.
        xa, xb: (..., 2) points of view a and b (the pixels F is for).

    Returns:
        (...,) x_bᵀ F x_a / sqrt(|F x_a|²₁,₂ + |Fᵀ x_b|²₁,₂); its square is the Sampson distance.
    """
    xa = np.asarray(xa, np.float64)
    xb = np.asarray(xb, np.float64)
    if xa.shape != xb.shape or xa.shape[-1] != 2:
        raise ValueError(f"xa and xb must both have shape (..., 2), got {xa.shape} and {xb.shape}")
    ha = np.concatenate([xa, np.ones(xa.shape[:-1] + (1,))], -1)
    hb = np.concatenate([xb, np.ones(xb.shape[:-1] + (1,))], -1)
    Fxa = ha @ F.T
    Ftxb = hb @ F
    num = (hb * Fxa).sum(-1)
    den = Fxa[..., 0] ** 2 + Fxa[..., 1] ** 2 + Ftxb[..., 0] ** 2 + Ftxb[..., 1] ** 2
    return num / np.sqrt(np.maximum(den, 1e-300))


CHEIRALITY_POINTS = 400  # inliers triangulated to choose among the essential matrices' poses


def essential_ransac(xa_n: np.ndarray, xb_n: np.ndarray, threshold_n: float, seed: int = 0,
                     max_iters: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """5-point RANSAC (Nistér, via cv2.findEssentialMat) + cheirality (cv2.recoverPose).

    Args:
        xa_n, xb_n: (N, 2) normalized image coordinates (N ≥ 5) of the same points in views a and b.
        threshold_n: inlier threshold in normalized units (pixels / focal).

    Returns:
        R (3, 3), t (3,) unit length, inlier mask (N,) bool — or None when no model was found.
    """
    import cv2

    xa_n = np.ascontiguousarray(xa_n, np.float64)
    xb_n = np.ascontiguousarray(xb_n, np.float64)
    if len(xa_n) < 5:
        return None
    cv2.setRNGSeed(seed)
    E, mask = cv2.findEssentialMat(xa_n, xb_n, np.eye(3), method=cv2.RANSAC, prob=0.999,
                                   threshold=float(threshold_n), maxIters=int(max_iters))
    if E is None or E.shape[0] < 3:
        return None
    inliers = np.flatnonzero(mask.ravel() > 0)
    pick = inliers[np.unique(np.linspace(0, len(inliers) - 1, min(len(inliers), CHEIRALITY_POINTS)).astype(int))] \
        if len(inliers) else inliers
    if len(pick) < 5:
        return None
    best = None
    for k in range(E.shape[0] // 3):  # several solutions: keep the one with most points in front
        Ek = E[3 * k: 3 * k + 3]
        n, R, t, _ = cv2.recoverPose(Ek, xa_n[pick], xb_n[pick], np.eye(3))
        if best is None or n > best[0]:
            best = (n, R, t.ravel())
    if best is None or best[0] < 5:
        return None
    return best[1], best[2] / np.linalg.norm(best[2]), mask.ravel() > 0


def rotation_from_vector(rvec: np.ndarray) -> np.ndarray:
    """Rodrigues: (3,) axis·angle (radians) → (3, 3) rotation."""
    rvec = np.asarray(rvec, np.float64)
    theta = np.linalg.norm(rvec)
    if theta < 1e-12:
        return np.eye(3) + skew(rvec)
    k = skew(rvec / theta)
    return np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)


def vector_from_rotation(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation → (3,) axis·angle (radians); inverse of `rotation_from_vector`."""
    import cv2

    return cv2.Rodrigues(np.asarray(R, np.float64))[0].ravel()


def refine_relative_pose(xa_px: np.ndarray, xb_px: np.ndarray, weight: np.ndarray, R: np.ndarray, t: np.ndarray,
                         focal_a: float, focal_b: float, free_focal: tuple[bool, bool] = (False, False),
                         scale_px: float = 4.0, max_nfev: int = 200):
    """Refine R, t (and the free focal lengths) by minimising the robust Sampson error over all correspondences.

    Args:
        xa_px, xb_px: (N, 2) centred pixels of the same points in views a and b.
        weight: (N,) ≥ 0 weights (detection confidences).
        R (3, 3), t (3,): starting relative pose (t's length is ignored).
        focal_a, focal_b: starting focal lengths in pixels; `free_focal` says which ones are estimated.
        scale_px: Cauchy loss scale in pixels (residuals beyond it count less and less).

    Returns:
        R (3, 3), t (3,) unit, focal_a, focal_b, residuals (N,) signed Sampson errors in pixels.
    """
    from scipy.optimize import least_squares

    sw = np.sqrt(np.maximum(np.asarray(weight, np.float64), 0))
    theta, phi = angles_from_unit_vector(t)
    x0 = np.concatenate([vector_from_rotation(R), [theta, phi]])
    logf = np.log([focal_a, focal_b])
    free = [i for i in (0, 1) if free_focal[i]]
    x0 = np.concatenate([x0, logf[free]])

    def unpack(x):
        lf = logf.copy()
        lf[free] = x[5:]
        return rotation_from_vector(x[:3]), unit_vector_from_angles(x[3], x[4]), np.exp(lf)

    def residuals(x):
        Rx, tx, f = unpack(x)
        F = fundamental_from_essential(essential_from_Rt(Rx, tx), f[0], f[1])
        return sw * sampson_distance(F, xa_px, xb_px) / scale_px

    sol = least_squares(residuals, x0, loss="cauchy", f_scale=1.0, max_nfev=max_nfev, x_scale="jac")
    Rx, tx, f = unpack(sol.x)
    F = fundamental_from_essential(essential_from_Rt(Rx, tx), f[0], f[1])
    return Rx, tx, float(f[0]), float(f[1]), sampson_distance(F, xa_px, xb_px)


def choose_side_labels(xa_px: np.ndarray, xb_px: np.ndarray, seen_a: np.ndarray, seen_b: np.ndarray,
                       F: np.ndarray, flip_permutation: np.ndarray, cap_px: float = 30.0,
                       margin_px: float = 20.0, groups=()) -> np.ndarray:
    """Per frame and left/right joint pair, which of view b's detections is which joint (epipolar fit).

    A detector may label the athlete's left side as right in some frames of one view — the whole body or
    one limb group (both legs, both arms). Per frame, the labelling of view b (as detected, or all pairs
    swapped) with the smaller mean of capped Sampson errors against view a wins; then each group of
    `groups` (joint indices holding both sides) is decided on its own where its summed error is smaller
    by more than `margin_px` either way; then each left/right pair likewise (summed over the pair).

    Args:
        xa_px, xb_px: (T, J, 2) centred pixels. seen_a, seen_b: (T, J) bool, joint detected in that view.
        F: (3, 3) fundamental matrix for these pixels. flip_permutation: (J,) index of each joint's mirror.
        cap_px: errors are capped here so one bad joint cannot decide a frame.
        groups: joint index tuples, each closed under `flip_permutation` (e.g. both legs).

    Returns:
        (T, J) int: for each joint of view a, the index of view b's detection to pair it with.
    """
    perm = np.asarray(flip_permutation)
    J = len(perm)
    ident = np.arange(J)
    errs, seens = [], []
    for p in (ident, perm):
        err = np.minimum(np.abs(sampson_distance(F, xa_px, xb_px[:, p])), cap_px)
        both = seen_a & seen_b[:, p]
        errs.append(np.where(both, err, cap_px))
        seens.append(both)
    frame_score = [np.where(b, e, 0.0).sum(-1) / np.maximum(b.sum(-1), 1) + np.where(b.sum(-1) > 0, 0.0, cap_px)
                   for e, b in zip(errs, seens)]
    frame_swap = frame_score[1] < frame_score[0]                           # (T,)
    vote = np.repeat(frame_swap[:, None], J, axis=1)                       # (T, J)
    for group in groups:
        g = np.asarray(group)
        same = np.where(seens[0][:, g], errs[0][:, g], 0.0).sum(-1)
        swap = np.where(seens[1][:, g], errs[1][:, g], 0.0).sum(-1)
        # compared over the same joints: a joint seen one way only counts as capped the other way
        same = same + (seens[1][:, g] & ~seens[0][:, g]).sum(-1) * cap_px
        swap = swap + (seens[0][:, g] & ~seens[1][:, g]).sum(-1) * cap_px
        clear = np.where(swap < same - margin_px, True, np.where(same < swap - margin_px, False, frame_swap))
        vote[:, g] = clear[:, None]
    pair_same = errs[0] + errs[0][:, perm]                                  # (T, J): the pair's summed error
    pair_swap = errs[1] + errs[1][:, perm]
    decided = np.where(pair_swap < pair_same - margin_px, True,
                       np.where(pair_same < pair_swap - margin_px, False, vote))
    decided = np.where(perm == ident, False, decided)
    return np.where(decided, perm[None, :], ident[None, :])
