"""The 2D-to-3D lifter: DSTformer model with named configs, weights + model cards, inference runtime.

    lifter = load_lifter("default")                  # or a weights file / MotionBERT checkpoint / model dir
    pose_norm = lifter.lift_clip(kp2d_px, conf, image_size, flip=True)   # (T, 17, 3)
    pose_m = to_metres(pose_norm, image_size)        # athlete-height prior (focal_px: perspective too)

Names are imported on first use, so `mvcapture --help` does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "mvcapture.lifter.dstformer": ("CONFIGS", "DSTformer", "DSTformerConfig", "count_parameters", "create_lifter"),
    "mvcapture.lifter.runtime": ("Lifter", "LiveLifter", "clip_to_metres", "select_device", "to_metres"),
    "mvcapture.lifter.weights": ("load_dstformer", "load_lifter", "read_card", "save_lifter"),
    "mvcapture.lifter.cli": ("lift_file",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'mvcapture.lifter' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
