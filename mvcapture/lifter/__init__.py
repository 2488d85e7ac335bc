"""The 2D-to-3D lifter: DSTformer model with named configs, weights + model cards, inference runtime.

    lifter = load_lifter("default")                  # or a weights file / MotionBERT checkpoint / model dir
    pose_norm = lifter.lift_clip(kp2d_px, conf, image_size, flip=True)   # (T, 17, 3)
    pose_m = to_metres(pose_norm, image_size)        # athlete-height prior (focal_px: perspective too)

Names are imported on first use, so `mvcapture --help` does not load torch.
"""

from __future__ import annotations

from mvcapture._lazy import lazy_exports

_EXPORTS = {
    "mvcapture.lifter.dstformer": ("CONFIGS", "DSTformer", "DSTformerConfig", "count_parameters", "create_lifter"),
    "mvcapture.lifter.runtime": ("Lifter", "LiveLifter", "clip_to_metres", "select_device", "to_metres"),
    "mvcapture.lifter.weights": ("load_dstformer", "load_lifter", "read_card", "save_lifter"),
    "mvcapture.lifter.cli": ("lift_file",),
}
__all__, __getattr__ = lazy_exports("mvcapture.lifter", _EXPORTS)
