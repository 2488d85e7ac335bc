"""mvcapture: two-camera 3D pose capture with multi-view consistency fine-tuning.

Two synchronized cameras film an athlete; each view is lifted to 3D by a DSTformer, the two 3D
sequences are aligned by one similarity transform, and their disagreement trains the lifter.
"""

import os

__version__ = "0.1.0"

# PyTorch's own switch for transparent huge pages on its large CPU tensors (read at its first allocation,
# so it works when mvcapture is imported before any tensor is made, as the `mvcapture` command does):
# fewer page faults for the big arrays of a whole clip — the batched Procrustes of `bench procrustes`
# runs ~1.8× faster with it. numpy already asks for huge pages on its own. Set it to 0 to turn it off.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
