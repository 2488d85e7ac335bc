"""A generated scene for sync tests and the benchmark: one sound track and one moving skeleton, recorded
by virtual cameras/microphones that start at chosen times and run on clocks with chosen drifts.

A recording started at scene time `start_s` with drift d stamps the scene instant tau as
t = (1 + d) * (tau - start_s). For recordings A (drift 0) and B, `true_sync` gives the expected result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

# A standing person in COCO-17 order, metres, world frame y up, facing +z.
_COCO17_REST = np.array([
    [0.00, 1.62, 0.08], [0.03, 1.66, 0.06], [-0.03, 1.66, 0.06], [0.07, 1.64, 0.00], [-0.07, 1.64, 0.00],
    [0.18, 1.42, 0.00], [-0.18, 1.42, 0.00], [0.22, 1.12, 0.00], [-0.22, 1.12, 0.00],
    [0.24, 0.85, 0.05], [-0.24, 0.85, 0.05], [0.10, 0.95, 0.00], [-0.10, 0.95, 0.00],
    [0.10, 0.50, 0.02], [-0.10, 0.50, 0.02], [0.10, 0.08, 0.00], [-0.10, 0.08, 0.00],
])
# Body parts an action moves, as (joint, weight) lists in COCO-17 order.
_PARTS = (
    ((7, 0.5), (9, 1.0)), ((8, 0.5), (10, 1.0)),            # left / right arm
    ((13, 0.5), (15, 1.0)), ((14, 0.5), (16, 1.0)),         # left / right leg
    ((0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 0.7), (6, 0.7), (7, 0.6), (8, 0.6),
     (9, 0.5), (10, 0.5)),                                   # upper-body lean
)


def true_sync(start_a_s: float, start_b_s: float, drift_b_ppm: float = 0.0) -> tuple[float, float]:
    """(offset_s, drift_ppm) relating recording B to A (A's clock exact), per `mvcapture.sync.result`."""
    d = drift_b_ppm * 1e-6
    return (1.0 + d) * (start_a_s - start_b_s), drift_b_ppm


@dataclass
class SyntheticScene:
    """A `duration_s` long scene: audio (noise, chords, claps) and a COCO-17 skeleton acting in a room."""

    duration_s: float
    seed: int = 0
    audio_rate_hz: float = 32000.0
    _audio: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        # Actions: a body part moves out along a random direction and back (0.15-0.6 s), ~1.5 per second.
        n = int(1.5 * self.duration_s) + 1
        self._act_time = np.sort(rng.uniform(0.0, self.duration_s, n))
        self._act_width = rng.uniform(0.15, 0.6, n) / 2.0
        self._act_part = rng.integers(0, len(_PARTS), n)
        direction = rng.standard_normal((n, 3))
        self._act_move = direction / np.linalg.norm(direction, axis=1, keepdims=True) * rng.uniform(0.2, 0.5, (n, 1))
        self._sway_freq = rng.uniform(0.1, 0.5, size=(17, 3))
        self._sway_phase = rng.uniform(0, 2 * np.pi, size=(17, 3))
        self._root_freq = rng.uniform(0.03, 0.15, size=(2, 3))
        self._root_phase = rng.uniform(0, 2 * np.pi, size=(2, 3))
        self._yaw_freq, self._yaw_phase = rng.uniform(0.02, 0.08), rng.uniform(0, 2 * np.pi)

    # --- sound -------------------------------------------------------------------------------------
    def audio(self) -> np.ndarray:
        """The scene's sound at `audio_rate_hz` (mono float32, content below 3.5 kHz)."""
        if self._audio is None:
            self._audio = self._make_audio()
        return self._audio

    def _make_audio(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed + 1)
        rate = self.audio_rate_hz
        n = int(self.duration_s * rate) + 1
        sos = signal.butter(6, 3500.0, fs=rate, output="sos")
        out = 0.03 * rng.standard_normal(n).astype(np.float32)
        # Chords: three partials every 0.4-1.0 s with a decaying envelope.
        t0 = 0.0
        while t0 < self.duration_s:
            length = rng.uniform(0.4, 1.0)
            i0, i1 = int(t0 * rate), min(n, int((t0 + length) * rate))
            t = np.arange(i1 - i0) / rate
            chord = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                        for f in rng.uniform(150.0, 1500.0, size=3))
            out[i0:i1] += (0.05 * chord * np.exp(-t / (0.5 * length))).astype(np.float32)
            t0 += length
        # Claps: 30 ms noise bursts every 2-6 s.
        t0 = rng.uniform(0.2, 1.0)
        while t0 < self.duration_s - 0.1:
            i0 = int(t0 * rate)
            m = int(0.03 * rate)
            burst = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.008 * rate))
            out[i0:i0 + m] += burst[:n - i0].astype(np.float32)
            t0 += rng.uniform(2.0, 6.0)
        return signal.sosfilt(sos, out).astype(np.float32)

    def record_audio(self, rate_hz: float, start_s: float, duration_s: float, *, drift_ppm: float = 0.0,
                     noise: float = 0.01, seed: int = 0) -> np.ndarray:
        """What a microphone started at scene time `start_s` records (own noise added), float32 (N,)."""
        d = drift_ppm * 1e-6
        t = np.arange(int(round(duration_s * rate_hz))) / rate_hz
        tau = start_s + t / (1.0 + d)
        scene = self.audio()
        grid = np.arange(len(scene)) / self.audio_rate_hz
        inside = (tau >= 0) & (tau <= grid[-1])
        out = np.interp(tau, grid, scene) * inside
        rng = np.random.default_rng(seed)
        return (out + noise * rng.standard_normal(len(out))).astype(np.float32)

    # --- motion ------------------------------------------------------------------------------------
    def pose3d_world(self, times_s: np.ndarray) -> np.ndarray:
        """(T, 17, 3) joint positions (m, world: y up) at scene times `times_s`."""
        tau = np.asarray(times_s, dtype=np.float64)
        local = _COCO17_REST[None] + 0.02 * np.sin(2 * np.pi * self._sway_freq * tau[:, None, None]
                                                   + self._sway_phase)
        order = np.argsort(tau)
        sorted_tau = tau[order]
        for t0, w, part, move in zip(self._act_time, self._act_width, self._act_part, self._act_move):
            i0, i1 = np.searchsorted(sorted_tau, [t0 - 4 * w, t0 + 4 * w])
            if i0 == i1:
                continue
            idx = order[i0:i1]
            bump = np.exp(-0.5 * ((tau[idx] - t0) / w) ** 2)
            for joint, weight in _PARTS[part]:
                local[idx, joint] += weight * bump[:, None] * move
        yaw = 1.2 * np.sin(2 * np.pi * self._yaw_freq * tau + self._yaw_phase)
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.zeros((len(tau), 3, 3))
        rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1.0, -s, c
        root = np.sum(np.sin(2 * np.pi * self._root_freq[None] * tau[:, None, None] + self._root_phase[None]),
                      axis=-1)  # (T, 2)
        offset = np.stack([0.8 * root[:, 0], np.zeros_like(tau), 0.8 * root[:, 1]], axis=-1)
        return np.einsum("tij,tkj->tki", rot, local) + offset[:, None, :]

    def record_view(self, yaw_deg: float, fps: float, start_s: float, duration_s: float, *,
                    drift_ppm: float = 0.0, jitter_s: float = 0.0, noise_px: float = 1.0,
                    image_size: tuple[int, int] = (1280, 720), focal_px: float = 1000.0,
                    distance_m: float = 4.0, seed: int = 0) -> dict[str, np.ndarray]:
        """A camera on a circle of `distance_m` around the room centre at `yaw_deg`, looking at it.

        Frame times are k / fps on the camera's clock plus uniform jitter (variable frame rate).

        Returns:
            dict with kp2d_px (T, 17, 2), conf (T, 17), frame_times_s (T,), image_size (2,),
            pose3d_m (T, 17, 3) root-relative (mid-hip) in the camera frame with 1 cm noise.
        """
        rng = np.random.default_rng(seed)
        d = drift_ppm * 1e-6
        times = np.arange(int(round(duration_s * fps))) / fps
        if jitter_s:
            times = np.sort(times + rng.uniform(-jitter_s, jitter_s, size=len(times)))
        world = self.pose3d_world(start_s + times / (1.0 + d))
        yaw = np.deg2rad(yaw_deg)
        centre = np.array([distance_m * np.sin(yaw), 1.2, -distance_m * np.cos(yaw)])
        forward = -centre * np.array([1.0, 0.0, 1.0])
        forward /= np.linalg.norm(forward)
        down = np.array([0.0, -1.0, 0.0])
        right = np.cross(down, forward)
        rot = np.stack([right, down, forward])  # rows: camera x, y, z in world
        cam = (world - centre) @ rot.T
        w, h = image_size
        kp2d = focal_px * cam[..., :2] / cam[..., 2:3] + np.array([w / 2, h / 2])
        kp2d += noise_px * rng.standard_normal(kp2d.shape)
        root = 0.5 * (cam[:, 11:12] + cam[:, 12:13])
        pose3d = cam - root + 0.01 * rng.standard_normal(cam.shape)
        conf = np.clip(0.9 + 0.05 * rng.standard_normal(kp2d.shape[:2]), 0, 1)
        return {"kp2d_px": kp2d.astype(np.float32), "conf": conf.astype(np.float32), "frame_times_s": times,
                "image_size": np.array(image_size), "pose3d_m": pose3d.astype(np.float32)}
