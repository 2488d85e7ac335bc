"""The outcome of a time alignment (`SyncResult`), manual overrides and mapping B's clock onto A's.

Conventions (every function of `mvcapture.sync` follows them):
    An event seen at time t_A in recording A (seconds from A's first sample or frame) appears in
    recording B at t_B = (1 + drift) * t_A + offset_s, with drift = drift_ppm * 1e-6.
    So offset_s > 0 means B shows things later than A (B started recording earlier).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mvcapture.errors import MvcaptureError

# Results below this confidence are flagged `low_confidence` and refused by `apply_sync` unless accepted.
LOW_CONFIDENCE = 0.5


class LowConfidenceSyncError(MvcaptureError):
    """A time alignment too uncertain to be used without the user confirming or overriding it."""


@dataclass(frozen=True)
class SyncResult:
    """One estimate of how recording B's clock relates to recording A's.

    Attributes:
        offset_s: t_B - (1 + drift) * t_A, seconds (see the module docstring).
        drift_ppm: relative clock-rate difference of B against A, parts per million.
        confidence: in [0, 1]; below `LOW_CONFIDENCE` the result is flagged.
        method: "audio", "motion", "consistency", "manual", optionally with "+drift".
        low_confidence: True when the result must not be used silently; `reason` says why.
        reason: human-readable explanation of the flag ("" when not flagged).
        details: method-specific diagnostics (peak ratios, windows, residual curves...), JSON-friendly.
    """

    offset_s: float
    drift_ppm: float = 0.0
    confidence: float = 0.0
    method: str = ""
    low_confidence: bool = False
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def drift(self) -> float:
        """Relative clock-rate difference (dimensionless), `drift_ppm * 1e-6`."""
        return self.drift_ppm * 1e-6

    def b_time(self, t_a_s):
        """Times in B (s) of events seen at `t_a_s` in A."""
        return (1.0 + self.drift) * np.asarray(t_a_s, dtype=np.float64) + self.offset_s

    def a_time(self, t_b_s):
        """Times in A (s) of events seen at `t_b_s` in B (inverse of `b_time`)."""
        return (np.asarray(t_b_s, dtype=np.float64) - self.offset_s) / (1.0 + self.drift)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (numpy values converted)."""
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SyncResult":
        """Inverse of `to_dict`."""
        return cls(
            offset_s=float(data["offset_s"]),
            drift_ppm=float(data.get("drift_ppm", 0.0)),
            confidence=float(data.get("confidence", 0.0)),
            method=str(data.get("method", "")),
            low_confidence=bool(data.get("low_confidence", False)),
            reason=str(data.get("reason", "")),
            details=dict(data.get("details", {})),
        )


def flagged(offset_s: float, confidence: float, method: str, *, drift_ppm: float = 0.0,
            reason: str = "", details: dict[str, Any] | None = None) -> SyncResult:
    """Build a `SyncResult`, flagging it when `confidence < LOW_CONFIDENCE` or a `reason` is given.

    `reason` describes a specific problem; when the confidence alone is too low a generic reason is written.
    """
    confidence = float(np.clip(confidence, 0.0, 1.0)) if math.isfinite(confidence) else 0.0
    low = bool(reason) or confidence < LOW_CONFIDENCE
    if low and not reason:
        reason = (f"{method} alignment confidence {confidence:.2f} is below {LOW_CONFIDENCE}: "
                  "check the offset by eye or set it manually")
    return SyncResult(offset_s=float(offset_s), drift_ppm=float(drift_ppm), confidence=confidence,
                      method=method, low_confidence=low, reason=reason, details=details or {})


def manual_offset(offset_s: float, drift_ppm: float = 0.0, note: str = "") -> SyncResult:
    """A user-given alignment; it overrides every estimate (confidence 1, never flagged)."""
    if not (math.isfinite(offset_s) and math.isfinite(drift_ppm)):
        raise MvcaptureError(f"manual offset must be a finite number of seconds, got {offset_s!r}")
    details = {"note": note} if note else {}
    return SyncResult(offset_s=float(offset_s), drift_ppm=float(drift_ppm), confidence=1.0,
                      method="manual", details=details)


def apply_sync(timestamps_b_s, result: SyncResult, *, accept_low_confidence: bool = False) -> np.ndarray:
    """Map recording B's timestamps (s, B's clock) onto A's time base: t_A = (t_B - offset_s) / (1 + drift).

    Raises `LowConfidenceSyncError` for a flagged result unless `accept_low_confidence` (the user
    looked at it and agreed).
    """
    if result.low_confidence and not accept_low_confidence:
        raise LowConfidenceSyncError(f"time alignment not applied: {result.reason}")
    return result.a_time(timestamps_b_s)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
