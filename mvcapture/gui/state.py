"""The review of one processed session as plain Python: current frame, playback, selected joint, and
what the 3D view, the plots and the angle label show (`ReviewScene`).

No Qt here: widgets observe a `ReviewState` through its events and send user intent back by calling
its methods, so the whole playback logic and the data behind every view are tested without a window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from mvcapture.analysis import Analysis

log = logging.getLogger(__name__)

PLAY_SPEEDS = (0.25, 0.5, 1.0, 2.0)


class Event:
    """A tiny observer list: `connect(callback)`, `disconnect(callback)`, `emit(*args)`.

    A failing callback is logged and does not stop the others (one broken view must not freeze the rest).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            try:
                callback(*args)
            except Exception:
                log.exception("observer of %s failed", self.name)


class ReviewEvents:
    """Events of a `ReviewState`; each fires only when its value actually changes."""

    def __init__(self) -> None:
        self.frame = Event("frame")              # (frame: int)
        self.playing = Event("playing")          # (playing: bool)
        self.speed = Event("speed")              # (speed: float)
        self.loop = Event("loop")                # (loop: bool)
        self.selected_joint = Event("selected_joint")  # (joint: int | None)
        self.offset_s = Event("offset_s")        # (view: int, offset_s: float), user intent
        self.show_fused = Event("show_fused")    # (show: bool)


class ReviewState:
    """Playback position and selection over `num_frames` frames at `fps`.

    Frames are indices 0..num_frames-1 on the session's common time base. Playback advances by wall
    time (`advance(dt_s)`), so a slow renderer drops frames instead of slowing the clock down.
    """

    def __init__(self, num_frames: int, fps: float, offset_s: tuple[float, ...] | list[float] = ()) -> None:
        if num_frames < 1:
            raise ValueError(f"a review needs at least one frame, got {num_frames}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.num_frames = int(num_frames)
        self.fps = float(fps)
        self.events = ReviewEvents()
        self._frame = 0
        self._playing = False
        self._speed = 1.0
        self._loop = True
        self._selected_joint: int | None = None
        self._offset_s = [float(o) for o in offset_s]
        self._show_fused = True
        self._carry_s = 0.0  # wall time not yet turned into whole frames

    # -- frame -------------------------------------------------------------------------------------
    @property
    def frame(self) -> int:
        return self._frame

    @property
    def last_frame(self) -> int:
        return self.num_frames - 1

    @property
    def time_s(self) -> float:
        """Time of the current frame from the start of the session, seconds."""
        return self._frame / self.fps

    def clamp(self, frame: int) -> int:
        return max(0, min(self.last_frame, int(frame)))

    def seek(self, frame: int) -> None:
        """Go to `frame` (clamped to the session)."""
        frame = self.clamp(frame)
        self._carry_s = 0.0
        if frame != self._frame:
            self._frame = frame
            self.events.frame.emit(frame)

    def seek_time(self, time_s: float) -> None:
        self.seek(round(time_s * self.fps))

    def step(self, frames: int = 1) -> None:
        """Move by `frames` (negative = back); stepping pauses playback, like every video player."""
        self.pause()
        self.seek(self._frame + frames)

    def first(self) -> None:
        self.seek(0)

    def last(self) -> None:
        self.seek(self.last_frame)

    # -- playback ----------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self._playing

    def play(self) -> None:
        if self._playing:
            return
        if self._frame == self.last_frame and not self._loop:
            self.seek(0)
        self._playing = True
        self._carry_s = 0.0
        self.events.playing.emit(True)

    def pause(self) -> None:
        if self._playing:
            self._playing = False
            self.events.playing.emit(False)

    def toggle_play(self) -> None:
        self.pause() if self._playing else self.play()

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"play speed must be positive, got {speed}")
        if speed != self._speed:
            self._speed = float(speed)
            self.events.speed.emit(self._speed)

    @property
    def loop(self) -> bool:
        return self._loop

    def set_loop(self, loop: bool) -> None:
        if bool(loop) != self._loop:
            self._loop = bool(loop)
            self.events.loop.emit(self._loop)

    def advance(self, dt_s: float) -> None:
        """Let `dt_s` seconds of wall time pass while playing (called by the GUI's playback timer)."""
        if not self._playing or dt_s <= 0:
            return
        self._carry_s += dt_s * self._speed
        frames = int(self._carry_s * self.fps)
        if frames == 0:
            return
        self._carry_s -= frames / self.fps
        target = self._frame + frames
        if target > self.last_frame:
            if self._loop:
                target %= self.num_frames
            else:
                target = self.last_frame
        if target != self._frame:
            self._frame = target
            self.events.frame.emit(target)
        if target == self.last_frame and not self._loop:
            self.pause()

    # -- selection and sync ------------------------------------------------------------------------
    @property
    def selected_joint(self) -> int | None:
        return self._selected_joint

    def select_joint(self, joint: int | None) -> None:
        if joint is not None and not 0 <= joint < 17:
            raise ValueError(f"joint index must be in 0..16, got {joint}")
        if joint != self._selected_joint:
            self._selected_joint = joint
            self.events.selected_joint.emit(joint)

    def offset_s(self, view: int) -> float:
        return self._offset_s[view]

    def set_offset_s(self, view: int, offset_s: float) -> None:
        """The user's correction of a view's time offset (seconds); views observe it to preview."""
        offset_s = float(offset_s)
        if self._offset_s[view] != offset_s:
            self._offset_s[view] = offset_s
            self.events.offset_s.emit(view, offset_s)

    # -- what the 3D view shows ----------------------------------------------------------------------
    @property
    def show_fused(self) -> bool:
        """Whether the 3D view shows the two-view (fused) skeleton with the lifts placed onto it."""
        return self._show_fused

    def set_show_fused(self, show: bool) -> None:
        if bool(show) != self._show_fused:
            self._show_fused = bool(show)
            self.events.show_fused.emit(self._show_fused)

    def toggle_fused(self) -> None:
        self.set_show_fused(not self._show_fused)


