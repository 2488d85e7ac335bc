"""Process a session (detect → sync → resample → lift → metres → align → score), offline or live.

    analysis = process_session("my-session", progress=print_progress)   # Analysis, saved in the session
    live = LivePipeline(detector, lifter, on_frame=callback); live.run([source_a, source_b], stop)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "mvcapture.pipeline.process": ("PIPELINE_STAGES", "PipelineCancelled", "SessionPipeline", "camera_angle_advice",
                                   "optical_axis_angle_deg", "process_session", "resample_view"),
    "mvcapture.pipeline.demo": ("demo_session", "render_analysis"),
    "mvcapture.pipeline.live": ("LiveFrameResult", "LivePipeline", "RunningAlignment"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'mvcapture.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
