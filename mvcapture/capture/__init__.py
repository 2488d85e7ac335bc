"""Live capture: camera and file sources with per-frame monotonic timestamps, and the crash-safe recorder."""

from mvcapture.capture.recorder import SEGMENT_S, Recorder
from mvcapture.capture.sources import (CameraInfo, CameraMode, CameraSource, FileSource, Frame, FrameSource,
                                       SourceEvent, list_cameras)

__all__ = ["SEGMENT_S", "CameraInfo", "CameraMode", "CameraSource", "FileSource", "Frame", "FrameSource",
           "Recorder", "SourceEvent", "list_cameras"]
