"""mvcapture: two-camera 3D pose capture with multi-view consistency fine-tuning.

Two synchronized cameras film an athlete; each view is lifted to 3D by a DSTformer, the two 3D
sequences are aligned by one similarity transform, and their disagreement trains the lifter.
"""

__version__ = "0.1.0"
