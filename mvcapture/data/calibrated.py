"""A calibrated multi-camera recording (Qualisys `.qca.txt` calibration + per-camera COCO-17 detections) and
its reference 3D: all cameras triangulated, with per-frame left/right side correction and outlier views dropped.

Numeric code only (numpy, OpenCV for undistortion); the evaluation of a lifter against it is in
`mvcapture.data.recording_eval`. World coordinates are the calibration's, in metres.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mvcapture.core.skeleton import COCO17_FLIP_PERMUTATION, coco_to_h36m
from mvcapture.errors import MvcaptureError

CALIBRATION_GLOB = "*.qca.txt"
DETECTIONS_DIR = "detections"
DETECTIONS_PATTERN = "{name}_coco17.npz"
QUALISYS_UNITS_PER_PX = 64.0  # Qualisys intrinsics are in sensor units, 64 per pixel of the video
MM_PER_M = 1000.0
# Our camera frame (x right, y down, z forward) from Qualisys' (x right, y up, looking along -z).
QUALISYS_TO_CAMERA = np.diag([1.0, -1.0, -1.0])
MIN_CONF = 0.05          # a detection below this confidence takes no part in the triangulation
SIDE_ERROR_CAP_PX = 100.0  # per-joint reprojection error cap when choosing each camera's left/right sides
OUTLIER_PX = 40.0        # a view whose reprojection of a joint is farther than this is dropped (≥ 2 views kept)
MAX_SIDE_SEARCH_VIEWS = 10
# The video may be a few pixels narrower than the calibrated sensor window (codecs pad to 16; cam01 of the
# Pose2Sim demo: 1080 against 1088); the detections' image size is the video's and is the one kept.
SIZE_SLACK_PX = 16  # side correction tries all 2^V side assignments per frame


class InvalidRecordingError(MvcaptureError, ValueError):
    """A calibrated recording folder that is missing files or holds unreadable / inconsistent ones."""


@dataclass(frozen=True)
class CalibratedCamera:
    """One calibrated camera: x_cam = R @ x_world + t (metres; camera frame x right, y down, z forward),
    pixels = K · distort(x_cam / z) with OpenCV's (k1, k2, p1, p2, k3) model."""

    name: str
    K: np.ndarray          # (3, 3) pixels
    dist: np.ndarray       # (5,) k1, k2, p1, p2, k3
    R: np.ndarray          # (3, 3) world → camera
    t: np.ndarray          # (3,) metres
    image_size: np.ndarray  # (2,) width, height in pixels

    @property
    def centre(self) -> np.ndarray:
        """(3,) camera centre in world metres."""
        return -self.R.T @ self.t

    @property
    def P(self) -> np.ndarray:
        """(3, 4) pinhole projection K [R | t] (without distortion)."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    def project(self, world_m: np.ndarray) -> np.ndarray:
        """(..., 3) world metres → (..., 2) pixels, lens distortion applied (NaN stays NaN)."""
        cam = to_camera(world_m, self)
        xy = cam[..., :2] / cam[..., 2:]
        k1, k2, p1, p2, k3 = self.dist
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        K = self.K
        return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], -1)

    def undistort(self, px: np.ndarray) -> np.ndarray:
        """(..., 2) distorted pixels → (..., 2) pixels of the ideal pinhole camera K (OpenCV's iterative
        inverse of the distortion)."""
        import cv2

        px = np.asarray(px, np.float64)
        flat = px.reshape(-1, 1, 2)
        out = cv2.undistortPoints(flat, self.K, self.dist, P=self.K)
        return out.reshape(px.shape)


@dataclass
class Recording:
    """A synchronized recording by V calibrated cameras, with each camera's COCO-17 detections of the athlete."""

    folder: Path
    cameras: list[CalibratedCamera]
    kp2d_coco_px: np.ndarray  # (V, T, 17, 2) pixels as detected, COCO-17
    conf_coco: np.ndarray     # (V, T, 17) in [0, 1], 0 = missing
    fps: float

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    def num_frames(self) -> int:
        return int(self.kp2d_coco_px.shape[1])

    def camera(self, name: str) -> CalibratedCamera:
        for cam in self.cameras:
            if cam.name == name or cam.name == f"cam{name}":
                return cam
        raise InvalidRecordingError(f"{self.folder}: no camera {name!r} (cameras: {', '.join(self.names)})")

    def index(self, name: str) -> int:
        return self.cameras.index(self.camera(name))


