"""A synthetic two-camera recording (walking stick figure) for GUI tests and screenshots.

Plain numpy + OpenCV, no Qt: `synthetic_analysis()` builds an `Analysis` with known geometry (and, unless
asked for a session processed before two-view fusion, a fused 3D track), `write_synthetic_session()` also
renders one small video per view and saves `analysis.npz` beside them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mvcapture.analysis import Analysis
from mvcapture.core.skeleton import H36M17_BONES

# Rest pose, metres, body frame: x to the body's left, y up, z forward; pelvis at the origin.
_REST = np.array([
    (0, 0, 0), (-0.12, 0, 0), (-0.12, -0.45, 0), (-0.12, -0.88, 0), (0.12, 0, 0), (0.12, -0.45, 0),
    (0.12, -0.88, 0), (0, 0.25, 0), (0, 0.5, 0), (0, 0.6, 0.03), (0, 0.75, 0), (0.19, 0.5, 0),
    (0.22, 0.22, 0), (0.24, -0.02, 0.03), (-0.19, 0.5, 0), (-0.22, 0.22, 0), (-0.24, -0.02, 0.03),
], float)
_LEGS = ((1, 2, 3), (4, 5, 6))
_ARMS = ((14, 15, 16), (11, 12, 13))


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _swing(pose: np.ndarray, chain: tuple[int, int, int], angle: float, bend: float) -> None:
    """Swing a 3-joint limb about the x axis at its first joint, bending the middle joint."""
    a, b, c = chain
    pose[[b, c]] = pose[a] + (pose[[b, c]] - pose[a]) @ _rot_x(angle).T
    pose[c] = pose[b] + (pose[c] - pose[b]) @ _rot_x(bend).T


def walking_body(num_frames: int, fps: float, seed: int = 0) -> np.ndarray:
    """(T, 17, 3) metres, body frame (y up): a walk cycle with a slowly turning heading."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames) / fps
    heading = np.cumsum(rng.normal(0, 0.02, num_frames))
    poses = np.empty((num_frames, 17, 3))
    for i, ti in enumerate(t):
        phase = 2 * np.pi * 1.0 * ti
        pose = _REST.copy()
        for side, chain in enumerate(_LEGS):
            swing = 0.45 * np.sin(phase + np.pi * side)
            _swing(pose, chain, swing, -0.6 * max(0.0, np.sin(phase + np.pi * side + 1.2)))
        for side, chain in enumerate(_ARMS):
            _swing(pose, chain, -0.35 * np.sin(phase + np.pi * side), 0.4)
        poses[i] = pose @ _rot_y(heading[i]).T
    return poses


