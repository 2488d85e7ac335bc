"""Running the lifter: offline clips of any length (tiled windows), live frame-by-frame, metres.

Input 2D is H36M-17 pixels (COCO-17 detections: `lift_coco`, or map with core.skeleton.coco_to_h36m
first); output is root-relative normalized 2.5D (core.normalize), converted to metres by `to_metres`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable

import numpy as np
import torch

from mvcapture.core.normalize import (DEFAULT_ATHLETE_HEIGHT_M, HEIGHT_PROXY_RATIO, height_proxy,
                                      norm25d_to_camera, norm25d_to_metres, normalize_kp2d)
from mvcapture.core.sides import OnlineSideRepair
from mvcapture.core.skeleton import H36M17_FLIP_PERMUTATION, coco_to_h36m
from mvcapture.lifter.dstformer import DSTformer

log = logging.getLogger(__name__)

# Frames of the moving median that steadies the per-frame body size (and so the root depth) in `to_metres`.
BODY_SIZE_MEDIAN_FRAMES = 9
# Called with (windows done, windows in total) while a clip is lifted.
ProgressCallback = Callable[[int, int], None]


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or the best available: CUDA, then Apple MPS, then CPU."""
    if device is not None and str(device) != "auto":
        from mvcapture.errors import MvcaptureError

        try:
            device = torch.device(device)
        except RuntimeError:
            raise MvcaptureError(f"unknown device {str(device)[:40]!r}; use cuda, cuda:N, mps or cpu") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise MvcaptureError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def flip_norm(poses: torch.Tensor) -> torch.Tensor:
    """Mirror (..., 17, C) normalized poses: negate x, swap left and right joints."""
    flipped = poses[..., torch.as_tensor(H36M17_FLIP_PERMUTATION, device=poses.device), :].clone()
    flipped[..., 0] = -flipped[..., 0]
    return flipped