def placement_advice(angle_deg: float) -> str:
    """One line for the coach about the angle between two cameras (about 90 degrees works best)."""
    angle = abs(float(angle_deg))
    if angle < 30:
        return "cameras nearly face the same way: move one to the athlete's side (aim for ~90°)"
    if angle < 60:
        return "angle is small: move one camera further round the athlete (aim for ~90°)"
    if angle <= 120:
        return "good placement (~90° between the cameras)"
    if angle <= 150:
        return "angle is large: move one camera back towards the other (aim for ~90°)"
    return "cameras nearly face each other: depth is ambiguous, aim for ~90°"


FUSED_HINT = "re-process for the two-view 3D"
_STEREO_WHY = {"uncertain": "two-view geometry uncertain", "degenerate": "two-view geometry not usable"}


class ReviewScene:
    """What the Review draws of one `Analysis`, prepared once: skeletons per frame, error curves, angle texts.

    With a fused (two-view) track the 3D view can show it with each view's lift placed onto it by one
    similarity for the whole sequence (`geometry.fusion.lifts_onto_fused`, the alignment behind
    `fused_error_mm`): then the gap drawn between a lift and the fused skeleton is the error plotted, and
    a lift's drift over time is not fitted away frame by frame. Without it, the lifts aligned onto view 0
    (`Analysis.aligned`), joints coloured by how far the views disagree.

    Args:
        analysis: the processed recording.
        stereo: the session's metrics.json "stereo" object (status, axis_angle_interval_deg, ...) or None.
    """

    def __init__(self, analysis: Analysis, stereo: dict | None = None) -> None:
        from mvcapture.geometry.fusion import SOURCE_STEREO, lifts_onto_fused

        self.analysis = analysis
        self.stereo = stereo or {}
        self.has_fused = analysis.has_fused
        self.fused_hint = None if self.has_fused else FUSED_HINT
        self.placed: np.ndarray | None = None          # (V, T, 17, 3) m, lifts on the fused track
        self.fused_error_mm: np.ndarray | None = None  # (V, T, 17) mm
        self.fused_from_stereo: np.ndarray | None = None  # (T, 17) bool: triangulated, not filled from a lift
        if self.has_fused:
            self.placed, error = lifts_onto_fused(analysis.pose3d, analysis.conf, analysis.fused3d)
            self.fused_error_mm = np.asarray(analysis.fused_error_mm if analysis.fused_error_mm is not None
                                             else error, np.float64)
            source = analysis.fused_source
            self.fused_from_stereo = (np.asarray(source) == SOURCE_STEREO) if source is not None \
                else np.isfinite(analysis.fused3d).all(-1)

    @property
    def floor_poses_m(self) -> np.ndarray:
        """(N, T, 17, 3) every pose the 3D view may draw (for placing its floor under the lowest foot)."""
        if not self.has_fused:
            return self.analysis.aligned
        return np.concatenate([self.analysis.aligned, self.analysis.fused3d[None], self.placed])

    def poses(self, frame: int, show_fused: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The 3D view at `frame`.

        Returns:
            lifts (V, 17, 3) metres, view 0's camera frame: on the fused track when it is shown, else
            aligned onto view 0; joint_mm (V, 17): the number each lift's joints are coloured by (its error
            against the fused track, else the views' disagreement); fused (17, 3) metres or None (not
            shown or not in this file).
        """
        a = self.analysis
        if show_fused and self.has_fused:
            return self.placed[:, frame], self.fused_error_mm[:, frame], a.fused3d[frame]
        return a.aligned[:, frame], np.broadcast_to(a.residual_mm[frame], (a.num_views, 17)), None

    def fused_error_per_frame_mm(self) -> np.ndarray | None:
        """(V, T) each view's mean lift error over the joints against the fused track (NaN where none), mm."""
        if not self.has_fused:
            return None
        e = self.fused_error_mm
        count = np.isfinite(e).sum(-1)
        return np.where(count > 0, np.nansum(e, -1) / np.maximum(count, 1), np.nan)

    def angle_text(self, view: int) -> str:
        """The angle between view 0 and `view` with where it comes from, e.g. "104° apart (two-view geometry)";
        when the two-view estimate was not confident, the lifter's angle and why, with its interval."""
        a = self.analysis
        angle = float(a.camera_angle_deg[view])
        if a.camera_angle_source[view] == "stereo":
            text = f"{angle:.0f}° apart (two-view geometry)"
        else:
            text = f"{angle:.0f}° apart (lifter"
            status = self.stereo.get("status") if view == 1 else None
            if status in _STEREO_WHY:
                text += f"; {_STEREO_WHY[status]}"
                interval = self.stereo.get("axis_angle_interval_deg")
                if interval is not None and len(interval) == 2 and all(np.isfinite(np.asarray(interval, float))):
                    text += f": {float(interval[0]):.0f}–{float(interval[1]):.0f}°"
            text += ")"
        return text

    def angle_tooltip(self, view: int) -> str:
        """The check beside the shown angle: the lifter-only angle, and the two-view estimate's details."""
        a = self.analysis
        lines = [f"lifter alone (one similarity between the two lifts): {float(a.lifter_camera_angle_deg[view]):.0f}°"]
        st = self.stereo if view == 1 else {}
        if st:
            axes = st.get("axis_angle_deg")
            lines.append(f"two-view geometry: {st.get('status', '?')}"
                         + (f", optical axes {float(axes):.1f}°" if axes is not None else ""))
            interval = st.get("axis_angle_interval_deg")
            if interval is not None and len(interval) == 2:
                lines.append(f"  interval {float(interval[0]):.1f}–{float(interval[1]):.1f}°, "
                             f"confidence {float(st.get('confidence', np.nan)):.2f}")
            if st.get("focal_px") is not None:
                lines.append("  focal " + " / ".join(f"{float(f):.0f}" for f in st["focal_px"]) + " px"
                             + (f" ({', '.join(st['lens'])})" if st.get("lens") else ""))
            if st.get("reprojection_px") is not None:
                lines.append(f"  reprojection {float(st['reprojection_px']):.1f} px")
            lines += [f"  {note}" for note in st.get("notes", [])]
        elif not self.has_fused and view == 1:
            lines.append(FUSED_HINT)
        return "\n".join(lines)
