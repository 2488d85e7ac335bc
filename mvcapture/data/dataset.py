"""Training windows from multi-view clips, all views of a window together (for the consistency loss).

Also the subject-wise split: clips named `SSS_...` (CMU `SSS_TT`, synthetic `SSS_TT_rK`) belong to
subject `SSS`, and a subject's clips are all in one of train / val / test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mvcapture.core.normalize import camera_to_norm25d, normalize_kp2d
from mvcapture.core.skeleton import H36M17_FLIP_PERMUTATION
from mvcapture.errors import MvcaptureError
from mvcapture.io.clip import MultiViewClip, load_dataset

# Default split of the CMU clips we ship (subjects 002, 003, 005, 007; SOURCES.md). Subjects 002 and 005
# hold all the non-walking motion (run, jump, punch, swordplay, dance), so they must train; 007 (12
# walks, ~2200 frames at 60 fps) is the held-out test subject: a different body with a motion type the
# training data covers, so its error measures generalisation to a new person and new views, not to an
# unseen action no four-subject set could cover. 003 (2 walks on uneven terrain) validates.
DEFAULT_TEST_SUBJECTS = ("007",)
DEFAULT_VAL_SUBJECTS = ("003",)


def subject_of(name: str) -> str:
    """Subject of a clip name: the part before the first `_` (`002_05_r1` → `002`)."""
    return Path(name).stem.split("_")[0]


def split_by_subject(names, test_subjects=DEFAULT_TEST_SUBJECTS, val_subjects=DEFAULT_VAL_SUBJECTS
                     ) -> dict[str, list[str]]:
    """Split clip names into {"train", "val", "test"} lists by subject (order kept).

    Every subject not named in `test_subjects` or `val_subjects` trains.
    """
    test, val = {str(s) for s in test_subjects}, {str(s) for s in val_subjects}
    if test & val:
        raise MvcaptureError(f"subjects {sorted(test & val)} are both test and validation subjects")
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for name in names:
        subject = subject_of(name)
        out["test" if subject in test else "val" if subject in val else "train"].append(name)
    return out


class WindowDataset(Dataset):
    """Fixed-length windows of multi-view clips.

    Each item is a dict of float32 tensors (V views, T = `window` frames):
        input (V, T, 17, 3): `normalize_kp2d(kp2d, conf, image_size)`, the lifter's input.
        kp2d_norm (V, T, 17, 2), conf (V, T, 17): the same split up (conf 0 = missing).
        target (V, T, 17, 3): `camera_to_norm25d(gt3d, focal_px, image_size)` (zeros unless has_target).
        gt3d (V, T, 17, 3): root-relative metres, camera frames (zeros unless has_gt3d).
        root_m (V, T, 3): the root in camera metres (for `norm25d_to_camera`).
        focal_px (V,) (the clip's, else estimated from gt3d and kp2d; 0 without gt3d), image_size (V, 2), valid (T,) bool (False on padding frames),
        has_gt3d, has_target () bool, flipped () bool, clip (), start () int64.

    Windows start every `stride` frames (default window // 2), plus one flush with the clip's end. A clip
    shorter than `window` gives one window padded by repeating its last frame (valid False there); with
    `pad_short=False` it is skipped. With `flip=True` each item is mirrored with probability 0.5
    (`core.skeleton.flip_h36m` semantics: x → −x around the image centre / camera axis, left ↔ right),
    drawn from torch's generator so DataLoader workers differ. All views of an item flip together.

    With `noise` (a `data.detector_noise.MeasuredNoise` or a `data.synth.NoiseModel`), clips that carry their
    exact projections (`kp2d_clean`, as `data synth` writes them) get their detector noise drawn anew for
    every item, from (`noise_seed`, the epoch set by `set_epoch`, the item): each epoch sees new detector
    errors on the same motion, and a resumed run sees the same ones.
    """

    def __init__(self, clips: list[MultiViewClip] | Path | str, window: int, stride: int | None = None,
                 flip: bool = False, pad_short: bool = True, min_views: int = 2, noise=None, noise_seed: int = 0):
        if isinstance(clips, (str, Path)):
            clips = load_dataset(clips, min_views=min_views)
        if window < 1:
            raise MvcaptureError(f"window must be at least 1 frame, got {window}")
        self.window = int(window)
        self.stride = int(stride or max(1, window // 2))
        self.flip = flip
        self.noise = noise
        self.noise_seed = int(noise_seed)
        self.epoch = 0
        self.names = [c.name for c in clips]
        self._clips = [self._prepare(c, min_views) for c in clips]
        self.index: list[tuple[int, int]] = []
        for i, c in enumerate(self._clips):
            T = c["input"].shape[1]
            if T < self.window:
                if pad_short:
                    self.index.append((i, 0))
                continue
            starts = list(range(0, T - self.window + 1, self.stride))
            if starts[-1] != T - self.window:
                starts.append(T - self.window)
            self.index.extend((i, s) for s in starts)

    @staticmethod
    def _prepare(clip: MultiViewClip, min_views: int) -> dict[str, np.ndarray]:
        clip.validate(clip.name or "clip", min_views=min_views)
        size = np.asarray(clip.image_size, np.float32)
        inp = normalize_kp2d(clip.kp2d.astype(np.float32), clip.conf.astype(np.float32), size)
        V, T = clip.kp2d.shape[:2]
        focal = clip.focal_px()  # the clip's key, or estimated from gt3d and kp2d
        focal = np.zeros(V, np.float32) if focal is None else focal.astype(np.float32)
        clean = clip.extras.get("kp2d_clean")
        out = {"input": inp.astype(np.float32), "image_size": size, "focal_px": focal, "fps": float(clip.fps),
               "kp2d_clean": None if clean is None else np.asarray(clean, np.float64),
               "has_gt3d": clip.gt3d is not None, "has_target": clip.gt3d is not None and bool(np.all(focal > 0))}
        if clip.gt3d is not None:
            gt = clip.gt3d.astype(np.float32)
            out["root_m"] = gt[:, :, 0]
            out["gt3d"] = gt - gt[:, :, :1]
            out["target"] = (camera_to_norm25d(gt, focal, size).astype(np.float32) if out["has_target"]
                             else np.zeros_like(gt))
        else:
            out["root_m"] = np.zeros((V, T, 3), np.float32)
            out["gt3d"] = out["target"] = np.zeros((V, T, 17, 3), np.float32)
        weight = clip.extras.get("target_weight")  # (V, T, 17) pseudo-label confidence (train.pseudo)
        if weight is not None:
            out["target_weight"] = np.asarray(weight, np.float32).reshape(V, T, 17)
        return out

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next items belong to (seeds the redrawn detector noise)."""
        self.epoch = int(epoch)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        clip_idx, start = self.index[item]
        c = self._clips[clip_idx]
        T = c["input"].shape[1]
        frames = np.minimum(np.arange(start, start + self.window), T - 1)
        valid = np.arange(start, start + self.window) < T
        inp = c["input"][:, frames]
        if self.noise is not None and c["kp2d_clean"] is not None:
            from mvcapture.data.synth import detect_views

            rng = np.random.default_rng([self.noise_seed, self.epoch, item])
            kp, conf = detect_views(c["kp2d_clean"][:, frames], c["image_size"], c["fps"], self.noise, rng)
            inp = normalize_kp2d(kp.astype(np.float32), conf.astype(np.float32), c["image_size"]).astype(np.float32)
        target = c["target"][:, frames]
        gt3d = c["gt3d"][:, frames]
        root = c["root_m"][:, frames]
        weight = c["target_weight"][:, frames] if "target_weight" in c else None
        flipped = bool(self.flip and torch.rand(()) < 0.5)
        if flipped:
            inp, target, gt3d = (_mirror(a) for a in (inp, target, gt3d))
            root = root * np.array([-1.0, 1.0, 1.0], np.float32)
            if weight is not None:
                weight = weight[..., H36M17_FLIP_PERMUTATION]
        extra = {} if weight is None else {"target_weight": torch.from_numpy(np.ascontiguousarray(weight))}
        return {
            **extra,
            "input": torch.from_numpy(np.ascontiguousarray(inp)),
            "kp2d_norm": torch.from_numpy(np.ascontiguousarray(inp[..., :2])),
            "conf": torch.from_numpy(np.ascontiguousarray(inp[..., 2])),
            "target": torch.from_numpy(np.ascontiguousarray(target)),
            "gt3d": torch.from_numpy(np.ascontiguousarray(gt3d)),
            "root_m": torch.from_numpy(np.ascontiguousarray(root)),
            "focal_px": torch.from_numpy(c["focal_px"]),
            "image_size": torch.from_numpy(c["image_size"]),
            "valid": torch.from_numpy(valid),
            "has_gt3d": torch.tensor(c["has_gt3d"]),
            "has_target": torch.tensor(c["has_target"]),
            "flipped": torch.tensor(flipped),
            "clip": torch.tensor(clip_idx),
            "start": torch.tensor(start),
        }


def _mirror(points: np.ndarray) -> np.ndarray:
    """(..., 17, C) x → −x (channel 0) and left ↔ right; other channels (y, z or conf) follow the joint."""
    out = points[..., H36M17_FLIP_PERMUTATION, :].copy()
    out[..., 0] = -out[..., 0]
    return out
