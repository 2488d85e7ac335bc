"""Video and audio files through PyAV: probe, decode frames with their presentation times, extract audio, write.

Frames come out upright (the container's rotation / display matrix is applied), as uint8 (H, W, 3) RGB or BGR,
with their presentation time in seconds on the file's timeline, so variable-frame-rate phone videos keep their
true timing. Audio comes out as mono float32 on the same timeline (sample i is at i / sample_rate seconds).
Any file PyAV cannot read raises `MvcaptureError` naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from mvcapture.errors import MvcaptureError

log = logging.getLogger(__name__)

# Preferred video encoders, best first; the first one the installed PyAV/FFmpeg offers is used.
VIDEO_CODECS = ("libx264", "mpeg4")
# Time base of written video: exact for 30, 25, 60 and 30000/1001 fps, and fine for VFR timestamps.
# (MPEG-4 part 2 allows at most 65535 ticks per second.)
WRITE_TIME_BASE = Fraction(1, 90000)
MPEG4_TIME_BASE = Fraction(1, 30000)


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` found in a media file. Sizes are in pixels; `width`/`height` are upright (rotation applied)."""

    path: str
    format: str
    video_codec: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation_deg: int  # counter-clockwise display rotation stored in the file (0, 90, 180, 270)
    fps: float  # average frame rate (frame_count / duration for VFR files)
    frame_count: int
    duration_s: float
    start_s: float  # presentation time of the first frame
    variable_frame_rate: bool
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def _open(path: Path | str) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise MvcaptureError(f"{path}: file not found")
    if path.is_dir():
        raise MvcaptureError(f"{path}: is a folder, not a video file")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        reason = (getattr(exc, "strerror", None) or str(exc)).strip().rstrip(".")
        raise MvcaptureError(f"{path}: not a readable video file or an unsupported format ({reason[:1].lower()}"
                             f"{reason[1:]})") from exc


def _video_stream(container, path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise MvcaptureError(f"{path}: contains no video track")
    return container.streams.video[0]


@contextlib.contextmanager
def _readable(path):
    """Turn PyAV decoding errors inside the block into `MvcaptureError` naming the file."""
    try:
        yield
    except av.error.FFmpegError as exc:
        raise MvcaptureError(f"{path}: the file is damaged or unsupported and could not be decoded ({exc})") from exc


def _quarter_turns(rotation_deg: float) -> int:
    return int(round(rotation_deg / 90.0)) % 4


def upright(image: np.ndarray, rotation_deg: float) -> np.ndarray:
    """Apply a counter-clockwise display rotation (as stored in the file) to a decoded (H, W, C) image."""
    k = _quarter_turns(rotation_deg)
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


def frame_times(path: Path | str) -> np.ndarray:
    """Presentation time (s) of every video frame, in display order, from the packets (no decoding).

    Shape (T,) float64. Works for variable frame rate; this is what session timestamp tables hold for imports.
    """
    container = _open(path)
    with container, _readable(path):
        stream = _video_stream(container, path)
        tb = float(stream.time_base)
        # packets flagged "discard" are cut by an edit list (trimmed phone clips): decoders drop them too
        pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0 and not p.is_discard]
    if not pts:
        raise MvcaptureError(f"{path}: the video track holds no frames")
    return np.sort(np.asarray(pts, dtype=np.float64)) * tb


VIDEO_EXTENSIONS_HINT = (".mp4", ".mov", ".mkv", ".avi", ".webm")


