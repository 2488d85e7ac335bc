"""Live capture: camera and file sources with per-frame monotonic timestamps, and the crash-safe recorder."""

from mvcapture.capture.sources import (CameraInfo, CameraMode, CameraSource, FileSource, Frame, FrameSource,
                                       SourceEvent, list_cameras)

__all__ = ["CameraInfo", "CameraMode", "CameraSource", "FileSource", "Frame", "FrameSource", "SourceEvent",
           "list_cameras"]
