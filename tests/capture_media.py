"""Small generated test videos for capture/import/session tests: a moving rectangle and the frame index
written as 10 black/white blocks along the top (readable back after lossy compression)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mvcapture.io.video import VideoWriter

BITS = 10


def draw_frame(index: int, width: int = 160, height: int = 120) -> np.ndarray:
    """BGR uint8 (height, width, 3): index bits in the top 16 rows, a rectangle moving with the index."""
    image = np.full((height, width, 3), 40, np.uint8)
    block = width // BITS
    for b in range(BITS):
        if (index >> b) & 1:
            image[:16, b * block:(b + 1) * block] = 255
    x = 10 + (index * 3) % max(1, width - 40)
    image[40:70, x:x + 20] = (0, 0, 255)
    return image


def read_index(image: np.ndarray) -> int:
    """The frame index drawn by `draw_frame` (image BGR or RGB, upright as drawn)."""
    width = image.shape[1]
    block = width // BITS
    gray = image[2:14].mean(axis=(0, 2))
    return sum(1 << b for b in range(BITS) if gray[b * block + 2:(b + 1) * block - 2].mean() > 128)


def make_video(path: Path, seconds: float = 2.0, fps: float = 30.0, size: tuple[int, int] = (160, 120),
               audio_rate: int | None = None, rotation_deg: int = 0, times: np.ndarray | None = None,
               audio: np.ndarray | None = None) -> Path:
    """Write a test video; `times` (s) gives explicit presentation times (VFR), else a constant `fps`.
    With `audio_rate`, a mono track is added: `audio` (float32 samples) or a click every 0.5 s."""
    width, height = size
    if times is None:
        times = np.arange(int(round(seconds * fps))) / fps
    with VideoWriter(path, width, height, fps, audio_rate=audio_rate, rotation_deg=rotation_deg) as writer:
        for i, t in enumerate(times):
            writer.write(draw_frame(i, width, height), t_s=float(t))
        if audio_rate and audio is not None:
            writer.write_audio(audio)
        elif audio_rate:
            n = int(round((times[-1] + 1.0 / fps) * audio_rate))
            samples = 0.01 * np.sin(np.arange(n) * 2 * np.pi * 440 / audio_rate).astype(np.float32)
            for c in np.arange(0.25, n / audio_rate, 0.5):
                k = int(c * audio_rate)
                samples[k:k + 100] = 0.8
            writer.write_audio(samples)
    return Path(path)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """The generated test videos, made once per test run (about 2 s each, 160x120 unless stated)."""
    root = tmp_path_factory.mktemp("capture_media")
    rng = np.random.default_rng(0)
    vfr_times = np.concatenate([[0.0], np.cumsum(rng.choice([1 / 60, 1 / 30, 1 / 15], size=44))])
    return {
        "a30": make_video(root / "a30.mp4", seconds=2.0, fps=30),
        "b25": make_video(root / "b25.mp4", seconds=2.0, fps=25, size=(128, 96)),
        "audio": make_video(root / "audio.mp4", seconds=2.0, fps=30, audio_rate=16000),
        "ntsc": make_video(root / "ntsc.mp4", seconds=2.0, fps=30000 / 1001),
        "portrait": make_video(root / "portrait.mp4", seconds=1.0, fps=30, rotation_deg=90),
        "vfr": make_video(root / "vfr.mp4", fps=30, times=vfr_times),
    }
