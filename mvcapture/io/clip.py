"""Multi-view clip files (`.npz`, FORMATS.md): one person seen by V cameras on one time base.

Loading validates every key so tools can reject a bad clip with a message naming file and key: shapes,
numbers where numbers belong, image sizes of 1..MAX_IMAGE_SIDE_PX, keypoints within COORD_LIMIT_FACTOR
image sizes of the image, and (for the tools that train on or lift a clip) usable keypoints in every view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mvcapture.errors import InvalidClipError
from mvcapture.io.atomic import atomic_save_npz

NUM_JOINTS = 17
MAX_IMAGE_SIDE_PX = 65536     # wider or taller than any camera: a unit mix-up or a corrupt file
COORD_LIMIT_FACTOR = 100      # |kp2d| beyond this many image sizes: not a detection in that picture
MAX_GT3D_M = 1000.0           # ground truth farther than this from the camera: not metres of a person


@dataclass
class MultiViewClip:
    """One synchronized multi-view recording.

    Attributes:
        kp2d: (V, T, 17, 2) float32 pixels, x right, y down, h36m17 order.
        conf: (V, T, 17) float32 in [0, 1]; 0 = missing joint.
        image_size: (V, 2) int32 width, height in pixels.
        fps: frame rate of the shared time base.
        gt3d: optional (V, T, 17, 3) float32 metres in each camera's frame (x right, y down, z forward).
        name: optional clip name.
    """

    kp2d: np.ndarray
    conf: np.ndarray
    image_size: np.ndarray
    fps: float
    gt3d: np.ndarray | None = None
    name: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def num_views(self) -> int:
        return int(self.kp2d.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.kp2d.shape[1])

    def validate(self, source: str = "clip", min_views: int = 1, min_frames: int = 1,
                 require_keypoints: bool = False) -> "MultiViewClip":
        """Check shapes, dtypes and values; raise InvalidClipError naming `source` and the key.

        `require_keypoints`: every view must have at least one keypoint with conf > 0 (training and
        lifting have nothing to work with otherwise)."""
        kp2d, conf = np.asarray(self.kp2d), np.asarray(self.conf)
        if kp2d.ndim != 4 or kp2d.shape[2:] != (NUM_JOINTS, 2):
            raise InvalidClipError(f"{source}: key 'kp2d' must have shape (V, T, 17, 2), got {kp2d.shape}")
        V, T = kp2d.shape[:2]
        if conf.shape != (V, T, NUM_JOINTS):
            raise InvalidClipError(f"{source}: key 'conf' must have shape ({V}, {T}, 17), got {conf.shape}")
        if np.asarray(self.image_size).shape != (V, 2):
            raise InvalidClipError(
                f"{source}: key 'image_size' must have shape ({V}, 2), got {np.asarray(self.image_size).shape}")
        if not np.all(np.isfinite(conf)) or conf.min(initial=0) < 0 or conf.max(initial=0) > 1:
            raise InvalidClipError(f"{source}: key 'conf' must hold finite values in [0, 1]")
        if not np.all(np.isfinite(kp2d[conf > 0])):
            raise InvalidClipError(f"{source}: key 'kp2d' has NaN/inf where conf > 0")
        size = np.asarray(self.image_size)
        if (not np.all(np.isfinite(size)) or np.any(size != np.round(size)) or size.min(initial=1) < 1
                or size.max(initial=1) > MAX_IMAGE_SIDE_PX):
            raise InvalidClipError(f"{source}: key 'image_size' must hold whole width, height in pixels, each 1 to "
                                   f"{MAX_IMAGE_SIDE_PX}; got {size.tolist()}")
        limit = COORD_LIMIT_FACTOR * size.max(axis=1).astype(np.float64)  # (V,)
        for v in range(V):
            far = np.abs(kp2d[v][conf[v] > 0])
            if far.size and far.max() > limit[v]:
                raise InvalidClipError(
                    f"{source}: key 'kp2d' of view {v} has coordinates up to {far.max():.3g} px, beyond "
                    f"{COORD_LIMIT_FACTOR}x its image size {size[v].tolist()}; expected pixels of that image")
        if require_keypoints:
            for v in range(V):
                if not np.any(conf[v] > 0):
                    raise InvalidClipError(f"{source}: view {v} has no usable keypoints (key 'conf' is 0 for "
                                           f"every frame and joint); expected detections with conf in (0, 1]")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise InvalidClipError(f"{source}: key 'fps' must be a positive number, got {self.fps}")
        if self.gt3d is not None:
            gt = np.asarray(self.gt3d)
            if gt.shape != (V, T, NUM_JOINTS, 3):
                raise InvalidClipError(f"{source}: key 'gt3d' must have shape ({V}, {T}, 17, 3), got {gt.shape}")
            if not np.all(np.isfinite(gt)):
                raise InvalidClipError(f"{source}: key 'gt3d' has NaN/inf")
            if np.abs(gt).max(initial=0) > MAX_GT3D_M:
                raise InvalidClipError(f"{source}: key 'gt3d' has values up to {np.abs(gt).max():.3g}; expected "
                                       f"metres in each camera's frame (at most {MAX_GT3D_M:g} m)")
        if V < min_views:
            raise InvalidClipError(f"{source}: needs at least {min_views} views, has {V} (key 'kp2d')")
        if T < min_frames:
            raise InvalidClipError(f"{source}: needs at least {min_frames} frames, has {T} (key 'kp2d')")
        return self

    def focal_px(self, source: str | None = None) -> np.ndarray | None:
        """(V,) focal length in pixels: the clip's `focal_px` key (synthetic data), else estimated from
        `gt3d` and `kp2d` (FORMATS.md clips; `core.normalize.focal_from_projection`); None without gt3d.
        Raises InvalidClipError naming the clip when gt3d and kp2d do not fit a camera in front of the body."""
        V = self.num_views
        given = self.extras.get("focal_px")
        if given is not None:
            return np.asarray(given, np.float64).reshape(V)
        if self.gt3d is None:
            return None
        from mvcapture.core.normalize import focal_from_projection

        focal = focal_from_projection(self.kp2d, self.conf, self.gt3d, self.image_size)
        bad = [v for v in range(V) if not np.isfinite(focal[v])]
        if bad:
            raise InvalidClipError(
                f"{source or self.name or 'clip'}: key 'gt3d' of view {bad[0]} does not project onto its 'kp2d' "
                f"(no focal length fits: expected metres in that camera's frame, z forward, in front of it)")
        return focal

    def save(self, path: Path | str) -> None:
        """Write the clip atomically as `.npz` (FORMATS.md keys)."""
        self.validate(str(path))
        arrays = {
            "kp2d": np.asarray(self.kp2d, np.float32),
            "conf": np.asarray(self.conf, np.float32),
            "image_size": np.asarray(self.image_size, np.int32),
            "fps": np.float64(self.fps),
        }
        if self.gt3d is not None:
            arrays["gt3d"] = np.asarray(self.gt3d, np.float32)
        if self.name:
            arrays["name"] = np.array(self.name)
        for key, value in self.extras.items():
            arrays[key] = np.asarray(value)
        atomic_save_npz(path, **arrays)


# expected content of each FORMATS.md key, for messages about a key that holds something else
EXPECTED = {"kp2d": "float32 (V, T, 17, 2) pixels", "conf": "float32 (V, T, 17) in [0, 1]",
            "image_size": "int32 (V, 2) width, height in pixels", "fps": "one positive number (frames/s)",
            "gt3d": "float32 (V, T, 17, 3) metres", "name": "a text"}


def _numeric(arrays: dict, key: str, path: Path, dtype) -> np.ndarray:
    value = arrays[key]
    if value.dtype.kind not in "biuf":
        raise InvalidClipError(f"{path}: key '{key}' holds {value.dtype} data; expected {EXPECTED[key]}")
    return value.astype(dtype)


def load_clip(path: Path | str, min_views: int = 1, min_frames: int = 1) -> MultiViewClip:
    """Load and validate a multi-view clip for training or lifting (every view needs usable keypoints);
    raises InvalidClipError naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise InvalidClipError(f"{path}: no such clip file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zip errors, pickled objects, truncated files
        raise InvalidClipError(f"{path}: not a readable .npz clip ({exc})") from exc
    for key in ("kp2d", "conf", "image_size", "fps"):
        if key not in arrays:
            raise InvalidClipError(f"{path}: missing key '{key}'")
    known = {"kp2d", "conf", "image_size", "fps", "gt3d", "name"}
    size = _numeric(arrays, "image_size", path, np.float64)
    whole = np.all(np.isfinite(size)) and np.all(size == np.round(size)) and np.abs(size).max(initial=0) < 2**31
    fps = _numeric(arrays, "fps", path, np.float64)
    if fps.size != 1:
        raise InvalidClipError(f"{path}: key 'fps' has shape {fps.shape}; expected {EXPECTED['fps']}")
    clip = MultiViewClip(
        kp2d=_numeric(arrays, "kp2d", path, np.float32),
        conf=_numeric(arrays, "conf", path, np.float32),
        image_size=size.astype(np.int32) if whole else size,  # validate names a non-whole size
        fps=float(fps.reshape(())),
        gt3d=_numeric(arrays, "gt3d", path, np.float32) if "gt3d" in arrays else None,
        name=str(arrays["name"]) if "name" in arrays else path.stem,
        extras={k: v for k, v in arrays.items() if k not in known},
    )
    return clip.validate(str(path), min_views=min_views, min_frames=min_frames, require_keypoints=True)


def load_dataset(directory: Path | str, min_views: int = 1, min_frames: int = 1) -> list[MultiViewClip]:
    """Load every `*.npz` clip of a directory (sorted by name); raises on the first invalid one."""
    directory = Path(directory)
    files = sorted(directory.glob("*.npz"))
    if not files:
        raise InvalidClipError(f"{directory}: no .npz clips found")
    return [load_clip(f, min_views=min_views, min_frames=min_frames) for f in files]
