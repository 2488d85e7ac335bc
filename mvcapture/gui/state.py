"""The review of one processed session as plain Python: current frame, playback, selected joint.

No Qt here: widgets observe a `ReviewState` through its events and send user intent back by calling
its methods, so the whole playback logic is tested without a window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

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
