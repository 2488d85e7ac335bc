"""Process a session (detect → sync → resample → lift → metres → align → score), offline or live.

    analysis = process_session("my-session", progress=print_progress)   # Analysis, saved in the session
    live = LivePipeline(detector, lifter, on_frame=callback); live.run([source_a, source_b], stop)
"""

from __future__ import annotations

from mvcapture._lazy import lazy_exports

_EXPORTS = {
    "mvcapture.pipeline.process": ("PIPELINE_STAGES", "PipelineCancelled", "SessionPipeline", "camera_angle_advice",
                                   "optical_axis_angle_deg", "process_session", "resample_view"),
    "mvcapture.pipeline.demo": ("demo_session", "render_analysis"),
    "mvcapture.pipeline.live": ("LiveFrameResult", "LivePipeline", "RunningAlignment", "StereoLift"),
}
__all__, __getattr__ = lazy_exports("mvcapture.pipeline", _EXPORTS)
