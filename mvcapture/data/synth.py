"""Synthetic uncalibrated multi-view clips from 3D motion: virtual phone cameras and a detector-like 2D noise model.

Input: (T, 17, 3) H36M-17 world poses in metres, y up (as `io.bvh.bvh_to_h36m` gives). Output: a
`MultiViewClip` whose `gt3d` is in each camera's frame (x right, y down, z forward), with the camera
intrinsics and extrinsics as extra keys. Everything random comes from one seed.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mvcapture.errors import MvcaptureError
from mvcapture.io.clip import MultiViewClip

log = logging.getLogger(__name__)

# Phone video frames, width × height in pixels (landscape and portrait).
PHONE_IMAGE_SIZES = ((1920, 1080), (1080, 1920), (1280, 720), (720, 1280))
DISTANCE_RANGE_M = (3.5, 7.0)        # camera to the centre of the subject's path, when not given
HEIGHT_RANGE_M = (0.8, 1.8)          # camera above the floor, when not given
FILL_RANGE = (0.6, 0.9)              # fraction of the half-frame the subject's farthest joint reaches
CLEARANCE_M = 2.0                    # no joint comes closer to a camera than this (horizontally)
FOCAL_RANGE = (0.35, 3.0)            # focal length in units of the image's longer side (~110° to ~20° FOV)
MAX_CAMERA_DISTANCE_M = 80.0         # the farthest a realistic camera is placed
PAN_SMOOTHING_S = 0.4                # a panning camera follows the pelvis low-passed with this Gaussian σ

# Per-joint jitter factors in H36M-17 order (relative): wrists and ankles worst, trunk best.
JOINT_NOISE_FACTOR = np.array([1.0, 1.2, 1.1, 1.5, 1.2, 1.1, 1.5, 0.9, 0.8, 0.8, 1.1, 0.9, 1.3, 1.8, 0.9, 1.3, 1.8])
_SWAP_GROUPS = (((1, 2, 3), (4, 5, 6)), ((14, 15, 16), (11, 12, 13)))      # legs, arms (right, left)
_OCCLUSION_GROUPS = ((12, 13), (15, 16), (13,), (16,), (5, 6), (2, 3), (6,), (3,))


@dataclass(frozen=True)
class NoiseModel:
    """Detector-like 2D errors; lengths are fractions of the person's 2D bounding-box diagonal.

    Attributes:
        jitter: std of the per-joint error (× JOINT_NOISE_FACTOR), fraction of the bbox diagonal.
        temporal_corr: AR(1) coefficient of that error between consecutive frames.
        blur: extra std per pixel/frame of the joint's own 2D speed (motion blur on fast limbs).
        outlier_rate: probability per joint and frame of a gross error of std `outlier_scale`.
        swap_rate: left/right swaps of the legs (70 %) or arms per second per view; they last
            `swap_frames` frames and keep the confidence of the unswapped joint (detectors are sure of them).
        dropout_rate: probability per joint and frame of a missed joint (conf 0).
        occlusion_rate: occlusions per second per view hiding part of a limb for `occlusion_frames`.
        conf_noise: std of the noise on confidences, which otherwise fall with the joint's error:
            conf = 0.98 − 0.7 tanh(error / (0.05 × bbox diagonal)), clipped to [0.05, 1].
    """

    jitter: float = 0.010
    temporal_corr: float = 0.6
    blur: float = 0.08
    outlier_rate: float = 0.004
    outlier_scale: float = 0.08
    swap_rate: float = 0.15
    swap_frames: tuple[int, int] = (2, 8)
    dropout_rate: float = 0.01
    occlusion_rate: float = 0.15
    occlusion_frames: tuple[int, int] = (3, 20)
    conf_noise: float = 0.05

    def scaled(self, factor: float) -> "NoiseModel":
        """The same model with every error magnitude and event rate multiplied by `factor` (0 = clean)."""
        return replace(self, jitter=self.jitter * factor, blur=self.blur * factor,
                       outlier_rate=self.outlier_rate * factor, swap_rate=self.swap_rate * factor,
                       dropout_rate=self.dropout_rate * factor, occlusion_rate=self.occlusion_rate * factor,
                       conf_noise=self.conf_noise * factor)


NO_NOISE = NoiseModel().scaled(0.0)


def clip_seed(seed: int, name: str) -> np.random.Generator:
    """A generator for clip `name` under the global `seed` (stable across runs and platforms)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]))


