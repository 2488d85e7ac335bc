"""2D keypoint detection: rtmlib backends, model resolution, athlete tracking, per-video results.

    detector = create_detector("balanced")            # or "lightweight", "performance", "rtmo"
    people = detector.detect(frame_bgr)               # list[Person], COCO-17 pixels
    result = detect_video("cam1.mp4", detector)       # cached, resumable; athlete tracked
    kp2d_px, conf = result.h36m()                     # (T, 17, 2), (T, 17); conf 0 = not seen
"""

from mvcapture.detect.backends import Person, PoseDetector, RTMODetector, RTMPoseDetector, create_detector
from mvcapture.detect.models import MODES, ModelSpec, model_specs, resolve_model, rtmlib_cache_dir
from mvcapture.detect.smoothing import OneEuroFilter, smooth_keypoints
from mvcapture.detect.tracking import AthleteTracker, BoxTracker, choose_athlete, track_people
from mvcapture.detect.video import DetectionCancelled, VideoDetections, cache_path, detect_video

__all__ = [
    "MODES", "AthleteTracker", "BoxTracker", "DetectionCancelled", "ModelSpec", "OneEuroFilter", "Person",
    "PoseDetector", "RTMODetector", "RTMPoseDetector", "VideoDetections", "cache_path", "choose_athlete",
    "create_detector", "detect_video", "model_specs", "resolve_model", "rtmlib_cache_dir", "smooth_keypoints",
    "track_people",
]