def probe(path: Path | str) -> MediaInfo:
    """Duration, frame rate, frame count, size, rotation and audio of a media file (reads packets, decodes one frame)."""
    times = frame_times(path)
    container = _open(path)
    with container, _readable(path):
        stream = _video_stream(container, path)
        first = next(container.decode(stream), None)
        if first is None:
            raise MvcaptureError(f"{path}: no video frame could be decoded")
        rotation = _quarter_turns(first.rotation or 0) * 90
        coded_w, coded_h = first.width, first.height
        audio = container.streams.audio[0] if container.streams.audio else None
        fmt = container.format.name
        codec = stream.codec_context.name
    if fmt == "image2" or fmt.endswith("_pipe"):  # a picture (PNG, JPEG, ...) whatever its file name says
        raise MvcaptureError(f"{path}: is a picture ({fmt.removesuffix('_pipe')}), not a video; expected a video "
                             f"file ({', '.join(VIDEO_EXTENSIONS_HINT)})")
    n = len(times)
    intervals = np.diff(times)
    if n > 1:
        median = float(np.median(intervals))
        duration = float(times[-1] - times[0]) + median
        vfr = bool(np.max(np.abs(intervals - median)) > 0.1 * median)
        fps = (n - 1) / float(times[-1] - times[0]) if times[-1] > times[0] else 0.0
    else:
        duration, vfr, fps = 0.0, False, float(stream.average_rate or 0)
    w, h = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    return MediaInfo(
        path=str(path), format=fmt, video_codec=codec, width=w, height=h, coded_width=coded_w,
        coded_height=coded_h, rotation_deg=rotation, fps=fps, frame_count=n, duration_s=duration,
        start_s=float(times[0]), variable_frame_rate=vfr, has_audio=audio is not None,
        audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
        audio_channels=int(audio.codec_context.channels) if audio is not None else None,
    )