def tile_windows(num_frames: int, window: int, overlap: int) -> list[int]:
    """Start frames of windows of `window` frames covering `num_frames` (>= window), evenly spaced,
    consecutive windows overlapping by at least `overlap` frames; the last one ends at the clip end."""
    if num_frames <= window:
        return [0]
    stride = max(window - overlap, 1)
    count = 1 + -(-(num_frames - window) // stride)
    return [int(s) for s in np.round(np.linspace(0, num_frames - window, count)).astype(int)]


def _blend_weights(starts: list[int], window: int) -> list[np.ndarray]:
    """Per-window frame weights: 1 inside, linear ramps across the overlap with each neighbour."""
    weights = []
    for i, start in enumerate(starts):
        w = np.ones(window, np.float64)
        if i > 0:
            overlap = starts[i - 1] + window - start
            if overlap > 0:
                w[:overlap] = np.minimum(w[:overlap], np.arange(1, overlap + 1) / (overlap + 1))
        if i + 1 < len(starts):
            overlap = start + window - starts[i + 1]
            if overlap > 0:
                w[window - overlap:] = np.minimum(w[window - overlap:], np.arange(overlap, 0, -1) / (overlap + 1))
        weights.append(w)
    return weights


class Lifter:
    """A DSTformer ready for inference: device, precision, batching, tiling, flip test-time augmentation.

    Args:
        model: the network (its config gives the window length `maxlen`).
        card: model card (FORMATS.md) of its weights, or None for an untrained model.
        device: "cuda", "mps", "cpu" or None for the best available.
        precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "bf16" or "fp32".
        compile: wrap the model in `torch.compile` (worth it for long offline runs on a GPU).
        batch_size: windows per forward pass offline.
        overlap: frames shared by consecutive offline windows (default a third of the window).
    """

    def __init__(self, model: DSTformer, card: dict | None = None, device: str | torch.device | None = None,
                 precision: str = "auto", compile: bool = False, batch_size: int = 16, overlap: int | None = None):
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
        self.device = select_device(device)
        self.model = model.to(self.device).eval()
        self.card = dict(card or {"name": f"untrained-{model.config_name}"})
        bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self.autocast_dtype = torch.bfloat16 if bf16 else None
        self._forward = torch.compile(self.model) if compile else self.model
        self.compiled = bool(compile)
        self.batch_size = int(batch_size)
        self.overlap = self.window // 3 if overlap is None else int(overlap)
        if not 0 <= self.overlap < self.window:
            raise ValueError(f"overlap must be in [0, {self.window}), got {self.overlap}")

    @property
    def config(self):
        return self.model.config

    @property
    def precision(self) -> str:
        """"bf16" (autocast) or "fp32": what the forward passes run in."""
        return "bf16" if self.autocast_dtype is not None else "fp32"

    @property
    def config_name(self) -> str:
        return self.model.config_name

    @property
    def name(self) -> str:
        """Model name (and version when the card has one), for logs and outputs."""
        version = self.card.get("version")
        return f"{self.card.get('name')}@{version}" if version else str(self.card.get("name"))

    @property
    def window(self) -> int:
        """Frames per window (the model's maxlen)."""
        return self.model.maxlen

    @property
    def attention(self) -> str:
        """"sdpa" (fused) or "reference" (eager fp32 matmul-softmax); settable."""
        return self.model.attention

    @attention.setter
    def attention(self, mode: str) -> None:
        self.model.attention = mode

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @torch.inference_mode()
    def lift_windows(self, windows_norm, flip: bool = False) -> np.ndarray:
        """Lift a batch of normalized windows in one forward pass.

        Args:
            windows_norm: (B, T, 17, 3) normalized x, y, conf (`normalize_kp2d`), T <= window.
            flip: also lift the mirrored windows and average (test-time augmentation).

        Returns:
            (B, T, 17, 3) float32 root-relative normalized 2.5D.
        """
        x = torch.as_tensor(np.asarray(windows_norm, np.float32) if not torch.is_tensor(windows_norm)
                            else windows_norm, dtype=torch.float32).to(self.device)
        if x.ndim != 4 or x.shape[-2:] != (17, 3):
            raise ValueError(f"windows_norm must have shape (B, T, 17, 3), got {tuple(x.shape)}")
        if flip:
            x = torch.cat([x, flip_norm(x)], dim=0)
        with self._autocast():
            y = self._forward(x).float()
        if flip:
            half = y.shape[0] // 2
            y = 0.5 * (y[:half] + flip_norm(y[half:]))
        y = y - y[..., :1, :]
        return y.cpu().numpy()

    def lift_sequences(self, sequences_norm: list[np.ndarray], flip: bool = False,
                       progress: ProgressCallback | None = None) -> list[np.ndarray]:
        """Lift normalized sequences of any length, batching the windows of all of them.

        Each sequence of T frames is cut into windows of `window` frames (`tile_windows`); predictions
        are blended with linear cross-fades where windows overlap. A sequence shorter than a window is
        padded at its end by repeating its last frame.

        Args:
            sequences_norm: list of (T_i, 17, 3) normalized x, y, conf.

        Returns:
            list of (T_i, 17, 3) float32 root-relative normalized 2.5D.
        """
        W = self.window
        windows, index = [], []
        for s, seq in enumerate(sequences_norm):
            seq = np.asarray(seq, np.float32)
            if seq.ndim != 3 or seq.shape[1:] != (17, 3) or len(seq) == 0:
                raise ValueError(f"sequence {s} must have shape (T>0, 17, 3), got {seq.shape}")
            if len(seq) < W:
                seq = np.concatenate([seq, np.repeat(seq[-1:], W - len(seq), axis=0)])
            for start in tile_windows(len(seq), W, self.overlap):
                windows.append(seq[start:start + W])
                index.append((s, start))
        preds = []
        for b in range(0, len(windows), self.batch_size):
            preds.append(self.lift_windows(np.stack(windows[b:b + self.batch_size]), flip=flip))
            if progress:
                progress(min(b + self.batch_size, len(windows)), len(windows))
        preds = np.concatenate(preds)
        outputs = []
        for s, seq in enumerate(sequences_norm):
            T = max(len(seq), W)
            rows = [i for i, (si, _) in enumerate(index) if si == s]
            starts = [index[i][1] for i in rows]
            acc = np.zeros((T, 17, 3), np.float64)
            total = np.zeros((T, 1, 1), np.float64)
            for i, start, w in zip(rows, starts, _blend_weights(starts, W)):
                acc[start:start + W] += w[:, None, None] * preds[i]
                total[start:start + W] += w[:, None, None]
            outputs.append((acc / total)[:len(seq)].astype(np.float32))
        return outputs

    def lift_clip(self, kp2d_px, conf, image_size, flip: bool = False,
                  progress: ProgressCallback | None = None) -> np.ndarray:
        """Lift one view of a clip.

        Args:
            kp2d_px: (T, 17, 2) H36M-17 pixels. conf: (T, 17), 0 = missing. image_size: (2,) width, height.
            flip: flip test-time augmentation.

        Returns:
            (T, 17, 3) float32 root-relative normalized 2.5D.
        """
        kp2d_px, conf = np.asarray(kp2d_px, np.float32), np.asarray(conf, np.float32)
        if kp2d_px.ndim != 3:
            raise ValueError(f"kp2d_px must have shape (T, 17, 2), got {kp2d_px.shape}")
        norm = normalize_kp2d(kp2d_px, conf, np.asarray(image_size, np.float32))
        return self.lift_sequences([norm], flip=flip, progress=progress)[0]

    def lift_coco(self, kp2d_coco_px, conf_coco, image_size, flip: bool = False) -> np.ndarray:
        """`lift_clip` for COCO-17 detections (mapped with core.skeleton.coco_to_h36m)."""
        kp2d, conf = coco_to_h36m(np.asarray(kp2d_coco_px, np.float32), np.asarray(conf_coco, np.float32))
        return self.lift_clip(kp2d, conf, image_size, flip=flip)

    def lift_views(self, clip, flip: bool = False, progress: ProgressCallback | None = None) -> np.ndarray:
        """Lift every view of a MultiViewClip independently (monocular) → (V, T, 17, 3) normalized 2.5D."""
        norm = normalize_kp2d(np.asarray(clip.kp2d, np.float32), np.asarray(clip.conf, np.float32),
                              np.asarray(clip.image_size, np.float32))
        return np.stack(self.lift_sequences(list(norm), flip=flip, progress=progress))

    def live(self, flip: bool = False, stride: int = 1, phase: int = 0, window: int | None = None,
             sides_fps: float | None = None) -> "LiveLifter":
        return LiveLifter(self, flip=flip, stride=stride, phase=phase, window=window, sides_fps=sides_fps)


class LiveLifter:
    """Frame-by-frame lifting over a sliding window of the last `window` frames.

    With `stride` 1 each `push` lifts the window ending at the new frame and returns that frame's pose, so
    after `window` frames a push returns exactly what `Lifter.lift_clip` gives for the last frame of those
    frames. Until the window is full it is padded at its start by repeating the oldest frame.

    With `stride` k > 1 the window is lifted only every k-th push (and at the first), which divides the
    lifter's cost per frame by k, and each push returns the pose of the frame `delay_frames` = k − 1
    pushes back, read from the last lifted window (so the output is a steady stream, k − 1 frames late,
    and every frame has k − 1 frames of future context). Push n returns frame max(n − k + 1, 0) exactly
    as the window that ends at the last lift (the first one with n ≡ k − 1 mod k at or before n) gives it.
    `stride` may be changed between pushes (live mode adapts it to the machine); the delay follows it.
    With `phase` p the lifts fall on the pushes n with (n + p) ≡ k − 1 mod k instead (same delay): live
    mode gives each view its own phase, so that the views' lifts do not land in the same frame pair.

    `window` (default: the model's, `lifter.window`) may be shorter than the model's: each lift then sees only
    that many frames (live mode uses `pipeline.live.LIVE_WINDOW`: a third of the cost, see there), and the poses equal
    `lift_clip`'s no longer, but those of the model run on the last `window` frames.

    With `sides_fps` (the frame rate; live mode sets it) each pushed frame first has the detector's left/right
    swaps undone (`core.sides.OnlineSideRepair`: the forward pass of the Viterbi `mvcapture process` runs over
    the whole track; a swap shows as a jump as soon as it starts, so the newest frame is relabelled at once).
    """

    def __init__(self, lifter: Lifter, flip: bool = False, stride: int = 1, phase: int = 0,
                 window: int | None = None, sides_fps: float | None = None):
        window = lifter.window if window is None else int(window)
        if not 1 <= window <= lifter.window:
            raise ValueError(f"window must be in [1, {lifter.window}] frames (the model's), got {window}")
        if not 1 <= int(stride) <= window:
            raise ValueError(f"stride must be in [1, {window}] frames, got {stride}")
        self.lifter = lifter
        self.flip = flip
        self.stride = int(stride)
        self.phase = int(phase)
        self.window = window
        self._sides: OnlineSideRepair | None = None
        self.sides_fps = sides_fps
        self._frames = np.zeros((self.window, 17, 3), np.float32)
        self._count = 0
        self._lifted: np.ndarray | None = None   # (window, 17, 3) poses of the last lifted window
        self._lifted_end = -1                      # index of the newest frame of that window

    def reset(self) -> None:
        """Forget past frames (a new take or a lost athlete)."""
        self._count = 0
        self._lifted, self._lifted_end = None, -1
        if self._sides is not None:
            self._sides.reset()

    @property
    def sides_fps(self) -> float | None:
        """Frame rate of the left/right swap repair (None: frames are lifted as detected)."""
        return self._sides.fps if self._sides is not None else None

    @sides_fps.setter
    def sides_fps(self, fps: float | None) -> None:
        if fps != self.sides_fps:
            self._sides = OnlineSideRepair(fps) if fps else None

    @property
    def num_frames(self) -> int:
        """Frames seen since the last reset (capped at the window length)."""
        return min(self._count, self.window)

    @property
    def delay_frames(self) -> int:
        """How many frames the returned pose lags the newest pushed frame (stride − 1)."""
        return self.stride - 1

    def push(self, kp2d_px, conf, image_size) -> np.ndarray:
        """Add one frame: kp2d_px (17, 2) H36M-17 pixels, conf (17,), image_size (2,) → (17, 3) normalized
        2.5D of the frame `delay_frames` pushes back (of the first frame while fewer have been pushed)."""
        kp2d_px, conf = np.asarray(kp2d_px, np.float32), np.asarray(conf, np.float32)
        if kp2d_px.shape != (17, 2) or conf.shape != (17,):
            raise ValueError(f"push needs kp2d_px (17, 2) and conf (17,), got {kp2d_px.shape} and {conf.shape}")
        if self._sides is not None:
            kp2d_px, conf, _ = self._sides.push(kp2d_px, conf)
        frame = normalize_kp2d(kp2d_px[None], conf[None], np.asarray(image_size, np.float32))[0]
        self._frames[:-1] = self._frames[1:].copy()
        self._frames[-1] = frame
        newest = self._count
        self._count += 1
        # (the last condition: after `stride` was made smaller, the wanted frame may be past the last lift)
        wanted = max(newest - self.delay_frames, 0)
        if newest == 0 or (newest + self.phase) % self.stride == self.stride - 1 or wanted > self._lifted_end:
            window = self._frames
            missing = self.window - self._count
            if missing > 0:
                window = window.copy()
                window[:missing] = window[missing]
            self._lifted = self.lifter.lift_windows(window[None], flip=self.flip)[0]
            self._lifted_end = newest
        return self._lifted[self.window - 1 - (self._lifted_end - wanted)].copy()


def to_metres(pose_norm, image_size, focal_px=None, root_px=None, height_m: float = DEFAULT_ATHLETE_HEIGHT_M):
    """Root-relative normalized 2.5D → root-relative metres in the camera frame of the view.

    The absolute scale always comes from the athlete's height (`height_m`). With the focal length the
    perspective is undone too: each frame's root depth is Z = f · 0.95 · height_m / (body size in
    normalized units, moving median over 9 frames · min(w, h)/2), so an athlete walking towards the
    camera keeps a constant size;
    the root sits on the ray of its pixel `root_px` (image centre when None) and `norm25d_to_camera`
    inverts the projection (a few mm from the truth on synthetic clips with the true height).
    Without the focal length the pose is scaled uniformly, one scale per sequence
    (`norm25d_to_metres`). For evaluation against ground truth use `core.normalize.norm25d_to_camera`
    with the true root instead.

    Args:
        pose_norm: (..., T, 17, 3) root-relative normalized 2.5D.
        image_size: (..., 2) width, height in pixels.
        focal_px: (...,) focal length in pixels, or None.
        root_px: (..., T, 2) pixel position of the root (pelvis), or None.
        height_m: athlete height in metres.

    Returns:
        (..., T, 17, 3) float32 root-relative metres, camera frame (x right, y down, z forward).
    """
    pose_norm = np.asarray(pose_norm, np.float64)
    if focal_px is None:
        return norm25d_to_metres(pose_norm, height_m).astype(np.float32)
    size = np.asarray(image_size, np.float64)
    focal = np.asarray(focal_px, np.float64)
    half_min = size.min(-1) / 2
    from scipy.ndimage import median_filter

    body = height_proxy(pose_norm)  # (..., T)
    size_filter = [1] * (body.ndim - 1) + [min(BODY_SIZE_MEDIAN_FRAMES, body.shape[-1])]
    body_norm = np.maximum(median_filter(body, size=size_filter, mode="nearest"), 1e-6)
    depth = focal[..., None] * HEIGHT_PROXY_RATIO * height_m / (body_norm * half_min[..., None])  # (..., T)
    centre = size / 2
    if root_px is None:
        root_px = np.broadcast_to(centre[..., None, :], pose_norm.shape[:-2] + (2,))
    ray = (np.asarray(root_px, np.float64) - centre[..., None, :]) / focal[..., None, None]
    root_m = np.concatenate([ray, np.ones(ray.shape[:-1] + (1,))], axis=-1) * depth[..., None]
    return norm25d_to_camera(pose_norm, focal, size, root_m).astype(np.float32)


def clip_to_metres(pose_norm, clip, height_m: float = DEFAULT_ATHLETE_HEIGHT_M) -> tuple[np.ndarray, str]:
    """Per-view predictions (V, T, 17, 3) of a MultiViewClip → metres with `to_metres`.

    Uses the clip's `focal_px` extra when present (and the detected pelvis as root pixel, image
    centre where it is missing). Returns (pose3d_m, method) with method "focal+height" or "height".
    """
    focal = clip.extras.get("focal_px")
    if focal is None:
        return to_metres(pose_norm, clip.image_size, height_m=height_m), "height"
    size = np.asarray(clip.image_size, np.float64)
    root_px = np.asarray(clip.kp2d[:, :, 0], np.float64)
    seen = np.asarray(clip.conf[:, :, 0]) > 0
    root_px = np.where(seen[..., None], root_px, size[:, None, :] / 2)
    return to_metres(pose_norm, size, np.asarray(focal, np.float64), root_px, height_m), "focal+height"