def look_at(camera_pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., 3, 3) world→camera rotation (rows: camera x right, y down, z forward in world, y up)."""
    forward = target - camera_pos
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right = right / np.maximum(np.linalg.norm(right, axis=-1, keepdims=True), 1e-9)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=-2)


def project(points_cam: np.ndarray, focal_px: np.ndarray, image_size: np.ndarray) -> np.ndarray:
    """Pinhole projection, principal point at the image centre, square pixels.

    Args:
        points_cam: (V, ..., 3) camera metres. focal_px: (V,). image_size: (V, 2) width, height.

    Returns:
        (V, ..., 2) pixels.
    """
    extra = (1,) * (points_cam.ndim - 2)
    f = np.asarray(focal_px, np.float64).reshape((-1,) + extra)
    c = np.asarray(image_size, np.float64).reshape((-1,) + extra + (2,)) / 2
    return f[..., None] * points_cam[..., :2] / points_cam[..., 2:3] + c


def _sample_times(pose: np.ndarray, offsets_frames: np.ndarray) -> tuple[np.ndarray, int]:
    """(V, T', 17, 3) poses seen by each view when view v lags by offsets_frames[v] (linear interpolation)."""
    T = pose.shape[0]
    lo = max(0.0, -float(offsets_frames.min()))
    hi = (T - 1) - max(0.0, float(offsets_frames.max()))
    n = int(np.floor(hi - lo + 1e-9)) + 1
    if n < 2:
        raise MvcaptureError(f"time offsets of {offsets_frames.max():.1f} frames leave no overlap in a {T}-frame clip")
    out = []
    for off in offsets_frames:
        t = lo + off + np.arange(n)
        i0 = np.clip(np.floor(t).astype(np.int64), 0, T - 2)
        w = (t - i0)[:, None, None]
        out.append((1 - w) * pose[i0] + w * pose[i0 + 1])
    return np.stack(out), n


def _per_view(value, views: int, name: str) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        return np.full(views, float(arr))
    if arr.shape != (views,):
        raise MvcaptureError(f"{name} needs one value or one per view ({views}), got {arr.shape}")
    return arr


def synthesize_clip(pose3d_world: np.ndarray, fps: float, *, name: str = "", seed: int = 0, views: int = 2,
                    angle_deg: float = 90.0, distance_m=None, height_m=None, focal_px=None, image_size=None,
                    time_offset_s=0.0, pan: bool = False, noise: NoiseModel = NoiseModel(),
                    distance_range_m: tuple[float, float] = DISTANCE_RANGE_M,
                    height_range_m: tuple[float, float] = HEIGHT_RANGE_M) -> MultiViewClip:
    """Film a 3D clip with `views` virtual cameras and detect it with a noisy virtual detector.

    Cameras stand on a circle around the subject's path at `height_m` above the floor (lowest ankle),
    all looking at its centre at pelvis height (or, with `pan`, following the pelvis), such that the
    angle between the optical axes of consecutive views is exactly `angle_deg`; the first view's
    azimuth is random. Every joint stays inside every image: with `focal_px` None the focal length is
    chosen so the subject's farthest joint fills a random FILL_RANGE of the half-frame; when that (or a
    given focal length) cannot hold the subject, the camera moves back along its line of sight (the
    angle between views stays). With `pan` the angles hold for the cameras aimed at the path centre;
    following the subject changes them by a few degrees over a clip.

    Args:
        pose3d_world: (T, 17, 3) metres, world y up (H36M-17).
        fps: frame rate of `pose3d_world` (and of the clip).
        name: clip name; also salts the seed.
        seed: everything random (placement, sizes, noise) follows from (seed, name).
        views: number of cameras V ≥ 1.
        angle_deg: angle between the optical axes of view k and view k+1, in (0, 180].
        distance_m, height_m, focal_px: one value or one per view; None = random per view from
            `distance_range_m`, `height_range_m`, or fitted (see above).
        image_size: (w, h), or one (w, h) per view; None = random phone frame per view (PHONE_IMAGE_SIZES).
        time_offset_s: view v shows the motion `time_offset_s[v]` seconds later than the reference time
            (a scalar s means (0, s, s, ...)); the clip shrinks to the common span.
        pan: cameras stay in place but turn to follow the subject (per-frame rotations).
        noise: the 2D detector model; `NO_NOISE` gives kp2d == kp2d_clean and conf 1.
        distance_range_m, height_range_m: (low, high) metres for the random distances and heights
            (defaults DISTANCE_RANGE_M, HEIGHT_RANGE_M: tripods at chest height; higher ranges film from
            stands or balconies, looking down more steeply).

    Returns:
        MultiViewClip with kp2d, conf, image_size, fps, gt3d (camera frames, metres) and extras
        `focal_px` (V,), `cam_R` world→camera rotations ((V, 3, 3), or (V, T, 3, 3) when panning),
        `cam_t` ((V, 3) or (V, T, 3); x_cam = R x_world + t), `kp2d_clean` (V, T, 17, 2) and
        `time_offset_s` (V,).
    """
    pose = np.asarray(pose3d_world, np.float64)
    if pose.ndim != 3 or pose.shape[1:] != (17, 3) or pose.shape[0] < 2:
        raise MvcaptureError(f"pose3d_world must have shape (T, 17, 3) with T ≥ 2, got {pose.shape}")
    if not 0 < angle_deg <= 180:
        raise MvcaptureError(f"angle between views must be in (0, 180] degrees, got {angle_deg}")
    if views < 1:
        raise MvcaptureError(f"need at least one view, got {views}")
    for label, (lo, hi) in (("distance_range_m", distance_range_m), ("height_range_m", height_range_m)):
        if not 0 <= lo <= hi:
            raise MvcaptureError(f"{label} must be (low, high) with 0 ≤ low ≤ high metres, got ({lo}, {hi})")
    rng = clip_seed(seed, name)
    V = views

    offsets_s = np.asarray(time_offset_s, np.float64)
    if offsets_s.ndim == 0:
        offsets_s = np.r_[0.0, np.full(V - 1, float(offsets_s))]
    offsets_s = _per_view(offsets_s, V, "time_offset_s")
    seen, T = _sample_times(pose, offsets_s * fps)          # (V, T, 17, 3) world

    if image_size is None:
        sizes = np.array([PHONE_IMAGE_SIZES[i] for i in rng.integers(len(PHONE_IMAGE_SIZES), size=V)])
    else:
        sizes = np.asarray(image_size, np.int64).reshape(-1, 2)
        sizes = np.repeat(sizes, V, axis=0) if len(sizes) == 1 else sizes
        if sizes.shape != (V, 2):
            raise MvcaptureError(f"image_size needs (w, h) or one (w, h) per view, got {np.shape(image_size)}")
    floor = float(np.min(pose[:, [3, 6], 1]))
    pelvis_y = float(np.median(pose[:, 0, 1]))
    xz = pose[:, :, [0, 2]].reshape(-1, 2)
    centre_xz = 0.5 * (xz.min(0) + xz.max(0))
    radius = float(np.max(np.linalg.norm(xz - centre_xz, axis=1)))
    dist = (rng.uniform(*distance_range_m, size=V) if distance_m is None
            else _per_view(distance_m, V, "distance_m"))
    dist = np.maximum(dist, radius + CLEARANCE_M)
    heights = (rng.uniform(*height_range_m, size=V) if height_m is None
               else _per_view(height_m, V, "height_m")) + floor
    fill = rng.uniform(*FILL_RANGE, size=V)
    given_focal = None if focal_px is None else _per_view(focal_px, V, "focal_px")

    pitch = np.arctan2(heights - pelvis_y, dist)             # > 0: looking down
    azimuth = np.empty(V)
    azimuth[0] = rng.uniform(-np.pi, np.pi)
    cos_a = np.cos(np.deg2rad(angle_deg))
    for v in range(1, V):
        pa, pb = pitch[v - 1], pitch[v]
        cos_d = (cos_a - np.sin(pa) * np.sin(pb)) / (np.cos(pa) * np.cos(pb))
        if cos_d < -1 - 1e-9:
            raise MvcaptureError(f"cameras this high cannot be {angle_deg}° apart; lower them or the angle")
        azimuth[v] = azimuth[v - 1] + np.arccos(np.clip(cos_d, -1.0, 1.0))

    target = np.array([centre_xz[0], pelvis_y, centre_xz[1]])
    if pan:
        path = gaussian_filter1d(seen[:, :, 0], PAN_SMOOTHING_S * fps, axis=1, mode="nearest")  # (V, T, 3)
        path[..., 1] = pelvis_y
    focal = np.empty(V)
    R_all, t_all, cam_pts = [], [], []
    for v in range(V):
        w, h = sizes[v]
        # the camera sits at range r from the aim point along a fixed direction (azimuth, pitch), so
        # moving it back never changes the angle between the views
        r = float(np.hypot(dist[v], heights[v] - pelvis_y))
        away = np.array([np.cos(pitch[v]) * np.sin(azimuth[v]), np.sin(pitch[v]),
                         np.cos(pitch[v]) * np.cos(azimuth[v])])
        for _ in range(30):
            C = target + r * away
            R = look_at(C, path[v]) if pan else look_at(C, target)
            pts = np.einsum("...ij,...kj->...ki", R, seen[v] - C) if pan else (seen[v] - C) @ R.T
            depth = pts[..., 2]
            if depth.min() <= 0.3:
                r *= 1.25
                continue
            reach = max(np.abs(pts[..., 0] / depth).max() / (w / 2), np.abs(pts[..., 1] / depth).max() / (h / 2))
            fit = fill[v] / reach                             # focal (px) at which the farthest joint hits `fill`
            f_min, f_max = FOCAL_RANGE[0] * max(w, h), FOCAL_RANGE[1] * max(w, h)
            f = min(fit, f_max) if given_focal is None else given_focal[v]
            if f <= fit * (1 + 1e-9) and (given_focal is not None or f >= f_min):
                break
            r *= max(1.05, (f_min if given_focal is None else f) / fit)
        else:
            raise MvcaptureError(f"{name or 'clip'}: could not keep the subject inside view {v}")
        focal[v] = f
        R_all.append(R)
        t_all.append(-np.einsum("...ij,j->...i", R, C))
        cam_pts.append(pts)
    gt3d = np.stack(cam_pts)                                  # (V, T, 17, 3)
    kp2d_clean = project(gt3d, focal, sizes)
    kp2d, conf = apply_detector_noise(kp2d_clean, sizes, fps, noise, rng)
    return MultiViewClip(
        kp2d=kp2d.astype(np.float32), conf=conf.astype(np.float32), image_size=sizes.astype(np.int32),
        fps=float(fps), gt3d=gt3d.astype(np.float32), name=name,
        extras={"focal_px": focal, "cam_R": np.stack(R_all), "cam_t": np.stack(t_all),
                "kp2d_clean": kp2d_clean.astype(np.float32), "time_offset_s": offsets_s},
    ).validate(name or "synthetic clip")


def synthesize_bvh_files(paths: Iterable[Path | str], *, rigs: int = 1, fps: float = 30.0, seed: int = 0,
                         realistic: bool = False, augment=None, **synth_kwargs) -> Iterator[MultiViewClip]:
    """Clips named `<file stem>_r<rig>` for every BVH file and camera rig (each file parsed once).

    `synth_kwargs` go to `synthesize_clip` (views, angle_deg, noise, ...), or with `realistic` to
    `synthesize_realistic_clip` (views, cameras, noise); clips come at `fps`. With `augment` (a
    `data.augment.MotionAugment`) every rig films its own augmented copy of the motion; the upper body it
    mixes in comes from another file of the same subject (`data.dataset.subject_of`), so no motion crosses
    a train / validation / test split.
    """
    from mvcapture.data.dataset import subject_of
    from mvcapture.io.bvh import bvh_to_h36m

    paths = [Path(p) for p in paths]
    by_subject: dict[str, list[Path]] = {}
    for path in paths:
        by_subject.setdefault(subject_of(path.name), []).append(path)
    cache: dict[Path, tuple[np.ndarray, float]] = {}

    def parsed(path: Path) -> tuple[np.ndarray, float]:
        if path not in cache:
            cache[path] = bvh_to_h36m(path, fps=fps)
        return cache[path]

    film = synthesize_realistic_clip if realistic else synthesize_clip
    for path in paths:
        pose, clip_fps = parsed(path)
        for rig in range(rigs):
            name = f"{path.stem}_r{rig}"
            motion, extra = pose, {}
            if augment is not None:
                rng = clip_seed(seed, "augment:" + name)
                others = [p for p in by_subject[subject_of(path.name)] if p != path]
                donor = parsed(others[rng.integers(len(others))])[0] if others else None
                motion, extra = augment.apply(pose, rng, donor, fps=clip_fps)
            clip = film(motion, clip_fps, name=name, seed=seed, **synth_kwargs)
            if extra:
                clip.extras["augment"] = np.array(json.dumps(extra))
            yield clip


def apply_detector_noise(kp2d_clean: np.ndarray, image_size: np.ndarray, fps: float, noise: NoiseModel,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Turn exact projections into detector-like output (see `NoiseModel`).

    Args:
        kp2d_clean: (V, T, 17, 2) pixels. image_size: (V, 2). fps: frames per second (event rates).

    Returns:
        kp2d (V, T, 17, 2) pixels and conf (V, T, 17) in [0, 1]; joints outside the image get conf 0.
    """
    V, T = kp2d_clean.shape[:2]
    lo, hi = kp2d_clean.min(axis=2), kp2d_clean.max(axis=2)   # (V, T, 2)
    size = np.linalg.norm(hi - lo, axis=-1)[..., None, None]  # (V, T, 1, 1) bbox diagonal, px
    white = rng.standard_normal((V, T, 17, 2))
    rho = noise.temporal_corr
    corr = np.empty_like(white)
    corr[:, 0] = white[:, 0]
    gain = np.sqrt(1 - rho * rho)
    for t in range(1, T):
        corr[:, t] = rho * corr[:, t - 1] + gain * white[:, t]
    speed = np.linalg.norm(np.gradient(kp2d_clean, axis=1), axis=-1)[..., None] if T > 1 else 0.0
    sigma = np.sqrt((noise.jitter * size * JOINT_NOISE_FACTOR[:, None]) ** 2 + (noise.blur * speed) ** 2)
    err = corr * sigma
    outlier = rng.random((V, T, 17)) < noise.outlier_rate
    err += outlier[..., None] * rng.standard_normal((V, T, 17, 2)) * noise.outlier_scale * size
    kp2d = kp2d_clean + err
    z = np.linalg.norm(err, axis=-1) / (0.05 * size[..., 0])
    conf = np.clip(0.98 - 0.7 * np.tanh(z) + noise.conf_noise * rng.standard_normal((V, T, 17)), 0.05, 1.0)
    if noise == NO_NOISE:
        conf = np.ones((V, T, 17))
    for v in range(V):
        for start, length in _events(rng, T, noise.swap_rate / fps, noise.swap_frames):
            right, left = _SWAP_GROUPS[0] if rng.random() < 0.7 else _SWAP_GROUPS[1]
            sl = slice(start, start + length)
            idx_a, idx_b = list(right + left), list(left + right)
            kp2d[v, sl, idx_a] = kp2d[v, sl, idx_b]
            conf[v, sl, idx_a] = conf[v, sl, idx_b]
        for start, length in _events(rng, T, noise.occlusion_rate / fps, noise.occlusion_frames):
            group = _OCCLUSION_GROUPS[rng.integers(len(_OCCLUSION_GROUPS))]
            conf[v, start:start + length, list(group)] = 0.0
    conf[rng.random((V, T, 17)) < noise.dropout_rate] = 0.0
    w = image_size[:, None, None, 0]
    h = image_size[:, None, None, 1]
    outside = (kp2d[..., 0] < 0) | (kp2d[..., 0] >= w) | (kp2d[..., 1] < 0) | (kp2d[..., 1] >= h)
    conf[outside] = 0.0
    return kp2d, conf


def _events(rng: np.random.Generator, T: int, rate_per_frame: float, frames: tuple[int, int]):
    """Start frames and lengths of random events (Bernoulli starts, uniform lengths)."""
    if rate_per_frame <= 0:
        return []
    starts = np.flatnonzero(rng.random(T) < rate_per_frame)
    lengths = rng.integers(frames[0], frames[1] + 1, size=len(starts))
    return list(zip(starts.tolist(), lengths.tolist()))


# -- realistic phone and webcam cameras (issue #17) ----------------------------------------------------------

@dataclass(frozen=True)
class CameraRanges:
    """What phones and webcams that film an athlete look like; each view draws its own camera.

    fov_deg: vertical field of view (degrees) of the frame as held (portrait: the long side is vertical).
    portrait: probability of a portrait frame. height_m: lens above the floor, metres; the camera pitches
    towards the athlete's pelvis (with `aim_jitter_m` of random aim). roll_deg: up to ± this roll about the
    optical axis. fill: the camera stands where the athlete's farthest joint (over the clip) reaches this
    fraction of the half-frame; near: probability of a near camera, placed so that it reaches `near_fill`
    half-frames (limbs leave the frame at times; those joints get conf 0). k1, k2: radial
    distortion ranges of OpenCV's model (phone main and wide lenses after the phone's own correction).
    """

    fov_deg: tuple[float, float] = (40.0, 90.0)
    portrait: float = 0.5
    height_m: tuple[float, float] = (0.3, 2.5)
    aim_jitter_m: float = 0.3
    roll_deg: float = 10.0
    fill: tuple[float, float] = (0.55, 0.95)
    near: float = 0.15
    near_fill: tuple[float, float] = (1.2, 2.0)
    k1: tuple[float, float] = (-0.15, 0.05)
    k2: tuple[float, float] = (-0.05, 0.08)


def distort(points_cam: np.ndarray, focal_px: np.ndarray, image_size: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Pinhole projection with radial distortion (OpenCV's k1, k2), principal point at the image centre.

    Args:
        points_cam: (V, ..., 3) camera metres. focal_px: (V,). image_size: (V, 2). dist: (V, 2) k1, k2.

    Returns:
        (V, ..., 2) pixels.
    """
    extra = (1,) * (points_cam.ndim - 2)
    xy = points_cam[..., :2] / points_cam[..., 2:3]
    r2 = (xy ** 2).sum(-1, keepdims=True)
    k1 = np.asarray(dist, np.float64)[:, 0].reshape((-1,) + extra + (1,))
    k2 = np.asarray(dist, np.float64)[:, 1].reshape((-1,) + extra + (1,))
    f = np.asarray(focal_px, np.float64).reshape((-1,) + extra + (1,))
    c = np.asarray(image_size, np.float64).reshape((-1,) + extra + (2,)) / 2
    return f * xy * (1 + k1 * r2 + k2 * r2 ** 2) + c


def _roll(R: np.ndarray, angle_rad: float) -> np.ndarray:
    """A world→camera rotation turned by `angle_rad` about its own optical axis."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) @ R


def detect_views(kp2d_clean: np.ndarray, image_size: np.ndarray, fps: float, noise, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A virtual detector on exact projections: `noise` (a `NoiseModel` or a `detector_noise.MeasuredNoise`),
    then conf 0 (and kp2d 0) wherever the true joint is outside the image.

    Shape: kp2d_clean (V, T, 17, 2) px, image_size (V, 2) → kp2d (V, T, 17, 2) px, conf (V, T, 17).
    """
    sizes = np.asarray(image_size, np.float64)
    if isinstance(noise, NoiseModel):
        kp2d, conf = apply_detector_noise(kp2d_clean, sizes, fps, noise, rng)
    else:
        kp2d, conf = noise.apply(kp2d_clean, sizes, fps, rng)
    w_img, h_img = sizes[:, None, None, 0], sizes[:, None, None, 1]
    outside = ((kp2d_clean[..., 0] < 0) | (kp2d_clean[..., 0] >= w_img) | (kp2d_clean[..., 1] < 0)
               | (kp2d_clean[..., 1] >= h_img))
    conf = np.where(outside, 0.0, conf)
    return np.where(conf[..., None] > 0, kp2d, 0.0), conf


def synthesize_realistic_clip(pose3d_world: np.ndarray, fps: float, *, name: str = "", seed: int = 0,
                              views: int = 2, cameras: CameraRanges = CameraRanges(), noise=None) -> MultiViewClip:
    """Film a 3D clip with `views` independently drawn phone / webcam cameras (`CameraRanges`: portrait or
    landscape, vertical FOV, height with pitch towards the athlete, roll, near cameras that cut limbs off,
    lens distortion) and detect it with `noise` (a `detector_noise.MeasuredNoise`, default the shipped
    measured statistics; or a `NoiseModel`).

    Args:
        pose3d_world: (T, 17, 3) metres, world y up (H36M-17). fps: its frame rate.
        name, seed: everything random follows from (seed, name).

    Returns:
        MultiViewClip as `synthesize_clip` gives, plus extras `dist` (V, 2) k1, k2, `fov_deg` (V,) vertical,
        `roll_deg` (V,), `height_m` (V,) above the floor and `near` (V,) bool. `gt3d` is exact; kp2d are the
        distorted projections with detector noise (`kp2d_clean` without the noise).
    """
    from mvcapture.data.detector_noise import MeasuredNoise

    pose = np.asarray(pose3d_world, np.float64)
    if pose.ndim != 3 or pose.shape[1:] != (17, 3) or pose.shape[0] < 2:
        raise MvcaptureError(f"pose3d_world must have shape (T, 17, 3) with T ≥ 2, got {pose.shape}")
    if views < 1:
        raise MvcaptureError(f"need at least one view, got {views}")
    rng = clip_seed(seed, name)
    noise = MeasuredNoise.load() if noise is None else noise
    floor = float(np.min(pose[:, [3, 6], 1]))
    pelvis_y = float(np.median(pose[:, 0, 1]))
    xz = pose[:, :, [0, 2]].reshape(-1, 2)
    centre_xz = 0.5 * (xz.min(0) + xz.max(0))
    radius = float(np.max(np.linalg.norm(xz - centre_xz, axis=1)))
    sizes, focal, dists, R_all, t_all, cam_pts = [], [], [], [], [], []
    fovs, rolls, heights, near = [], [], [], []
    for v in range(views):
        w, h = PHONE_IMAGE_SIZES[rng.integers(len(PHONE_IMAGE_SIZES))]
        if (h > w) != (rng.random() < cameras.portrait):
            w, h = h, w
        fov = rng.uniform(*cameras.fov_deg)
        f = (h / 2) / np.tan(np.radians(fov) / 2)
        height = rng.uniform(*cameras.height_m)
        roll = np.radians(rng.uniform(-cameras.roll_deg, cameras.roll_deg))
        is_near = bool(rng.random() < cameras.near)
        fill = rng.uniform(*(cameras.near_fill if is_near else cameras.fill))
        azimuth = rng.uniform(-np.pi, np.pi)
        aim = np.array([centre_xz[0], pelvis_y, centre_xz[1]]) + rng.normal(0, cameras.aim_jitter_m, 3) * [1, 0.5, 1]
        horizontal = np.array([np.sin(azimuth), 0.0, np.cos(azimuth)])
        # the distance at which the farthest joint reaches `fill` half-frames (bisection: the reach falls as
        # the camera moves back), never closer than the athlete's path allows
        base = np.array([aim[0], floor + height, aim[2]])

        def place(d: float):
            C = base + d * horizontal
            R = _roll(look_at(C, aim), roll)
            pts = (pose - C) @ R.T
            depth = pts[..., 2]
            if depth.min() <= 0.3:
                return C, R, pts, np.inf
            reach = max(np.abs(pts[..., 0] / depth).max() * f / (w / 2),
                        np.abs(pts[..., 1] / depth).max() * f / (h / 2))
            return C, R, pts, reach

        lo_d, hi_d = radius + (0.6 if is_near else CLEARANCE_M), MAX_CAMERA_DISTANCE_M
        if place(hi_d)[3] > fill:
            raise MvcaptureError(f"{name or 'clip'}: camera {v} cannot hold the athlete even {hi_d:.0f} m away")
        if place(lo_d)[3] > fill:
            for _ in range(40):
                mid = 0.5 * (lo_d + hi_d)
                lo_d, hi_d = (mid, hi_d) if place(mid)[3] > fill else (lo_d, mid)
        C, R, pts, _ = place(hi_d if place(lo_d)[3] > fill else lo_d)
        sizes.append((w, h))
        focal.append(f)
        dists.append((rng.uniform(*cameras.k1), rng.uniform(*cameras.k2)))
        R_all.append(R)
        t_all.append(-R @ C)
        cam_pts.append(pts)
        fovs.append(fov)
        rolls.append(np.degrees(roll))
        heights.append(height)
        near.append(is_near)
    sizes = np.array(sizes, np.int64)
    gt3d = np.stack(cam_pts)
    kp2d_clean = distort(gt3d, np.array(focal), sizes, np.array(dists))
    kp2d, conf = detect_views(kp2d_clean, sizes, fps, noise, rng)
    if not (conf > 0).any(axis=(1, 2)).all():
        raise MvcaptureError(f"{name or 'clip'}: a camera never sees the athlete")
    return MultiViewClip(
        kp2d=kp2d.astype(np.float32), conf=conf.astype(np.float32), image_size=sizes.astype(np.int32),
        fps=float(fps), gt3d=gt3d.astype(np.float32), name=name,
        extras={"focal_px": np.array(focal), "cam_R": np.stack(R_all), "cam_t": np.stack(t_all),
                "kp2d_clean": kp2d_clean.astype(np.float32), "time_offset_s": np.zeros(views),
                "dist": np.array(dists), "fov_deg": np.array(fovs), "roll_deg": np.array(rolls),
                "height_m": np.array(heights), "near": np.array(near)},
    ).validate(name or "synthetic clip")
