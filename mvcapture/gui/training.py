"""Progress of one fine-tuning job as plain Python: fed the job's JSON-line events, read by the views.

No Qt. Event kinds follow `mvcapture.train` (start, resumed, step, validation, epoch, checkpoint, collapse,
done, cancelled, failed); unknown kinds are kept in `log` and otherwise ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TERMINAL = ("done", "cancelled", "failed")


@dataclass
class TrainingProgress:
    """What the Fine-tune tab shows about a job.

    Attributes:
        status: "idle", "starting", "running", "done", "cancelled" or "failed".
        step_x: global step of each recorded step; losses: loss name -> values per recorded step.
        epoch_x: epoch numbers with a validation; validation: metric name -> values per epoch
            (epoch 0 = before training).
        eta_s: estimated seconds left (None before the first step).
        result: the final event (`done` carries the new `version` and its `metrics`).
        log: one readable line per event worth telling the user.
    """

    status: str = "idle"
    epoch: int = 0
    epochs: int = 0
    global_step: int = 0
    total_steps: int = 0
    eta_s: float | None = None
    train_s: float = 0.0               # seconds trained so far
    time_budget_s: float = 0.0         # the job's time limit (0 = none)
    step_x: list[int] = field(default_factory=list)
    losses: dict[str, list[float]] = field(default_factory=dict)
    epoch_x: list[int] = field(default_factory=list)
    validation: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    result: dict | None = None
    error: str | None = None
    validation_held_out: bool = True   # False: a short recording validates on its own training windows
    held_out: dict | None = None       # the `held_out` event: sessions never trained on, before / after
    log: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def fraction(self) -> float:
        """Share of the training done, 0..1: of its steps, or of its time limit if that comes first."""
        steps = self.global_step / self.total_steps if self.total_steps else 0.0
        if self.time_budget_s > 0:
            steps = max(steps, self.train_s / self.time_budget_s)
        return min(1.0, steps)

    def _validation(self, epoch: int, metrics: dict) -> None:
        if epoch in self.epoch_x:
            return
        self.epoch_x.append(epoch)
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                series = self.validation.setdefault(key, [float("nan")] * (len(self.epoch_x) - 1))
                series.append(float(value))
        for series in self.validation.values():
            if len(series) < len(self.epoch_x):
                series.append(float("nan"))

    def feed(self, event: dict) -> None:
        """Take one event from the job's stream."""
        kind = event.get("event")
        if kind == "held_out":
            self.held_out = event
            before, after = event["before"].get("consistency_mm"), event["after"].get("consistency_mm")
            if before is not None and after is not None:
                self.log.append(f"held-out sessions ({len(event['clips'])}): consistency {before:.1f} → "
                                f"{after:.1f} mm")
            return
        if kind == "start":
            self.status = "running"
            self.epochs = int(event.get("epochs", 0))
            self.total_steps = self.epochs * int(event.get("steps_per_epoch", 0))
            self.log.append(f"started: {event.get('variant')} for {self.epochs} epochs on {event.get('device')} "
                            f"({event.get('train_windows')} training windows)")
            self.validation_held_out = bool(event.get("validation_held_out", True))
            if event.get("validation_set"):
                self.log.append(f"validation on {event['validation_set']}")
        elif kind == "resumed":
            self.status = "running"
            self.global_step = int(event.get("global_step", self.global_step))
            self.log.append(f"resumed at epoch {event.get('epoch')}, step {event.get('step')}")
        elif kind == "step":
            self.status = "running"
            self.epoch = int(event.get("epoch", self.epoch))
            self.epochs = int(event.get("epochs", self.epochs))
            self.global_step = int(event.get("global_step", self.global_step))
            self.total_steps = int(event.get("total_steps", self.total_steps))
            self.eta_s = event.get("eta_s")
            self.train_s = float(event.get("train_s", self.train_s))
            self.time_budget_s = float(event.get("time_budget_s", self.time_budget_s))
            self.step_x.append(self.global_step)
            n = len(self.step_x)
            for key, value in (event.get("losses") or {}).items():
                series = self.losses.setdefault(key, [float("nan")] * (n - 1))
                series.append(float(value))
            for series in self.losses.values():
                if len(series) < n:
                    series.append(float("nan"))
        elif kind == "validation":
            self._validation(int(event.get("epoch", 0)), event.get("validation") or {})
        elif kind == "epoch":
            self.epoch = int(event.get("epoch", self.epoch))
            self.best_epoch = event.get("best_epoch", self.best_epoch)
            self._validation(self.epoch, event.get("validation") or {})
            self.log.append(f"epoch {self.epoch}/{self.epochs} done" + (" (best so far)" if event.get("best") else ""))
        elif kind == "collapse":
            self.log.append(str(event.get("message", "training collapsed")))
        elif kind == "budget":
            self.log.append(f"time limit reached ({format_eta(event.get('seconds'))} of training, "
                            f"{event.get('global_step')} steps): validating the last epoch, keeping the best")
        elif kind == "done":
            self.status, self.result, self.eta_s = "done", event, 0.0
            self.log.append(f"finished: new lifter version {event.get('version')}"
                            + (" (active)" if event.get("activated") else ""))
        elif kind == "cancelled":
            self.status, self.result, self.eta_s = "cancelled", event, None
            self.log.append(f"cancelled at epoch {event.get('epoch')}; resume continues from the checkpoint")
        elif kind == "failed":
            self.status, self.result, self.eta_s = "failed", event, None
            self.error = str(event.get("error", "training failed"))
            self.log.append(f"failed: {self.error}")


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"
