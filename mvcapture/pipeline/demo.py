"""The demo session (two real cameras of the Pose2Sim single-person recording, resources/demo) and the
rendered summary image of a processed session (both views with their 2D overlay + the aligned 3D skeletons).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from mvcapture.analysis import Analysis
from mvcapture.errors import MvcaptureError
from mvcapture.paths import resources_dir
from mvcapture.session.store import Session

log = logging.getLogger(__name__)

DEMO_TAG = "demo"
DEMO_NAME = "demo"
DEMO_CAMERAS = ("cam01", "cam04")
SHIPPED_DETECTIONS = "detections/shipped/view{v}_coco17.npz"


def demo_resources() -> Path:
    folder = resources_dir() / "demo"
    if not all((folder / f"{cam}.mp4").is_file() for cam in DEMO_CAMERAS):
        raise MvcaptureError(f"the demo recording is missing from {folder} (expected "
                             f"{', '.join(c + '.mp4' for c in DEMO_CAMERAS)}); reinstall mvcapture")
    return folder


def calibration_angles() -> dict:
    """The demo cameras' angles from the recording's calibration: optical_axis_angle_deg, relative_rotation_deg."""
    return json.loads((demo_resources() / "calibration_angles.json").read_text())


def _intact(session: Session) -> bool:
    views = session.views
    return (len(views) == len(DEMO_CAMERAS) and all(v.media.exists() for v in views)
            and not any("unreadable" in p or "missing" in p for p in session.problems))


def _attach_intrinsics(session: Session, folder: Path) -> None:
    """The demo cameras' lens intrinsics (resources/demo/intrinsics, from the recording's own board pictures)
    on the views that lack them. The board pictures are 1088x1920 px like cam04's video, cam01's video is
    1080x1920: the same 1088-px-wide sensor (so the recording's Qualisys calibration says) cropped by 8 px,
    so K is kept as it is (`Intrinsics.scaled_to`); the principal point may be off by up to 8 px, less than
    its own uncertainty (board and Qualisys calibrations differ by ~30 px in cx)."""
    for v, cam in enumerate(DEMO_CAMERAS):
        if not session.meta["views"][v].get("intrinsics"):
            session.set_intrinsics(v, folder / "intrinsics" / f"{cam}.json")


def demo_session(root: Path | str | None = None) -> Session:
    """The demo session: the one made earlier (found by its tag in the catalog) when it is intact, else a
    new one built from resources/demo: both videos, the cameras' lens intrinsics, the detections shipped with
    them (used when no detector weights can be had), and the time alignment of the original capture system
    (offset 0)."""
    from mvcapture.session.catalog import Catalog

    for row in Catalog().list(tag=DEMO_TAG):
        if root is not None and Path(row["path"]).parent.resolve() != Path(root).resolve():
            continue
        if Path(row["path"]).is_dir():
            session = Session.open(row["path"])
            if _intact(session):
                _attach_intrinsics(session, demo_resources())  # a demo made before they shipped
                return session
    folder = demo_resources()
    session = Session.create(name=DEMO_NAME, kind="import", tags=[DEMO_TAG], root=root)
    try:
        session.import_videos([folder / f"{cam}.mp4" for cam in DEMO_CAMERAS])
        _attach_intrinsics(session, folder)
        for v, cam in enumerate(DEMO_CAMERAS):
            rel = SHIPPED_DETECTIONS.format(v=v)
            (session.path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / "detections" / f"{cam}_coco17.npz", session.path / rel)
            session.meta["views"][v]["cached_detections"] = rel
            session.meta["views"][v]["camera"] = cam
        session.meta["calibration"] = calibration_angles()
        session.meta["notes"] = ("Pose2Sim Demo_SinglePerson (BSD 3-Clause, perfanalytics), cameras "
                                 f"{' and '.join(DEMO_CAMERAS)}; cached detections: MediaPipe BlazePose → COCO-17")
        session.save_meta()
        session.save_sync({"offset_s": 0.0, "drift_ppm": 0.0, "confidence": 1.0, "low_confidence": False,
                           "method": "manual", "reason": "",
                           "details": {"note": "synchronized by the original capture system"}}, view=1)
    except BaseException:
        session.discard()
        raise
    return session


def _video_frame(path: Path, t_s: float, fps: float) -> np.ndarray | None:
    """The BGR frame of a video shown at time t_s (the first one at or after t_s - half a frame)."""
    from mvcapture.io.video import iter_frames

    for _, image in iter_frames(path, "bgr24", start_s=max(t_s - 0.5 / max(fps, 1e-6), 0.0)):
        return image
    return None


def representative_frame(analysis: Analysis) -> int:
    """A frame where every view sees most joints, with the median per-frame residual among them."""
    seen = (analysis.conf > 0).sum(-1).min(0)  # (T,) joints seen by the worst view
    per_frame = np.nanmean(np.where(np.isfinite(analysis.residual_mm), analysis.residual_mm, np.nan), axis=1) \
        if np.isfinite(analysis.residual_mm).any() else np.zeros(analysis.num_frames)
    good = np.flatnonzero((seen >= 15) & np.isfinite(per_frame))
    if not len(good):
        return analysis.num_frames // 2
    return int(good[np.argmin(np.abs(per_frame[good] - np.median(per_frame[good])))])


def render_analysis(session: Session, analysis: Analysis, path: Path | str, frame: int | None = None,
                    height: int = 720, metrics: dict | None = None) -> Path:
    """Write a PNG: each view's video frame with its 2D overlay, side by side, and the 3D view of all views'
    skeletons aligned onto view 0 (joints green → red by disagreement, 0 → 100 mm).

    Args:
        frame: frame index on the common time base (default: `representative_frame`).
        height: pixel height of each panel.
    """
    import cv2

    from mvcapture.io.render import VIEW_COLOURS_BGR, draw_skeleton_2d, fit_height, put_label, render_skeletons_3d

    f = representative_frame(analysis) if frame is None else int(frame)
    t0 = float(analysis.times_s[f])
    panels = []
    for v, view in enumerate(session.views):
        sync = session.load_sync(v) if v else None
        drift = float(sync.get("drift_ppm", 0.0)) * 1e-6 if sync else 0.0
        t_v = (1.0 + drift) * t0 + float(analysis.offset_s[v])
        w, h = (int(x) for x in analysis.image_size[v])
        image = _video_frame(view.media, t_v, analysis.fps) if view.media.exists() else None
        if image is None:
            image = np.full((h, w, 3), 40, np.uint8)
        colour = VIEW_COLOURS_BGR[v % len(VIEW_COLOURS_BGR)]
        draw_skeleton_2d(image, analysis.kp2d[v, f], analysis.conf[v, f], colour=colour,
                         thickness=max(3, int(round(min(w, h) / 150))))
        image = fit_height(image, height)
        camera = session.meta["views"][v].get("camera")
        put_label(image, f"view {v}" + (f" ({camera})" if camera else "") + f"  t={t_v:.2f} s", colour=colour)
        panels.append(image)
    residual = np.nan_to_num(analysis.residual_mm[f], nan=0.0)
    panel3d = render_skeletons_3d(analysis.aligned[:, f], size=(height, height), joint_error_mm=residual)
    put_label(panel3d, "3D, all views aligned onto view 0")
    put_label(panel3d, f"frame {f}: residual {float(np.mean(residual)):.0f} mm (green 0 - red 100)", (10, 56))
    if analysis.num_views > 1:
        line = f"cameras {float(analysis.camera_angle_deg[1]):.0f} deg apart ({analysis.camera_angle_source[1]})"
        if np.isfinite(analysis.stereo_axis_angle_deg[1]):
            line += f"; lifter alone {float(analysis.lifter_camera_angle_deg[1]):.0f} deg"
        put_label(panel3d, line, (10, height - 16))
    panels.append(panel3d)
    image = np.concatenate(panels, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise MvcaptureError(f"could not encode the image for {path}")
    from mvcapture.io.atomic import atomic_write_bytes

    atomic_write_bytes(path, data.tobytes())
    return path


def compare_with_calibration(metrics: dict) -> dict:
    """The estimated camera angles of the demo against its calibration, with the errors in degrees.

    `estimated` is what the app shows (the two views' own geometry when it is confident, else the lifter's
    Procrustes rotation; `source` says which); `lifter_only` and `stereo` are both kept as checks.
    """
    calib = calibration_angles()

    def row(rotation, axis):
        return {"relative_rotation_deg": rotation, "optical_axis_angle_deg": axis,
                "error_deg": {"relative_rotation": rotation - calib["relative_rotation_deg"],
                              "optical_axis": axis - calib["optical_axis_angle_deg"]}}

    lifter = row(float(metrics["camera_rotation_deg"][1]), float(metrics["camera_axis_angle_deg"][1]))
    stereo = metrics.get("stereo") or {}
    stereo_row = (row(float(stereo["rotation_deg"]), float(stereo["axis_angle_deg"]))
                  if stereo.get("axis_angle_deg") is not None else None)
    if stereo_row is not None:
        stereo_row.update(status=stereo.get("status"), axis_angle_interval_deg=stereo.get("axis_angle_interval_deg"))
    use_stereo = stereo_row is not None and stereo.get("status") == "ok"
    shown = stereo_row if use_stereo else lifter
    return {
        "calibration": {"optical_axis_angle_deg": calib["optical_axis_angle_deg"],
                        "relative_rotation_deg": calib["relative_rotation_deg"], "source": calib.get("source")},
        "estimated": {"relative_rotation_deg": shown["relative_rotation_deg"],
                      "optical_axis_angle_deg": shown["optical_axis_angle_deg"],
                      "source": "stereo" if use_stereo else "lifter"},
        "error_deg": shown["error_deg"],
        "lifter_only": lifter,
        "stereo": stereo_row,
        "note": "stereo: the cameras' relative pose found from the two views' keypoints (essential matrix + "
                "bundle adjustment, lenses from the recording's checkerboard pictures; the calibration file is "
                "never read by it). lifter_only: the sequence Procrustes rotation between the two lifted 3D "
                "sequences. Relative rotation = the rotation angle; optical axes = acos(R[2, 2])",
    }