def iter_frames(path: Path | str, pixel_format: str = "rgb24", start_s: float | None = None,
                end_s: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield `(t_s, image)` for each video frame: t_s its presentation time (s), image upright uint8 (H, W, 3).

    `pixel_format` is "rgb24" or "bgr24" (OpenCV order). `start_s`/`end_s` keep frames with start_s <= t_s < end_s
    (seeking to the keyframe before start_s).
    """
    if pixel_format not in ("rgb24", "bgr24"):
        raise ValueError(f"pixel_format must be 'rgb24' or 'bgr24', not {pixel_format!r}")
    container = _open(path)
    with container, _readable(path):
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        if start_s:
            container.seek(int(start_s / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base)
            if start_s is not None and t < start_s - 1e-9:
                continue
            if end_s is not None and t >= end_s:
                break
            yield t, upright(frame.to_ndarray(format=pixel_format), frame.rotation or 0)


def read_frames(path: Path | str, pixel_format: str = "rgb24", start_s: float | None = None,
                end_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All frames of a (short) video at once: `(times_s (T,), images (T, H, W, 3) uint8)`."""
    times, images = [], []
    for t, image in iter_frames(path, pixel_format, start_s, end_s):
        times.append(t)
        images.append(image)
    if not images:
        raise MvcaptureError(f"{path}: no video frame could be decoded")
    return np.asarray(times), np.stack(images)


def read_audio(path: Path | str, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """The first audio track as mono float32 samples in [-1, 1] and its sample rate (resampled if `sample_rate`).

    Sample i sits at time i / rate on the file's timeline (the same timeline as `iter_frames` times): a track
    that starts late is padded with zeros at the front, samples before time 0 are dropped.
    """
    container = _open(path)
    with container, _readable(path):
        if not container.streams.audio:
            raise MvcaptureError(f"{path}: has no audio track")
        stream = container.streams.audio[0]
        rate = int(sample_rate or stream.codec_context.sample_rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        for frame in container.decode(stream):
            if first_time is None and frame.pts is not None:
                first_time = float(frame.pts * stream.time_base)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    lead = int(round((first_time or 0.0) * rate))
    if lead > 0:
        samples = np.concatenate([np.zeros(lead, np.float32), samples])
    elif lead < 0:
        samples = samples[-lead:]
    return samples, rate


def available_video_codec() -> str:
    """The best H.264-or-fallback encoder the installed PyAV offers (see VIDEO_CODECS)."""
    for name in VIDEO_CODECS:
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        return name
    raise MvcaptureError("this installation of PyAV has neither an H.264 nor an MPEG-4 video encoder")


class VideoWriter:
    """Write uint8 BGR (or RGB) frames to a video file, each at a given time or at a constant rate.

    H.264 (libx264, ultrafast, zero latency: no frame is held back in the encoder) when available, else MPEG-4.
    Odd frame sizes are cropped by one pixel (4:2:0 needs even sizes). With `audio_rate`, an AAC mono track is
    added and `write_audio` appends float32 samples. `rotation_deg` stores a counter-clockwise display rotation.
    """

    def __init__(self, path: Path | str, width: int, height: int, fps: float, codec: str | None = None,
                 pixel_format: str = "bgr24", audio_rate: int | None = None, rotation_deg: int = 0,
                 crf: int = 23):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = int(width) // 2 * 2, int(height) // 2 * 2
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"cannot write a {width}x{height} video")
        self.fps = float(fps)
        self.pixel_format = pixel_format
        self.codec = codec or available_video_codec()
        self.frames_written = 0
        self._last_pts = -1
        self._container = av.open(str(self.path), mode="w", options=_muxer_options(self.path))
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream(self.codec, rate=rate)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv420p"
        self._time_base = WRITE_TIME_BASE if self.codec != "mpeg4" else MPEG4_TIME_BASE
        stream.time_base = self._time_base
        stream.codec_context.time_base = self._time_base
        if self.codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": str(crf)}
        else:
            stream.bit_rate = max(200_000, self.width * self.height * 4)
        if rotation_deg:
            stream.set_display_rotation(rotation_deg)
        self._video = stream
        self._audio = None
        if audio_rate:
            self._audio = self._container.add_stream("aac", rate=int(audio_rate), layout="mono")
            self._audio_samples = 0

    def write(self, image: np.ndarray, t_s: float | None = None) -> None:
        """Encode one (H, W, 3) uint8 frame shown at `t_s` seconds (default: frame index / fps)."""
        if t_s is None:
            t_s = self.frames_written / self.fps
        pts = int(round(t_s / self._time_base))
        if pts <= self._last_pts:  # presentation times must increase strictly
            pts = self._last_pts + 1
        self._last_pts = pts
        image = np.ascontiguousarray(image[: self.height, : self.width])
        frame = av.VideoFrame.from_ndarray(image, format=self.pixel_format)
        frame.pts = pts
        frame.time_base = self._time_base
        for packet in self._video.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def write_audio(self, samples: np.ndarray) -> None:
        """Append mono float32 samples in [-1, 1] to the audio track (needs `audio_rate`)."""
        if self._audio is None:
            raise ValueError("this writer has no audio track (pass audio_rate)")
        samples = np.ascontiguousarray(np.asarray(samples, np.float32).reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = self._audio.rate
        frame.pts = self._audio_samples
        frame.time_base = Fraction(1, self._audio.rate)
        self._audio_samples += samples.shape[1]
        for packet in self._audio.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and finish the file (idempotent)."""
        if self._container is None:
            return
        try:
            for packet in self._video.encode():
                self._container.mux(packet)
            if self._audio is not None:
                for packet in self._audio.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def concat_videos(parts: list[Path], out_path: Path | str) -> int:
    """Join video files written by `VideoWriter` with identical settings into one, without re-encoding.

    Presentation times are kept as they are in the parts (they continue across parts). Returns the number of
    video packets (frames) written. The output is written next to `out_path` and renamed onto it when complete.
    """
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.partial{out_path.suffix}")
    n = 0
    with av.open(str(tmp), mode="w", format="mp4", options=_muxer_options(out_path)) as out:
        out_stream = None
        last_dts = None
        for part in parts:
            with av.open(str(part)) as src:
                stream = src.streams.video[0]
                if out_stream is None:
                    out_stream = out.add_stream_from_template(stream)
                    rotation = _stream_rotation(src, stream)
                    if rotation:
                        out_stream.set_display_rotation(rotation)
                for packet in src.demux(stream):
                    if packet.dts is None or packet.size == 0:
                        continue
                    if last_dts is not None and packet.dts <= last_dts:
                        continue
                    last_dts = packet.dts
                    packet.stream = out_stream
                    out.mux(packet)
                    n += 1
    os.replace(tmp, out_path)
    return n


def _stream_rotation(container, stream) -> int:
    frame = next(container.decode(stream), None)
    container.seek(0)
    return _quarter_turns(frame.rotation or 0) * 90 if frame is not None else 0


def _muxer_options(path: Path) -> dict[str, str]:
    # MP4/MOV would otherwise round presentation times to the codec's time base (often 1 ms)
    return {"video_track_timescale": "90000", "movie_timescale": "90000"} if path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
