"""Training clips for fine-tuning: gather clip files, hold out the tail of each clip for validation.

Fine-tuning has no 3D ground truth to select epochs with, so validation uses held-out windows of the
same footage (the last `val_fraction` of every clip, never overlapping the training windows).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from mvcapture.errors import MvcaptureError
from mvcapture.io.clip import MultiViewClip, load_clip


def clip_files(paths: list[Path | str]) -> list[Path]:
    """Expand clip files and folders of clips (`*.npz`) into a sorted list of files."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.npz"))
            if not found:
                raise MvcaptureError(f"{p}: no .npz clips in this folder")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise MvcaptureError(f"{p}: no such clip file or folder")
    return files


def load_training_clips(paths: list[Path | str], min_frames: int = 1) -> list[MultiViewClip]:
    """Load multi-view clips for training (at least two views each)."""
    return [load_clip(f, min_views=2, min_frames=min_frames) for f in clip_files(paths)]


def check_requirements(variants, clips: list[MultiViewClip], sources: list) -> None:
    """Raise, before any training starts, when a training clip lacks what a variant needs (the variant's
    `requires` keys, variants.VARIANTS); the message names the variant, the file and the key.

    `gt3d` also needs a focal length: the clip's `focal_px`, or one estimated from gt3d and kp2d, which
    must succeed here rather than in the middle of a run.
    """
    from mvcapture.train.variants import VARIANTS

    for variant in variants:
        for key in VARIANTS.get(variant, {}).get("requires", ()):
            for clip, source in zip(clips, sources):
                present = clip.gt3d is not None if key == "gt3d" else key in clip.extras
                if not present:
                    others = sum(1 for c in clips if (c.gt3d is None if key == "gt3d" else key not in c.extras)) - 1
                    raise MvcaptureError(
                        f"variant {variant} needs key '{key}' in every training clip; {source} has none"
                        + (f" (and {others} more clip(s))" if others else "")
                        + "; use an l2d variant for clips without it")
                if key == "gt3d":
                    clip.focal_px(str(source))
        if VARIANTS.get(variant, {}).get("pseudo3d") == "stereo":
            from mvcapture.train.pseudo import pseudo_labelled

            pseudo_labelled(clips, sources)  # raises when no clip's two views fix the geometry (cached)


def variant_clips(variant: str, train: list[MultiViewClip], val: list[MultiViewClip]
                  ) -> tuple[list[MultiViewClip], list[MultiViewClip]]:
    """The clips a variant trains and validates on: for a pseudo-label variant (`l3d_stereo`) the clips with
    their stereo pseudo-label as `gt3d` (those without a confident two-view geometry left out; validation
    falls back to the training clips when none of its own has one); the clips themselves otherwise."""
    from mvcapture.train.variants import VARIANTS

    if VARIANTS.get(variant, {}).get("pseudo3d") != "stereo":
        return train, val
    from mvcapture.train.pseudo import pseudo_labelled, stereo_pseudo_labels

    train_p, _ = pseudo_labelled(train)
    val_p = [c for c in (stereo_pseudo_labels(v)[0] for v in val) if c is not None]
    return train_p, val_p or train_p


def slice_clip(clip: MultiViewClip, start: int, stop: int) -> MultiViewClip:
    """Frames [start, stop) of a clip (per-frame keys sliced, per-view keys kept)."""
    from mvcapture.train.pseudo import PSEUDO_KEY

    sl = slice(start, stop)
    extras = {k: (v[:, sl] if k == "target_weight" else v) for k, v in clip.extras.items() if k != PSEUDO_KEY}
    out = replace(clip, kp2d=clip.kp2d[:, sl], conf=clip.conf[:, sl],
                  gt3d=None if clip.gt3d is None else clip.gt3d[:, sl],
                  name=f"{clip.name}[{start}:{stop}]", extras=extras)
    if PSEUDO_KEY in clip.extras:  # a cached pseudo-label of the whole clip: the same frames of it
        labelled, info = clip.extras[PSEUDO_KEY]
        out.extras[PSEUDO_KEY] = (None if labelled is None else slice_clip(labelled, start, stop), info)
    return out


def split_tail(clips: list[MultiViewClip], val_fraction: float, window: int
               ) -> tuple[list[MultiViewClip], list[MultiViewClip]]:
    """Hold out the last `val_fraction` of each clip (at least one window) for validation.

    A clip too short for both a training and a validation window goes to training only.
    """
    train, val = [], []
    for clip in clips:
        T, n_val = clip.num_frames, _tail_frames(clip.num_frames, val_fraction, window)
        if n_val:
            train.append(slice_clip(clip, 0, T - n_val))
            val.append(slice_clip(clip, T - n_val, T))
        else:
            train.append(clip)
    if not val:
        raise MvcaptureError(f"clips are too short to hold out validation windows: need at least {2 * window} "
                             f"frames in one clip (longest has {max(c.num_frames for c in clips)})")
    return train, val


def _tail_frames(T: int, val_fraction: float, window: int) -> int:
    """Frames held out at the end of a T-frame clip (at least one window), 0 when the rest would be shorter
    than a window."""
    n_val = max(window, int(round(T * val_fraction)))
    return n_val if T - n_val >= window else 0


def split_validation(clips: list[MultiViewClip], val_fraction: float, window: int
                     ) -> tuple[list[MultiViewClip], list[MultiViewClip], bool]:
    """`split_tail`, or, when no clip is long enough to hold out a tail (a 2-second jump at 60 fps is
    shorter than two 81-frame windows), validation on the training windows themselves.

    That is sound for fine-tuning: its validation score, the consistency residual, uses no labels, and
    the footage trained on is the footage the user will lift; it only cannot detect overfitting.

    Returns:
        (train clips, validation clips, held_out): held_out False when validation reuses the training clips.
    """
    if any(_tail_frames(clip.num_frames, val_fraction, window) for clip in clips):
        train, val = split_tail(clips, val_fraction, window)
        return train, val, True
    return list(clips), list(clips), False


def make_datasets(train_clips: list[MultiViewClip], val_clips: list[MultiViewClip], window: int,
                  stride: int | None = None, min_views: int = 2, noise=None, seed: int = 0):
    """Window datasets for training (overlapping windows, `stride` default window // 3) and validation.

    No flip augmentation: batches must depend only on (seed, epoch, step) for exact resume and DDP. With
    `noise`, training windows of clips with `kp2d_clean` get new detector noise per epoch, drawn from
    (seed, epoch, item) (`WindowDataset`); validation keeps the clips' own.
    """
    from mvcapture.data.dataset import WindowDataset

    stride = stride or max(1, window // 3)
    return (WindowDataset(train_clips, window=window, stride=stride, min_views=min_views, noise=noise,
                          noise_seed=seed),
            WindowDataset(val_clips, window=window, stride=window, min_views=min_views))


def data_sources(clips: list[MultiViewClip], files: list[Path] | None = None) -> list[dict]:
    """Model-card entries for training data: source and license of each clip (grouped)."""
    seen: dict[tuple, dict] = {}
    for i, clip in enumerate(clips):
        source = str(_extra(clip, "source") or (files[i] if files else clip.name))
        license_ = str(_extra(clip, "license") or "unknown (user recording)")
        key = (source, license_)
        entry = seen.setdefault(key, {"source": source, "license": license_, "clips": 0})
        entry["clips"] += 1
    return list(seen.values())


def _extra(clip: MultiViewClip, key: str):
    value = clip.extras.get(key)
    if value is None:
        return None
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else None
