"""Lens intrinsics of one camera: checkerboard calibration, the FORMATS.md `CAM.json` file, undistortion of
keypoints, a guessed pinhole, and the focal length phones write into their videos.

The model is OpenCV's pinhole + distortion (k1, k2, p1, p2, k3) for frames as decoded and shown upright
(portrait stays portrait); pixel (0, 0) is the centre of the top-left pixel, x right, y down.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from mvcapture.errors import InvalidIntrinsicsError, MvcaptureError

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("fx", "fy", "cx", "cy", "dist", "image_size")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MIN_BOARD_VIEWS = 3          # cv2.calibrateCamera needs several board poses; fewer gives a meaningless fit
MAX_VIDEO_FRAMES = 60        # frames searched per video (evenly spread over it)
FAST_SEARCH_SIDE_PX = 1000   # video frames are searched for the board at most this large (then refined)
SAME_ASPECT_TOLERANCE = 0.002   # relative: a resolution mode of the same sensor (scale K)
CROP_TOLERANCE = 0.01        # relative per side: codec padding / cropping (1080 vs 1088), same pixels
UNDISTORT_ITERATIONS = 50    # at most this many fixed-point steps of the undistortion (stops at 1e-10)
FILM_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm: a 35-mm-equivalent focal length refers to this diagonal


@dataclass(frozen=True, eq=False)
class Intrinsics:
    """One camera's lens: focal lengths and principal point in pixels, distortion (k1, k2, p1, p2, k3), the
    upright frame size (width, height) px they hold for, the calibration's RMS reprojection error (px, None
    when guessed), and any further keys of the file (`extra`: board, views used, ...)."""

    fx: float
    fy: float
    cx: float
    cy: float
    dist: np.ndarray            # (5,) float64
    image_size: tuple[int, int]
    rms_px: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_dict(self) -> dict:
        """The FORMATS.md "Lens intrinsics" JSON object (extra keys after the required ones)."""
        return {"fx": float(self.fx), "fy": float(self.fy), "cx": float(self.cx), "cy": float(self.cy),
                "dist": [float(d) for d in self.dist], "image_size": [int(s) for s in self.image_size],
                "rms_px": None if self.rms_px is None else float(self.rms_px), **self.extra}

    def scaled_to(self, image_size: tuple[int, int] | Iterable[int]) -> "Intrinsics":
        """These intrinsics for frames of `image_size` (width, height) px from the same camera.

        - same size: unchanged;
        - same aspect ratio (a lower or higher resolution mode of the same sensor): fx, cx scale with the
          width, fy, cy with the height; the distortion (in normalized coordinates) is unchanged;
        - each side within 1 % (1080 vs 1088 px: the same sensor cropped by a few pixels, as encoders do to
          reach a multiple of 16): the same pixels; K and dist are kept and only image_size changes. The
          principal point may be off by up to the difference (8 px ≈ 0.3° of viewing direction at
          f ≈ 1700 px), below its own uncertainty from a board calibration;
        - portrait against landscape, or another aspect ratio (a different camera mode that crops the
          sensor): InvalidIntrinsicsError saying so.
        """
        w, h = (int(s) for s in image_size)
        if w <= 0 or h <= 0:
            raise InvalidIntrinsicsError(f"image size must be positive, got {w}x{h}")
        W, H = self.image_size
        if (w, h) == (W, H):
            return self
        extra = {**self.extra, "scaled_from": [W, H]}
        if abs((w / h) / (W / H) - 1.0) <= SAME_ASPECT_TOLERANCE:
            sx, sy = w / W, h / H
            return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, self.dist.copy(), (w, h),
                              self.rms_px, extra)
        if abs(w / W - 1.0) <= CROP_TOLERANCE and abs(h / H - 1.0) <= CROP_TOLERANCE:
            return Intrinsics(self.fx, self.fy, self.cx, self.cy, self.dist.copy(), (w, h), self.rms_px, extra)
        if W != H and abs((w / h) / (H / W) - 1.0) <= CROP_TOLERANCE:
            shape = "portrait" if H > W else "landscape"
            raise InvalidIntrinsicsError(
                f"the lens intrinsics are for {shape} frames ({W}x{H} px) but the video is {w}x{h} px: calibrate "
                f"with board pictures held the way the camera films (portrait stays portrait)")
        raise InvalidIntrinsicsError(
            f"the lens intrinsics are for {W}x{H} px frames but the video is {w}x{h} px, another aspect ratio "
            f"(a camera mode that crops the sensor differently): calibrate this camera in the mode it films with")


# -- the JSON file ---------------------------------------------------------------------------------------------
def load_intrinsics(source: Path | str | dict | Intrinsics, name: str | None = None) -> Intrinsics:
    """Validated intrinsics from a `CAM.json` path, its dict or an Intrinsics (`name` labels a dict in error
    messages).

    Raises InvalidIntrinsicsError naming the file and the key: missing keys, non-numbers, NaN/inf,
    focal lengths ≤ 0, an image size that is not two positive integers, a principal point outside the image,
    a distortion that is not 5 numbers.
    """
    if isinstance(source, Intrinsics):
        source = source.to_dict()
    if isinstance(source, dict):
        data, label = source, name or "lens intrinsics"
    else:
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise InvalidIntrinsicsError(f"{label}: lens intrinsics file not found")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidIntrinsicsError(f"{label}: not a readable JSON file ({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidIntrinsicsError(f"{label}: expected a JSON object with {', '.join(REQUIRED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise InvalidIntrinsicsError(
            f"{label}: missing key {missing[0]!r} (lens intrinsics need {', '.join(REQUIRED_KEYS)}; "
            f"make them with `mvcapture calibrate-intrinsics`)")

    def number(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidIntrinsicsError(f"{label}: key {key!r} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise InvalidIntrinsicsError(f"{label}: key {key!r} is {value} (NaN or infinite)")
        return float(value)

    size = data["image_size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise InvalidIntrinsicsError(f"{label}: key 'image_size' must be [width, height] in pixels (two positive "
                                     f"integers), got {size!r}")
    fx, fy, cx, cy = (number(k, data[k]) for k in ("fx", "fy", "cx", "cy"))
    for key, f in (("fx", fx), ("fy", fy)):
        if f <= 0:
            raise InvalidIntrinsicsError(f"{label}: key {key!r} (focal length) must be > 0 px, got {f}")
    w, h = size
    for key, c, extent in (("cx", cx, w), ("cy", cy, h)):
        if not 0 <= c <= extent:
            raise InvalidIntrinsicsError(f"{label}: key {key!r} = {c} lies outside the {w}x{h} image: is "
                                         f"'image_size' right (width first)?")
    dist = data["dist"]
    if not isinstance(dist, (list, tuple)) or len(dist) != 5:
        raise InvalidIntrinsicsError(f"{label}: key 'dist' must be 5 numbers [k1, k2, p1, p2, k3], got {dist!r}")
    dist = np.array([number("dist", d) for d in dist], np.float64)
    rms = data.get("rms_px")
    rms = None if rms is None else number("rms_px", rms)
    extra = {k: v for k, v in data.items() if k not in REQUIRED_KEYS and k != "rms_px"}
    return Intrinsics(fx, fy, cx, cy, dist, (int(w), int(h)), rms, extra)


def save_intrinsics(path: Path | str, intrinsics: Intrinsics | dict) -> Path:
    """Validate and write `intrinsics` (an Intrinsics or a FORMATS.md dict, extra keys kept) to `path` as
    JSON, atomically. Returns the path."""
    from mvcapture.io.atomic import atomic_write_json

    path = Path(path)
    checked = load_intrinsics(intrinsics, name=str(path))
    atomic_write_json(path, checked.to_dict())
    return path


def default_intrinsics(image_size: tuple[int, int] | Iterable[int], vfov_deg: float) -> Intrinsics:
    """A guessed pinhole: square pixels with a vertical field of view `vfov_deg` (degrees) over the frame
    height, principal point at the image centre (w/2, h/2) px, no distortion, rms_px None.

    Shape: image_size (2,) = (width, height) px.
    """
    w, h = (int(s) for s in image_size)
    if w <= 0 or h <= 0 or not 0 < vfov_deg < 180:
        raise ValueError(f"need a positive image size and 0 < vfov_deg < 180, got {w}x{h}, {vfov_deg}")
    f = 0.5 * h / math.tan(math.radians(vfov_deg) / 2)
    return Intrinsics(f, f, w / 2, h / 2, np.zeros(5), (w, h), None, {"guessed_vfov_deg": float(vfov_deg)})


def undistort_points(kp_px: np.ndarray, intrinsics: Intrinsics | dict | Path | str) -> np.ndarray:
    """Remove the lens distortion from pixel coordinates: where the points would be in an ideal pinhole
    camera with the same K (cv2.undistortPoints with P = K, iterated to convergence instead of its default
    5 steps, which leave up to 0.01 px in the corners of a strongly distorting lens, k1 = -0.3).

    Shape: kp_px (..., 2) px → (..., 2) float64 px. Non-finite points (missing keypoints) stay NaN.
    """
    import cv2

    lens = load_intrinsics(intrinsics)
    pts = np.asarray(kp_px, np.float64)
    if pts.ndim < 1 or pts.shape[-1] != 2:
        raise ValueError(f"kp_px must have shape (..., 2), got {pts.shape}")
    flat = pts.reshape(-1, 2)
    out = np.full_like(flat, np.nan)
    ok = np.isfinite(flat).all(axis=1)
    if ok.any():
        K = lens.K
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, UNDISTORT_ITERATIONS, 1e-10)
        out[ok] = cv2.undistortPointsIter(flat[ok].reshape(-1, 1, 2), K, lens.dist, None, K, criteria).reshape(-1, 2)
    return out.reshape(pts.shape)


# -- checkerboard calibration ------------------------------------------------------------------------------
def _pictures(sources: Iterable[Path | str]) -> list[tuple[Path, bool]]:
    """(path, is_image) per picture file or video; a folder stands for the pictures in it."""
    items: list[tuple[Path, bool]] = []
    for src in (Path(s) for s in sources):
        if src.is_dir():
            found = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise MvcaptureError(f"{src}: folder holds no pictures ({', '.join(IMAGE_SUFFIXES)})")
            items.extend((p, True) for p in found)
        elif not src.exists():
            raise MvcaptureError(f"{src}: file not found")
        else:
            items.append((src, src.suffix.lower() in IMAGE_SUFFIXES))
    if not items:
        raise MvcaptureError("no board pictures or videos given")
    return items


def _video_sample(path: Path) -> tuple[int, int]:
    """(frames to search, step between them) for a video: at most MAX_VIDEO_FRAMES, evenly spread."""
    from mvcapture.io.video import probe

    n = probe(path).frame_count
    step = max(1, math.ceil(n / MAX_VIDEO_FRAMES))
    return len(range(0, n, step)), step


def _frames(path: Path, is_image: bool, step: int) -> Iterator[tuple[str, np.ndarray]]:
    """(label, grey uint8 (H, W) image) of a picture, or of every `step`-th frame of a video (upright)."""
    import cv2

    if is_image:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise MvcaptureError(f"{path}: not a readable picture")
        yield path.name, image
        return
    from mvcapture.io.video import iter_frames

    for i, (t, frame) in enumerate(iter_frames(path, "bgr24")):
        if i % step == 0:
            yield f"{path.name}@{t:.2f}s", cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def find_board(image: np.ndarray, board: tuple[int, int], fast: bool = False) -> np.ndarray | None:
    """Checkerboard inner corners in a grey uint8 (H, W) image, refined to sub-pixel: (N, 1, 2) float32 px
    (N = board[0] * board[1], OpenCV's order), or None when the whole board is not found.

    `fast` (for video frames, most of which may show no board): search a copy at most FAST_SEARCH_SIDE_PX
    on its long side with OpenCV's quick rejection, then refine the corners in the full image (~0.1 s
    instead of ~0.6-1 s per 1080 × 1920 frame without a board; an odd board seen at a steep angle may be
    missed, which a video's many frames make up for).
    """
    import cv2

    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    scale = min(1.0, FAST_SEARCH_SIDE_PX / max(image.shape[:2])) if fast else 1.0
    search = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    found, corners = cv2.findChessboardCorners(search, tuple(board),
                                               flags=flags | (cv2.CALIB_CB_FAST_CHECK if fast else 0))
    if not found:
        return None
    corners = ((corners + 0.5) / scale - 0.5).astype(np.float32)  # pixel centres of the copy → the image
    grid = corners.reshape(board[1], board[0], 2)
    spacing = min(np.linalg.norm(np.diff(grid, axis=0), axis=-1).min(),
                  np.linalg.norm(np.diff(grid, axis=1), axis=-1).min())
    half = int(np.clip(spacing / 3, 2, 11))  # the search window must stay inside one square
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
    return cv2.cornerSubPix(image, corners, (half, half), (-1, -1), criteria)


def calibrate_intrinsics(sources: Iterable[Path | str], board: tuple[int, int] = (4, 7), square_mm: float = 60.0,
                         progress: Callable[[float, str], None] | None = None) -> dict:
    """Lens intrinsics of one camera from pictures and/or videos of a checkerboard (cv2.calibrateCamera).

    Args:
        sources: picture files, folders of pictures, or videos (up to MAX_VIDEO_FRAMES frames each, evenly
            spread, are searched), all from one camera in one orientation and resolution.
        board: inner corners per row and per column (a board of 5 × 8 squares has 4 × 7).
        square_mm: side of one square in millimetres (does not change the intrinsics; kept in the file).
        progress: called as `progress(fraction 0..1, message)` after each picture or frame searched.

    Returns:
        The FORMATS.md "Lens intrinsics" dict: fx, fy, cx, cy (px), dist [k1, k2, p1, p2, k3],
        image_size [w, h] px, rms_px, plus board, square_mm, views_used, pictures_searched, found_in
        (labels of the pictures/frames with a board), not_found, per_view_rms_px, created.

    Raises MvcaptureError when a source cannot be read, pictures differ in size, or the board is found in
    fewer than MIN_BOARD_VIEWS pictures.
    """
    import cv2

    cols, rows = (int(b) for b in board)
    if cols < 2 or rows < 2 or square_mm <= 0:
        raise ValueError(f"board needs at least 2x2 inner corners and square_mm > 0, got {cols}x{rows}, {square_mm}")
    items = _pictures(sources)
    plan = [(path, is_image, *((1, 1) if is_image else _video_sample(path))) for path, is_image in items]
    total = sum(n for _, _, n, _ in plan) or 1
    board_points = np.zeros((cols * rows, 3), np.float32)
    board_points[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * float(square_mm)
    corners_per_view: list[np.ndarray] = []
    found_in: list[str] = []
    not_found: list[str] = []
    size: tuple[int, int] | None = None
    size_from = ""
    searched = 0
    for path, is_image, _, step in plan:
        for label, grey in _frames(path, is_image, step):
            h, w = grey.shape[:2]
            if size is None:
                size, size_from = (w, h), label
            elif (w, h) != size:
                raise MvcaptureError(f"{label} is {w}x{h} px but {size_from} is {size[0]}x{size[1]} px: give "
                                     f"pictures of one camera, in one orientation and resolution")
            corners = find_board(grey, (cols, rows), fast=not is_image)
            (found_in if corners is not None else not_found).append(label)
            if corners is not None:
                corners_per_view.append(corners)
            searched += 1
            if progress is not None:
                state = "found" if corners is not None else "not found"
                progress(min(searched / total, 1.0), f"{label}: board {state}")
    if len(corners_per_view) < MIN_BOARD_VIEWS:
        raise MvcaptureError(
            f"the {cols}x{rows} board was found in {len(corners_per_view)} of {searched} pictures or frames; at least "
            f"{MIN_BOARD_VIEWS} are needed. Check --board (inner corners: a board of {cols + 1}x{rows + 1} "
            f"squares has {cols}x{rows}), the lighting, and that the whole board is in view, at several angles")
    rms, K, dist, _, _, _, _, per_view = cv2.calibrateCameraExtended(
        [board_points] * len(corners_per_view), corners_per_view, size, None, None)
    log.info("calibrated %s from %d views: rms %.3f px, K %s", size, len(corners_per_view), rms, K.tolist())
    result = {"fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
              "dist": [float(d) for d in dist.ravel()[:5]], "image_size": [int(size[0]), int(size[1])],
              "rms_px": float(rms), "board": [cols, rows], "square_mm": float(square_mm),
              "views_used": len(corners_per_view), "pictures_searched": searched, "found_in": found_in,
              "not_found": not_found, "per_view_rms_px": [float(e) for e in per_view.ravel()],
              "created": _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")}
    load_intrinsics(result, name="the calibration")  # a fit that went wrong (NaN, cx outside) is caught here
    return result


# -- focal length written by phones ---------------------------------------------------------------------------
def focal_from_tags(tags: dict[str, str], image_size: tuple[int, int] | Iterable[int]) -> float | None:
    """Focal length in pixels from container/stream metadata tags, or None when none says it.

    A tag whose name holds "focal" and "35mm" (Apple's `com.apple.quicktime.camera.focal_length.
    35mm_equivalent`, EXIF's FocalLengthIn35mmFilm / ...Format, case-insensitive) gives the 35-mm-equivalent
    focal length f35 in mm; f_px = f35 / 43.27 mm (the 36 × 24 mm film diagonal) × the image diagonal in px.
    Values outside 5–1000 mm are treated as absent.
    """
    w, h = (int(s) for s in image_size)
    diagonal_px = math.hypot(w, h)
    for key, value in tags.items():
        k = key.lower()
        if "focal" not in k or "35mm" not in k.replace("_", "").replace(" ", ""):
            continue
        m = re.search(r"\d+(?:\.\d+)?", str(value))
        if m and 5.0 <= float(m.group()) <= 1000.0:
            return float(m.group()) / FILM_DIAGONAL_MM * diagonal_px
    return None


def focal_from_metadata(video_path: Path | str) -> float | None:
    """Focal length in pixels that a phone wrote into its video (container or video-stream tags), or None.

    iPhones write the 35-mm-equivalent focal length (see `focal_from_tags`); most Android camera apps write
    none. The image diagonal is that of the decoded frames (rotation does not change it).
    """
    import av

    path = Path(video_path)
    if not path.is_file():
        raise MvcaptureError(f"{path}: file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MvcaptureError(f"{path}: contains no video track")
            stream = container.streams.video[0]
            tags = {**dict(container.metadata), **dict(stream.metadata)}
            size = (stream.codec_context.width, stream.codec_context.height)
    except av.error.FFmpegError as exc:
        raise MvcaptureError(f"{path}: not a readable video file ({exc})") from exc
    if min(size) <= 0:
        return None
    return focal_from_tags(tags, size)
