"""The result of processing a session: 2D, per-view 3D, alignment and consistency, in one file.

Written by the pipeline (`analysis.npz` in the session folder), read by the GUI, exports and the CLI.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import numpy as np

from mvcapture.errors import MvcaptureError
from mvcapture.io.atomic import atomic_save_npz


@dataclass
class Analysis:
    """Processed two-(or more-)view session on one time base.

    Attributes:
        kp2d: (V, T, 17, 2) pixels, h36m17 order, each view's own image.
        conf: (V, T, 17) detection confidence, 0 = missing.
        pose3d: (V, T, 17, 3) metres, root-relative, camera frame of each view.
        aligned: (V, T, 17, 3) metres, every view mapped onto view 0 by one similarity transform per
            sequence (aligned[0] == pose3d[0]).
        residual_mm: (T, 17) per-frame, per-joint consistency residual (mean over view pairs), mm.
        angle_deg: (V,) rotation angle between view 0 and each view, degrees (0 for view 0).
        axis_angle_deg: (V,) angle between the optical axes of view 0 and each view, degrees: the
            angle a user places the cameras at (NaN in files written before it was stored).
        image_size: (V, 2) width, height in pixels.
        times_s: (T,) time of each frame on the common time base, seconds.
        fps: frame rate of the common time base.
        offset_s: (V,) time offset of each view relative to view 0, seconds.
        fused3d: (T, 17, 3) metres, view 0's camera frame, pelvis-relative: the two views' triangulated 3D
            completed by the lifts (NaN where unknown; None in files written before it existed).
        fused_source: (T, 17) int8 where each fused joint came from (geometry.fusion SOURCE_*).
        fused_error_mm: (V, T, 17) each view's lift against the fused track after one similarity, mm.
        stereo_axis_angle_deg / stereo_angle_deg: (V,) the optical-axes / rotation angle between view 0 and
            each view from the two views' own geometry; NaN where the stereo estimate is not confident.
            `angle_deg` / `axis_angle_deg` stay the lifter-only (Procrustes) values.
        stereo_focal_px: (V,) the focal length (pixels) each view's two-view geometry used or found; NaN
            where the stereo estimate is not confident (fine-tuning's stereo pseudo-labels use it).
    """

    kp2d: np.ndarray
    conf: np.ndarray
    pose3d: np.ndarray
    aligned: np.ndarray
    residual_mm: np.ndarray
    angle_deg: np.ndarray
    image_size: np.ndarray
    times_s: np.ndarray
    fps: float
    offset_s: np.ndarray
    axis_angle_deg: np.ndarray | None = None
    fused3d: np.ndarray | None = None
    fused_source: np.ndarray | None = None
    fused_error_mm: np.ndarray | None = None
    stereo_axis_angle_deg: np.ndarray | None = None
    stereo_angle_deg: np.ndarray | None = None
    stereo_focal_px: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.axis_angle_deg is None:
            self.axis_angle_deg = np.full(np.shape(self.angle_deg), np.nan)
        if self.stereo_axis_angle_deg is None:
            self.stereo_axis_angle_deg = np.full(np.shape(self.angle_deg), np.nan)
        if self.stereo_angle_deg is None:
            self.stereo_angle_deg = np.full(np.shape(self.angle_deg), np.nan)
        if self.stereo_focal_px is None:
            self.stereo_focal_px = np.full(np.shape(self.angle_deg), np.nan)

    @property
    def has_fused(self) -> bool:
        """True when the file holds a fused two-view track with at least one known joint."""
        return self.fused3d is not None and bool(np.isfinite(self.fused3d).any())

    @property
    def lifter_camera_angle_deg(self) -> np.ndarray:
        """(V,) the lifter-only angle between the cameras: between the optical axes, or the rotation angle
        for files that do not have it."""
        axis = np.asarray(self.axis_angle_deg, np.float64)
        return np.where(np.isfinite(axis), axis, np.asarray(self.angle_deg, np.float64))

    @property
    def camera_angle_deg(self) -> np.ndarray:
        """(V,) the angle between the cameras to show a user: the two views' own geometry where it is
        confident, else the lifter-only angle."""
        stereo = np.asarray(self.stereo_axis_angle_deg, np.float64)
        return np.where(np.isfinite(stereo), stereo, self.lifter_camera_angle_deg)

    @property
    def camera_angle_source(self) -> list[str]:
        """(V,) "stereo" or "lifter": where `camera_angle_deg` comes from."""
        return ["stereo" if np.isfinite(x) else "lifter" for x in np.asarray(self.stereo_axis_angle_deg, np.float64)]

    @property
    def num_views(self) -> int:
        return int(self.pose3d.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.pose3d.shape[1])

    def validate(self, source: str = "analysis") -> "Analysis":
        V, T = self.pose3d.shape[:2]
        expected = {
            "kp2d": (V, T, 17, 2), "conf": (V, T, 17), "pose3d": (V, T, 17, 3),
            "aligned": (V, T, 17, 3), "residual_mm": (T, 17), "angle_deg": (V,), "axis_angle_deg": (V,),
            "image_size": (V, 2), "times_s": (T,), "offset_s": (V,),
            "fused3d": (T, 17, 3), "fused_source": (T, 17), "fused_error_mm": (V, T, 17),
            "stereo_axis_angle_deg": (V,), "stereo_angle_deg": (V,), "stereo_focal_px": (V,),
        }
        for key, shape in expected.items():
            if getattr(self, key) is None:
                continue
            got = np.shape(getattr(self, key))
            if got != shape:
                raise MvcaptureError(f"{source}: '{key}' should have shape {shape}, has {got}")
        return self

    def save(self, path: Path | str) -> None:
        self.validate(str(path))
        atomic_save_npz(path, **{f.name: np.asarray(getattr(self, f.name)) for f in fields(self)
                                 if getattr(self, f.name) is not None})

    @classmethod
    def load(cls, path: Path | str) -> "Analysis":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                # optional fields (added later) may be absent from older files
                values = {f.name: data[f.name] for f in fields(cls) if f.name in data.files or f.default is MISSING}
        except (OSError, KeyError, ValueError) as exc:
            raise MvcaptureError(f"{path}: not a readable analysis file ({exc}); re-run processing") from exc
        values["fps"] = float(values["fps"])
        return cls(**values).validate(str(path))
