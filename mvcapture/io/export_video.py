"""Side-by-side MP4 of a processed session: every view with its 2D overlay, and the aligned 3D skeletons.

One output frame per analysis frame, on the analysis time base: view v shows its source frame nearest to
`times_s[t] + offset_s[v]` (its own timeline), so the panels are synchronized even when the cameras started
at different times. Written with PyAV (H.264 when the build has it, else MPEG-4).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from mvcapture.analysis import Analysis
from mvcapture.errors import MvcaptureError
from mvcapture.io.render import VIEW_COLOURS_BGR, draw_skeleton_2d, put_label, render_skeletons_3d
from mvcapture.io.video import VideoWriter, frame_times, iter_frames

log = logging.getLogger(__name__)

# progress(frames_done, frames_total)
ProgressCallback = Callable[[int, int], None]
DEFAULT_HEIGHT_PX = 720
# joints of the 3D view go from green (0 mm) to red (this residual and above), as in io.render
RESIDUAL_RED_MM = 100.0
_BACKGROUND_BGR = (30, 30, 30)


class ExportCancelled(MvcaptureError):
    """The user cancelled the video export; no file was written."""


class _ViewFrames:
    """Decoded frames of one view, picked by frame index in increasing order (decodes each frame once)."""

    def __init__(self, path: Path):
        self._frames = iter_frames(path, pixel_format="bgr24")
        self._index = -1
        self._image: np.ndarray | None = None
        self._ended = False

    def get(self, index: int) -> np.ndarray | None:
        while self._index < index and not self._ended:
            item = next(self._frames, None)
            if item is None:
                self._ended = True
                break
            self._index += 1
            self._image = item[1]
        return self._image if self._index == index else None

    def close(self) -> None:
        self._frames.close()


def source_frame_indices(times_s: np.ndarray, offset_s: float, view_times_s: np.ndarray) -> np.ndarray:
    """For each analysis time, the index of the view's nearest frame, or -1 where the view has no frame there.

    Args:
        times_s: (T,) analysis times (view 0's timeline), seconds.
        offset_s: the view's offset (t_view = t_view0 + offset_s), seconds.
        view_times_s: (N,) the view's frame times (increasing), seconds.

    Returns:
        (T,) int64 frame indices into the view's video; -1 where the nearest frame is more than half a frame
        interval away (before the view started or after it ended).
    """
    view_times_s = np.asarray(view_times_s, np.float64)
    target = np.asarray(times_s, np.float64) + float(offset_s)
    if len(view_times_s) == 0:
        return np.full(len(target), -1, np.int64)
    right = np.clip(np.searchsorted(view_times_s, target), 0, len(view_times_s) - 1)
    left = np.clip(right - 1, 0, len(view_times_s) - 1)
    nearest = np.where(np.abs(view_times_s[left] - target) <= np.abs(view_times_s[right] - target), left, right)
    interval = float(np.median(np.diff(view_times_s))) if len(view_times_s) > 1 else np.inf
    return np.where(np.abs(view_times_s[nearest] - target) <= 0.501 * interval, nearest, -1).astype(np.int64)


def panel_layout(image_sizes: np.ndarray, height: int) -> list[int]:
    """Widths (even, px) of the view panels at `height` px, followed by the square 3D panel's width."""
    widths = [max(2, int(round(w * height / h / 2)) * 2) for w, h in np.asarray(image_sizes, np.float64)]
    return widths + [height]


def _label_scale(height: int) -> float:
    return max(0.4, 0.7 * height / DEFAULT_HEIGHT_PX)


def _view_panel(image: np.ndarray | None, kp2d_px: np.ndarray, conf: np.ndarray, image_size: np.ndarray,
                width: int, height: int, colour, label: str) -> np.ndarray:
    """One view at (height, width) with its 2D skeleton; a dark panel saying so where the view has no frame."""
    if image is None:
        panel = np.full((height, width, 3), _BACKGROUND_BGR, np.uint8)
        scale = _label_scale(height)
        put_label(panel, "no frame at this time", (int(10 * scale / 0.7), height // 2), scale=scale)
    else:
        panel = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        # keypoints are in the analysed image's pixels; the decoded frame may have another size
        sx, sy = width / float(image_size[0]), height / float(image_size[1])
        draw_skeleton_2d(panel, kp2d_px * [sx, sy], conf, colour=colour)
    scale = _label_scale(height)
    put_label(panel, label, (int(10 * scale / 0.7), int(28 * scale / 0.7)), colour=colour, scale=scale)
    return panel


def _residual_legend(panel: np.ndarray) -> None:
    """A green → red bar with its millimetre range at the bottom of the 3D panel."""
    h, w = panel.shape[:2]
    scale = _label_scale(h)
    x0, x1 = int(0.1 * w), int(0.6 * w)
    y1 = h - int(14 * scale / 0.7)
    y0 = y1 - max(4, int(10 * scale / 0.7))
    for x in range(x0, x1):
        r = (x - x0) / max(1, x1 - x0 - 1)
        panel[y0:y1, x] = (0, int(255 * (1 - r)), int(255 * r))
    put_label(panel, f"0-{RESIDUAL_RED_MM:.0f} mm", (x1 + int(8 * scale / 0.7), y1), scale=scale * 0.8)


def _panel_3d(analysis: Analysis, t: int, size: int) -> np.ndarray:
    panel = render_skeletons_3d(analysis.aligned[:, t], size=(size, size), joint_error_mm=analysis.residual_mm[t])
    scale = _label_scale(size)
    step = int(30 * scale / 0.7)
    x = int(10 * scale / 0.7)
    put_label(panel, f"frame {t + 1}/{analysis.num_frames}  {analysis.times_s[t] - analysis.times_s[0]:.2f} s",
              (x, step), scale=scale)
    residual = analysis.residual_mm[t]
    text = f"residual {np.nanmean(residual):.0f} mm" if np.isfinite(residual).any() else "residual -"
    put_label(panel, text, (x, 2 * step), scale=scale)
    for v in range(analysis.num_views):
        colour = VIEW_COLOURS_BGR[v % len(VIEW_COLOURS_BGR)]
        put_label(panel, f"view {v}", (x, (3 + v) * step), colour=colour, scale=scale * 0.8)
    _residual_legend(panel)
    return panel


def compose_frame(analysis: Analysis, t: int, images: Sequence[np.ndarray | None], height: int) -> np.ndarray:
    """The output frame for analysis frame t: view panels then the 3D panel, (height, width, 3) uint8 BGR."""
    widths = panel_layout(analysis.image_size, height)
    panels = []
    for v, image in enumerate(images):
        colour = VIEW_COLOURS_BGR[v % len(VIEW_COLOURS_BGR)]
        label = f"view {v}" if v == 0 else f"view {v}  {analysis.camera_angle_deg[v]:.0f} deg from view 0"
        panels.append(_view_panel(image, analysis.kp2d[v, t], analysis.conf[v, t], analysis.image_size[v],
                                  widths[v], height, colour, label))
    panels.append(_panel_3d(analysis, t, widths[-1]))
    return np.concatenate(panels, axis=1)


def export_mp4(analysis: Analysis, videos: Sequence[Path | str], out_path: Path | str,
               view_times_s: Sequence[np.ndarray] | None = None, height: int = DEFAULT_HEIGHT_PX,
               progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> Path:
    """Write the side-by-side video of a processed session.

    Args:
        analysis: the processed session.
        videos: one video file per view, in view order.
        out_path: the .mp4 to write (written next to it first, renamed when complete).
        view_times_s: per view, the (N,) frame times on its timeline in seconds (a session's timestamp
            tables); default: the videos' presentation times.
        height: output height in pixels (even); each view is scaled to it, the 3D panel is height × height.
        progress: called as progress(frames_done, frames_total) after each frame.
        cancel: when set, writing stops, the partial file is removed and `ExportCancelled` is raised.

    Returns:
        out_path. The frame is (height, sum of panel widths); see `panel_layout`.
    """
    analysis.validate()
    videos = [Path(p) for p in videos]
    if len(videos) != analysis.num_views:
        raise MvcaptureError(f"the analysis has {analysis.num_views} views but {len(videos)} videos were given")
    height = max(2, int(height) // 2 * 2)
    if view_times_s is None:
        view_times_s = [frame_times(p) for p in videos]
    indices = [source_frame_indices(analysis.times_s, analysis.offset_s[v], view_times_s[v])
               for v in range(analysis.num_views)]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.partial{out_path.suffix}")
    width = sum(panel_layout(analysis.image_size, height))
    total = analysis.num_frames
    sources = [_ViewFrames(p) for p in videos]
    try:
        with VideoWriter(tmp, width, height, analysis.fps) as writer:
            log.info("writing %s: %d frames, %dx%d, %s", out_path, total, width, height, writer.codec)
            for t in range(total):
                if cancel is not None and cancel.is_set():
                    raise ExportCancelled(f"video export cancelled at frame {t}; {out_path.name} was not written")
                images = [src.get(int(idx[t])) if idx[t] >= 0 else None for src, idx in zip(sources, indices)]
                writer.write(compose_frame(analysis, t, images, height),
                             t_s=float(analysis.times_s[t] - analysis.times_s[0]))
                if progress is not None:
                    progress(t + 1, total)
        os.replace(tmp, out_path)
    finally:
        for src in sources:
            src.close()
        tmp.unlink(missing_ok=True)
    return out_path
