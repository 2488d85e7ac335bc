"""Headless drawing with OpenCV: 2D skeleton overlays and a simple 3D skeleton view.

Used by the headless demo (a rendered image) and by the side-by-side MP4 export; the GUI draws with
pyqtgraph instead. Colours are BGR tuples.
"""

from __future__ import annotations

import cv2
import numpy as np

from mvcapture.core.skeleton import H36M17_BONES, H36M17_LEFT

VIEW_COLOURS_BGR = ((235, 140, 40), (40, 120, 240), (80, 200, 80), (200, 80, 200))


def draw_skeleton_2d(image: np.ndarray, kp2d_px: np.ndarray, conf: np.ndarray, colour=(0, 255, 0),
                     min_conf: float = 0.05, thickness: int | None = None) -> np.ndarray:
    """Draw an H36M-17 skeleton on a BGR image in place (joints with conf < min_conf are skipped).

    Args:
        image: (H, W, 3) uint8 BGR.
        kp2d_px: (17, 2) pixels. conf: (17,).
    """
    h, w = image.shape[:2]
    thickness = thickness or max(2, int(round(min(h, w) / 200)))
    ok = (conf >= min_conf) & np.all(np.isfinite(kp2d_px), axis=-1)
    pts = np.round(np.nan_to_num(kp2d_px)).astype(int)
    left = set(H36M17_LEFT)
    for a, b in H36M17_BONES:
        if ok[a] and ok[b]:
            c = tuple(int(v * 0.6) for v in colour) if b in left else colour
            cv2.line(image, tuple(pts[a]), tuple(pts[b]), c, thickness, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        cv2.circle(image, tuple(pts[j]), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return image


def _view_rotation(azim_deg: float, elev_deg: float) -> np.ndarray:
    a, e = np.radians(azim_deg), np.radians(elev_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
    return rx @ ry


def render_skeletons_3d(poses_m: np.ndarray, size: tuple[int, int] = (480, 480), azim_deg: float = 30.0,
                        elev_deg: float = 15.0, colours=VIEW_COLOURS_BGR, joint_error_mm: np.ndarray | None = None,
                        extent_m: float = 1.1, background=(30, 30, 30)) -> np.ndarray:
    """Orthographic view of several 3D skeletons of one frame in one camera frame (y down).

    Args:
        poses_m: (N, 17, 3) metres, root-relative, camera frame (x right, y down, z forward).
        size: (width, height) of the output image in pixels.
        joint_error_mm: optional (17,) per-joint disagreement; joints drawn green → red (0 → 100 mm), grey
            where it is NaN.
        extent_m: half the visible height in metres.

    Returns:
        (height, width, 3) uint8 BGR image with a ground grid under the feet.
    """
    width, height = size
    img = np.full((height, width, 3), background, np.uint8)
    rot = _view_rotation(azim_deg, elev_deg)
    scale = height / (2 * extent_m)
    centre = np.array([width / 2, height / 2])

    def project(p):
        q = p @ rot.T
        return q[..., :2] * scale + centre

    finite = poses_m[np.isfinite(poses_m).all(-1)]
    floor_y = float(finite[:, 1].max()) if finite.size else 0.9
    grid = np.linspace(-1.0, 1.0, 9)
    for g in grid:
        for p0, p1 in (([g, floor_y, -1.0], [g, floor_y, 1.0]), ([-1.0, floor_y, g], [1.0, floor_y, g])):
            a, b = project(np.array([p0, p1]))
            cv2.line(img, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), (70, 70, 70), 1, cv2.LINE_AA)
    for i, pose in enumerate(poses_m):
        pts = np.round(project(np.nan_to_num(pose))).astype(int)
        colour = colours[i % len(colours)]
        for a, b in H36M17_BONES:
            cv2.line(img, tuple(pts[a]), tuple(pts[b]), colour, 3, cv2.LINE_AA)
        for j in range(17):
            if joint_error_mm is not None and not np.isfinite(joint_error_mm[j]):
                jc = (160, 160, 160)  # no residual for this joint (not seen in some view)
            elif joint_error_mm is not None:
                r = float(np.clip(joint_error_mm[j] / 100.0, 0, 1))
                jc = (0, int(255 * (1 - r)), int(255 * r))
            else:
                jc = colour
            cv2.circle(img, tuple(pts[j]), 5, jc, -1, cv2.LINE_AA)
    return img


def fit_height(image: np.ndarray, height: int) -> np.ndarray:
    """Resize keeping the aspect ratio so the image is `height` pixels tall."""
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, int(round(w * height / h))), height), interpolation=cv2.INTER_AREA)


def put_label(image: np.ndarray, text: str, origin=(10, 28), colour=(255, 255, 255), scale: float = 0.7) -> np.ndarray:
    """Write `text` with a dark outline (readable on any background); `scale` is OpenCV's font scale."""
    thickness = max(1, int(round(2 * scale / 0.7)))
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return image