def to_camera(world_m: np.ndarray, cam: CalibratedCamera) -> np.ndarray:
    """(..., 3) world metres → (..., 3) metres in the camera frame of `cam` (x right, y down, z forward)."""
    return np.asarray(world_m, np.float64) @ cam.R.T + cam.t


def read_qualisys_calibration(path: Path | str) -> list[CalibratedCamera]:
    """Cameras of a Qualisys calibration file (`.qca.txt`, XML), in file order.

    Each `<camera>` has a `transform` (rotation r11..r33 whose rows are the camera axes in world
    coordinates, the camera looking along −(third row), and its position x, y, z in mm), an `intrinsic`
    block in sensor units (focal length and principal point, 64 units per pixel; radial and tangential
    distortion) and the `fov_video` pixel window that gives the image size.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise InvalidRecordingError(f"{path}: not a readable Qualisys calibration ({exc})") from exc
    cameras = []
    for node in root.iter("camera"):
        name = node.attrib.get("serial", f"cam{len(cameras) + 1:02d}")
        try:
            tr, intr, fov = node.find("transform").attrib, node.find("intrinsic").attrib, node.find("fov_video").attrib
            R_q = np.array([[float(tr[f"r{a}{b}"]) for b in "123"] for a in "123"])
            centre = np.array([float(tr[k]) for k in "xyz"]) / MM_PER_M
            fu, fv = float(intr["focalLengthU"]), float(intr["focalLengthV"])
            cu, cv = float(intr["centerPointU"]), float(intr["centerPointV"])
            dist = np.array([float(intr["radialDistortion1"]), float(intr["radialDistortion2"]),
                             float(intr["tangentalDistortion1"]), float(intr["tangentalDistortion2"]),
                             float(intr.get("radialDistortion3", 0.0))])
            left, top = int(fov["left"]), int(fov["top"])
            size = np.array([int(fov["right"]) - left + 1, int(fov["bottom"]) - top + 1])
        except (AttributeError, KeyError, ValueError) as exc:
            raise InvalidRecordingError(f"{path}: camera {name} lacks transform / intrinsic / fov_video values "
                                        f"({exc!r}); expected a Qualisys .qca.txt export") from exc
        s = QUALISYS_UNITS_PER_PX
        K = np.array([[fu / s, 0.0, cu / s - left], [0.0, fv / s, cv / s - top], [0.0, 0.0, 1.0]])
        R = QUALISYS_TO_CAMERA @ R_q
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4):
            raise InvalidRecordingError(f"{path}: camera {name}'s rotation r11..r33 is not orthonormal")
        cameras.append(CalibratedCamera(name, K, dist, R, -R @ centre, size))
    if len(cameras) < 2:
        raise InvalidRecordingError(f"{path}: {len(cameras)} camera(s) found, a calibrated recording needs ≥ 2")
    return cameras


def load_calibrated_recording(folder: Path | str) -> Recording:
    """A recording folder: one `*.qca.txt` calibration and `detections/<camera>_coco17.npz` per camera
    (`keypoints` (T, 17, 2) px, `scores` (T, 17), `image_size` (2,), `fps`; COCO-17, FORMATS.md).

    Cameras without a detections file are left out (at least two must remain); all must have T frames.
    """
    folder = Path(folder)
    calibs = sorted(folder.glob(CALIBRATION_GLOB))
    if len(calibs) != 1:
        raise InvalidRecordingError(f"{folder}: expected one Qualisys calibration {CALIBRATION_GLOB}, found "
                                    f"{len(calibs)}")
    cameras, kps, confs, fps = [], [], [], None
    for cam in read_qualisys_calibration(calibs[0]):
        path = folder / DETECTIONS_DIR / DETECTIONS_PATTERN.format(name=cam.name)
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                kp = np.asarray(data["keypoints"], np.float64)
                conf = np.asarray(data["scores"], np.float64)
                size = np.asarray(data["image_size"]).reshape(-1)
                cam_fps = float(data["fps"])
        except (OSError, KeyError, ValueError) as exc:
            raise InvalidRecordingError(f"{path}: unreadable detections ({exc}); expected keys keypoints, "
                                        f"scores, image_size, fps") from exc
        if kp.ndim != 3 or kp.shape[1:] != (17, 2) or conf.shape != kp.shape[:2]:
            raise InvalidRecordingError(f"{path}: keypoints must be (T, 17, 2) and scores (T, 17), got "
                                        f"{kp.shape} and {conf.shape}")
        if kps and len(kp) != len(kps[0]):
            raise InvalidRecordingError(f"{path}: {len(kp)} frames, but {cameras[0].name} has {len(kps[0])}; "
                                        f"the cameras of a recording must be synchronized frame by frame")
        if size.shape != (2,) or np.abs(size - cam.image_size).max() > SIZE_SLACK_PX:
            raise InvalidRecordingError(f"{path}: image_size {size.tolist()} differs from the calibration's "
                                        f"{cam.image_size.tolist()} for {cam.name}")
        cam = replace(cam, image_size=size.astype(np.int64))
        conf = np.where(np.isfinite(kp).all(-1), np.clip(conf, 0.0, 1.0), 0.0)
        kps.append(np.where(conf[..., None] > 0, kp, 0.0))
        confs.append(conf)
        cameras.append(cam)
        fps = cam_fps if fps is None else fps
    if len(cameras) < 2:
        raise InvalidRecordingError(f"{folder}: detections for {len(cameras)} calibrated camera(s) in "
                                    f"{DETECTIONS_DIR}/ (named like {DETECTIONS_PATTERN.format(name='cam01')}); "
                                    f"need at least 2")
    return Recording(folder, cameras, np.stack(kps), np.stack(confs), float(fps))


def _dlt(points_px: np.ndarray, weights: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Weighted linear triangulation (Hartley & Zisserman 12.2, DLT).

    Shape: points_px (..., V, 2) undistorted pixels, weights (..., V) (0 = unused), P (V, 3, 4) →
    (..., 3) points; NaN where fewer than two views have weight.
    """
    rows = points_px[..., :, :, None] * P[:, 2][:, None, :] - P[:, :2]  # (..., V, 2, 4)
    rows = rows * weights[..., :, None, None]
    A = rows.reshape(*rows.shape[:-3], -1, 4)
    _, _, vt = np.linalg.svd(A)
    X = vt[..., -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = X[..., :3] / X[..., 3:]
    out[(weights > 0).sum(-1) < 2] = np.nan
    return out


def _reprojection_px(world: np.ndarray, points_px: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(..., 3) points, (..., V, 2) undistorted pixels, (V, 3, 4) → (..., V) pinhole reprojection errors (px)."""
    h = np.concatenate([world, np.ones(world.shape[:-1] + (1,))], -1)
    proj = np.einsum("vij,...j->...vi", P, h)
    return np.linalg.norm(proj[..., :2] / proj[..., 2:] - points_px, axis=-1)


@dataclass
class ReferenceTriangulation:
    """The reference 3D of a recording and how it was made.

    world_coco_m: (T, 17, 3) COCO-17 joints in world metres (NaN where < 2 views remained).
    swapped: (T, V) bool, the frames where a camera's left and right sides were exchanged.
    used: (T, V, 17) bool, the views each joint was triangulated from.
    reprojection_px: (T, V, 17) distance of each detection from the reprojected joint (distortion applied).
    """

    world_coco_m: np.ndarray
    swapped: np.ndarray
    used: np.ndarray
    reprojection_px: np.ndarray

    def h36m(self) -> np.ndarray:
        """(T, 17, 3) H36M-17 world metres (core.skeleton.coco_to_h36m), NaN where a source joint is missing."""
        seen = np.isfinite(self.world_coco_m).all(-1)
        pose, conf = coco_to_h36m(np.where(seen[..., None], self.world_coco_m, 0.0), seen.astype(np.float64))
        return np.where(conf[..., None] > 0, pose, np.nan)


def triangulate_reference(recording: Recording, outlier_px: float = OUTLIER_PX,
                          min_conf: float = MIN_CONF) -> ReferenceTriangulation:
    """Triangulate every joint of every frame from all cameras of `recording`.

    1. Detections are undistorted; each view's row of the DLT is weighted by its confidence.
    2. Side correction: per frame, every assignment of "as detected" / "left and right exchanged" to the
       cameras is triangulated and the one with the smallest total capped reprojection error wins (ties,
       e.g. all cameras exchanged, go to the fewest exchanges).
    3. Outliers: per frame and joint, while the worst view reprojects farther than `outlier_px` and more
       than two views remain, that view is dropped and the joint triangulated again.
    """
    V, T = recording.conf_coco.shape[:2]
    if V > MAX_SIDE_SEARCH_VIEWS:
        raise InvalidRecordingError(f"{recording.folder}: {V} cameras; the side correction tries all 2^V "
                                    f"assignments and supports at most {MAX_SIDE_SEARCH_VIEWS}")
    P = np.stack([c.P for c in recording.cameras])
    und = np.stack([c.undistort(recording.kp2d_coco_px[v]) for v, c in enumerate(recording.cameras)])
    conf = np.where(recording.conf_coco >= min_conf, recording.conf_coco, 0.0)
    flip = COCO17_FLIP_PERMUTATION
    options_px = np.stack([und, und[:, :, flip]])       # (2, V, T, 17, 2)
    options_w = np.stack([conf, conf[:, :, flip]])      # (2, V, T, 17)
    combos = np.array(list(itertools.product((0, 1), repeat=V)))  # (C, V)
    cam_idx = np.arange(V)
    px = options_px[combos, cam_idx]    # (C, V, T, 17, 2)
    w = options_w[combos, cam_idx]      # (C, V, T, 17)
    px = np.moveaxis(px, 1, -2)         # (C, T, 17, V, 2)
    w = np.moveaxis(w, 1, -1)           # (C, T, 17, V)
    world = _dlt(px, w, P)              # (C, T, 17, 3)
    err = _reprojection_px(np.nan_to_num(world), px, P)
    cost = np.where(w > 0, np.minimum(np.nan_to_num(err, nan=SIDE_ERROR_CAP_PX), SIDE_ERROR_CAP_PX), 0.0)
    cost = cost.sum((-1, -2)) + 1e-6 * combos.sum(1)[:, None]  # (C, T); fewer exchanges break ties
    best = cost.argmin(0)                                        # (T,)
    frames = np.arange(T)
    px, w = px[best, frames], w[best, frames].copy()             # (T, 17, V, 2), (T, 17, V)
    world = _dlt(px, w, P)
    for _ in range(V - 2):
        err = np.where(w > 0, _reprojection_px(np.nan_to_num(world), px, P), -np.inf)
        worst = err.argmax(-1)
        drop = (err.max(-1) > outlier_px) & ((w > 0).sum(-1) > 2)
        if not drop.any():
            break
        t_idx, j_idx = np.nonzero(drop)
        w[t_idx, j_idx, worst[t_idx, j_idx]] = 0.0
        world = _dlt(px, w, P)
    swapped = combos[best].astype(bool)                          # (T, V)
    detections = np.where(swapped.T[:, :, None, None], recording.kp2d_coco_px[:, :, flip],
                          recording.kp2d_coco_px)               # (V, T, 17, 2) with the sides corrected
    reproj = np.stack([np.linalg.norm(c.project(world) - detections[v], axis=-1)
                       for v, c in enumerate(recording.cameras)], 1)  # (T, V, 17)
    return ReferenceTriangulation(world, swapped, np.moveaxis(w > 0, -1, 1), reproj)


def reference_3d(recording: Recording) -> np.ndarray:
    """(T, 17, 3) reference H36M-17 joints in world metres (`triangulate_reference`), NaN where unknown."""
    return triangulate_reference(recording).h36m()


def relative_rotation(cam_a: CalibratedCamera, cam_b: CalibratedCamera) -> np.ndarray:
    """(3, 3) row-vector rotation mapping camera b's coordinates onto camera a's (x_a = x_b @ R), the
    convention of `core.procrustes` (its optical_axis_angle_deg / rotation_angle_deg apply)."""
    return cam_b.R @ cam_a.R.T
