"""Webcam stand-ins for benchmarks: a video file transcoded once to what a USB webcam delivers (landscape
frames of a webcam size, at its frame rate, MJPEG), so that a `FileSource` playing it costs one MJPEG decode
per frame, as `cv2.VideoCapture` on a webcam does.

A camera is named by a spec: "720p30" = 1280×720 at 30 fps (likewise 360p, 480p = 640×480, 1080p; any frame
rate), or "native" = the file as it is. Portrait sources are not rotated: the upright picture is scaled to the
webcam's height and padded left and right with black (pillarbox), so the athlete stays upright.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mvcapture.errors import MvcaptureError

NATIVE = "native"
# Webcam frame sizes by their height: (width, height) px (480p is VGA, the webcams' 4:3 mode).
WEBCAM_SIZES = {360: (640, 360), 480: (640, 480), 720: (1280, 720), 1080: (1920, 1080)}
# JPEG quality of the stand-in's frames (USB webcams stream MJPEG at high quality: 100–250 kB per 720p frame).
JPEG_QUALITY = 90
CODEC = "mjpeg"


@dataclass(frozen=True)
class CameraSpec:
    """A webcam mode: frame size px and rate; `native` = play the file as it is (size, rate and codec)."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None

    @property
    def native(self) -> bool:
        return self.width is None

    def __str__(self) -> str:
        return NATIVE if self.native else f"{self.height}p{self.fps:g}"

    def to_dict(self) -> dict:
        return {"spec": str(self), **asdict(self), "codec": None if self.native else CODEC}


def parse_camera(spec: str) -> CameraSpec:
    """'720p30' → CameraSpec(1280, 720, 30.0); 'native' → CameraSpec(). Raises MvcaptureError otherwise."""
    text = spec.strip().lower()
    if text == NATIVE:
        return CameraSpec()
    m = re.fullmatch(r"(\d+)p(\d+(?:\.\d+)?)", text)
    heights = ", ".join(f"{h}p" for h in WEBCAM_SIZES)
    if not m or int(m.group(1)) not in WEBCAM_SIZES:
        raise MvcaptureError(f"camera {spec!r}: expected a webcam mode such as 720p30 (sizes {heights}, then the "
                             f"frame rate) or {NATIVE!r} (the videos as they are)")
    fps = float(m.group(2))
    if not 1 <= fps <= 120:
        raise MvcaptureError(f"camera {spec!r}: the frame rate must be between 1 and 120 fps")
    width, height = WEBCAM_SIZES[int(m.group(1))]
    return CameraSpec(width, height, fps)


def fit_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """An upright (H, W, 3) image scaled to fit `height` × `width` keeping its aspect, centred, the rest black
    (portrait pictures get bars left and right, wider ones above and below)."""
    import cv2

    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    out[y0:y0 + new_h, x0:x0 + new_w] = scaled
    return out


def resample_indices(times_s: np.ndarray, fps: float) -> np.ndarray:
    """Source frame shown at each tick of a camera running at `fps` over the clip: for tick k (time
    start + k / fps, while within the clip's duration) the source frame nearest to it (the earlier one of
    a tie). times_s (T,) sorted → (K,) indices."""
    times_s = np.asarray(times_s, np.float64)
    if len(times_s) < 2:
        return np.zeros(len(times_s), np.int64)
    period = float(np.median(np.diff(times_s)))
    duration = times_s[-1] - times_s[0] + period
    ticks = times_s[0] + np.arange(int(np.floor(duration * fps + 1e-6))) / fps
    return np.clip(np.searchsorted(times_s, ticks + period / 2, side="left") - 1, 0, len(times_s) - 1)


def webcam_video(video: Path | str, camera: CameraSpec, folder: Path | str) -> Path:
    """Transcode `video` once into `folder` as the webcam `camera` would film it: MJPEG in an AVI, the
    camera's size (pillarboxed / letterboxed, see `fit_frame`) and rate (`resample_indices`). Returns the
    new file (or `video` itself for a native camera)."""
    import cv2

    from mvcapture.io.video import frame_times, iter_frames

    if camera.native:
        return Path(video)
    out = Path(folder) / f"{Path(video).stem}_{camera}.avi"
    keep = resample_indices(frame_times(video), camera.fps)
    writer = cv2.VideoWriter(str(out), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), camera.fps,
                             (camera.width, camera.height))
    if not writer.isOpened():
        raise MvcaptureError(f"could not write the webcam stand-in {out} (OpenCV's MJPEG writer)")
    try:
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, JPEG_QUALITY)
        wanted = np.bincount(keep, minlength=int(keep.max()) + 1) if len(keep) else np.zeros(0, np.int64)
        for i, (_, image) in enumerate(iter_frames(video, pixel_format="bgr24")):
            if i >= len(wanted):
                break
            if wanted[i]:
                frame = fit_frame(image, camera.width, camera.height)
                for _ in range(int(wanted[i])):
                    writer.write(frame)
    finally:
        writer.release()
    return out