def synthetic_analysis(num_frames: int = 120, fps: float = 25.0, image_size: tuple[int, int] = (320, 240),
                       angle_deg: float = 80.0, seed: int = 0, fused: bool = True) -> Analysis:
    """Two views of a walking figure, with lifter-like errors that vary over time (one bad stretch).

    View 1 looks from `angle_deg` around the vertical axis. The aligned poses use the known rotation
    (what one sequence Procrustes would find), so the residuals are the injected errors. With `fused`, a
    two-view track like the stereo stage's: the true body with 5 mm noise, the left wrist seen by view 0 only
    (filled from its lift) in the first tenth of the clip and unknown for two frames after it; the stereo
    angle is the true one. Without it, the file looks like one processed before two-view fusion existed.
    """
    rng = np.random.default_rng(seed)
    body = walking_body(num_frames, fps, seed)
    w, h = image_size
    focal = 1.2 * w
    depth = 4.0
    # body (y up) -> camera 0 (y down, z forward), the athlete facing the camera
    to_cam0 = np.diag([1.0, -1.0, -1.0])
    cam_from_cam0 = [np.eye(3), _rot_y(np.deg2rad(angle_deg))]
    kp2d = np.empty((2, num_frames, 17, 2))
    pose3d = np.empty((2, num_frames, 17, 3))
    # errors: a smooth random walk per view plus one stretch where view 1 is much worse
    bad = np.zeros(num_frames)
    start = num_frames // 2
    bad[start:start + max(1, num_frames // 8)] = 1.0
    for v in range(2):
        cam = body @ to_cam0.T @ cam_from_cam0[v].T
        steps = rng.normal(0, 0.0015, (num_frames, 17, 3))
        error = np.cumsum(steps, axis=0)
        error -= error.mean(axis=0)
        if v == 1:
            error += bad[:, None, None] * rng.normal(0, 0.06, (1, 17, 3))
        pose3d[v] = cam + error
        pose3d[v] -= pose3d[v][:, :1]
        pts = cam + np.array([0.0, 0.1, depth])
        kp2d[v] = focal * pts[..., :2] / pts[..., 2:] + np.array([w / 2, h / 2])
        kp2d[v] += rng.normal(0, 0.8, kp2d[v].shape)
    aligned = np.stack([pose3d[0], pose3d[1] @ cam_from_cam0[1]])
    residual = np.linalg.norm(aligned[0] - aligned[1], axis=-1) * 1000.0
    conf = np.clip(rng.normal(0.9, 0.05, (2, num_frames, 17)), 0.0, 1.0)
    extra = {}
    if fused:
        from mvcapture.geometry.fusion import SOURCE_LIFT_A, SOURCE_NONE, SOURCE_STEREO, lifts_onto_fused

        truth = body @ to_cam0.T
        track = truth - truth[:, :1] + rng.normal(0, 0.005, truth.shape)
        track[:, 0] = 0.0
        source = np.full((num_frames, 17), SOURCE_STEREO, np.int8)
        filled = slice(0, max(1, num_frames // 10))
        track[filled, 13] = pose3d[0, filled, 13]
        source[filled, 13] = SOURCE_LIFT_A
        gap = slice(filled.stop, filled.stop + 2)
        track[gap, 13] = np.nan
        source[gap, 13] = SOURCE_NONE
        extra = dict(fused3d=track.astype(np.float32), fused_source=source,
                     fused_error_mm=lifts_onto_fused(pose3d, conf, track)[1],
                     stereo_axis_angle_deg=np.array([0.0, angle_deg]), stereo_angle_deg=np.array([0.0, angle_deg]))
    return Analysis(
        kp2d=kp2d.astype(np.float32), conf=conf.astype(np.float32), pose3d=pose3d.astype(np.float32),
        aligned=aligned.astype(np.float32), residual_mm=residual.astype(np.float32),
        angle_deg=np.array([0.0, angle_deg]), image_size=np.array([image_size, image_size], np.int32),
        times_s=np.arange(num_frames) / fps, fps=float(fps), offset_s=np.zeros(2), **extra,
    ).validate("synthetic")


def render_view_video(path: Path, kp2d_px: np.ndarray, image_size: tuple[int, int], fps: float,
                      color_bgr: tuple[int, int, int]) -> Path:
    """Draw (T, 17, 2) keypoints as a stick figure on a plain floor-and-wall scene into an mp4."""
    w, h = image_size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    background = np.full((h, w, 3), (70, 62, 56), np.uint8)
    background[int(h * 0.62):] = (92, 110, 96)
    try:
        for t, pts in enumerate(kp2d_px):
            frame = background.copy()
            for a, b in H36M17_BONES:
                cv2.line(frame, tuple(np.round(pts[a]).astype(int)), tuple(np.round(pts[b]).astype(int)),
                         color_bgr, max(2, w // 120), cv2.LINE_AA)
            cv2.putText(frame, f"{t:04d}", (6, h - 8), cv2.FONT_HERSHEY_SIMPLEX, h / 600, (230, 230, 230), 1,
                        cv2.LINE_AA)
            writer.write(frame)
    finally:
        writer.release()
    return path


def write_synthetic_session(folder: Path | str, num_frames: int = 120, fps: float = 25.0,
                            image_size: tuple[int, int] = (320, 240), seed: int = 0, fused: bool = True) -> Path:
    """A folder with `analysis.npz` and `view0.mp4`, `view1.mp4`; returns the folder (`fused`: see
    `synthetic_analysis`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    analysis = synthetic_analysis(num_frames, fps, image_size, seed=seed, fused=fused)
    for v in range(analysis.num_views):
        render_view_video(folder / f"view{v}.mp4", analysis.kp2d[v], image_size, fps, (200, 200, 200))
    analysis.save(folder / "analysis.npz")
    return folder


def create_synthetic_session(name: str = "synthetic walk", athlete: str | None = "Demo Athlete",
                             tags: tuple[str, ...] = ("demo",), num_frames: int = 120, fps: float = 25.0,
                             image_size: tuple[int, int] = (320, 240), seed: int = 0):
    """A processed session in the user's session store (catalogued): imported videos + `analysis.npz`.

    Returns the `mvcapture.session.Session`. Stands in for a recorded-and-processed session in GUI tests.
    """
    import tempfile

    from mvcapture.session import Session

    session = Session.create(name=name, athlete=athlete, tags=tags)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_synthetic_session(tmp, num_frames, fps, image_size, seed)
        session.import_videos([folder / "view0.mp4", folder / "view1.mp4"])
        Analysis.load(folder / "analysis.npz").save(session.path_for("analysis"))
    return session
