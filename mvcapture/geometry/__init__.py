"""Two-view geometry on keypoints: lens intrinsics, essential matrix, triangulation, bundle adjustment and
the self-calibrated stereo estimate. Pure functions over numpy / scipy / OpenCV (no session, no Qt)."""
