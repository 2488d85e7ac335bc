"""Names of the training variants and their loss terms (no torch import: the CLI lists them cheaply)."""

# Loss terms of each variant: 2D reprojection, 3D supervision (MotionBERT), consistency mode; and
# `requires`: the optional FORMATS.md clip keys every training clip must hold for it (besides kp2d, conf,
# image_size, fps and two views, which every variant needs). `train.data.check_requirements` checks them
# for every variant and every clip before any training starts; a new variant declares its own here.
VARIANTS: dict[str, dict] = {
    "l2d": {"reproj": True, "sup3d": False, "con": None, "requires": ()},
    "l2d_con": {"reproj": True, "sup3d": False, "con": "sequence", "requires": ()},
    "l2d_con_frame": {"reproj": True, "sup3d": False, "con": "frame", "requires": ()},
    "l3d": {"reproj": False, "sup3d": True, "con": None, "requires": ("gt3d",)},
    "l3d_con": {"reproj": False, "sup3d": True, "con": "sequence", "requires": ("gt3d",)},
    # each view's lift against the two views' own triangulated 3D (train.pseudo: from the clip's 2D alone,
    # weighted by both views' confidence), plus sequence consistency; clips without a confident two-view
    # geometry are left out (an error before training when none is left)
    "l3d_stereo": {"reproj": False, "sup3d": True, "con": "sequence", "requires": (), "pseudo3d": "stereo"},
}
# The paper's best λ_con: 0.3 with 2D supervision, 0.2 with 3D supervision.
DEFAULT_LAMBDA_CON = {"l2d_con": 0.3, "l2d_con_frame": 0.3, "l3d_con": 0.2, "l3d_stereo": 0.2}
# `mvcapture eval` (FORMATS.md): the starting model without fine-tuning, then one model per variant.
EVAL_VARIANTS = ("baseline", *VARIANTS)
