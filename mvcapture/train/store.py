"""The model store, under its earlier name: it lives in `mvcapture.lifter.store` (beside the lifter's weights,
below training); training, the GUI and the CLI keep importing it from here."""

from mvcapture.lifter.store import *  # noqa: F401,F403
