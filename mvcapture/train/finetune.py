"""The training loop: multi-view consistency fine-tuning (PAPER.md) and 3D-supervised pretraining.

One `Trainer` serves every variant, a single process or one rank of a `torchrun` job. Its whole state
(model, optimizer with its decayed lr, position in the data, best epoch, RNG) is a checkpoint, and the data
order of an epoch depends only on (seed, epoch), so a resumed run ends where an uninterrupted one does.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable

import numpy as np
import torch

from mvcapture.errors import MvcaptureError
from mvcapture.train.variants import DEFAULT_LAMBDA_CON, VARIANTS

log = logging.getLogger(__name__)

DEFAULT_EPOCHS = 30       # the paper's
LR_SCHEDULES = ("exp", "cosine")
AUTO_MIN_STEPS = 100      # "auto" epochs: the paper's 30, but never fewer than this many steps


def auto_epochs(epochs: int | None) -> dict:
    """TrainConfig fields for an epoch count the user gave, or for "auto" (None): the paper's 30 epochs and
    at least AUTO_MIN_STEPS steps, so a 2-second recording (one step per epoch) still trains properly."""
    if epochs is None:
        return {"epochs": DEFAULT_EPOCHS, "min_steps": AUTO_MIN_STEPS}
    return {"epochs": int(epochs)}


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (the paper's defaults)."""

    variant: str = "l2d_con"
    epochs: int = DEFAULT_EPOCHS
    # at least this many optimizer steps: a short recording gets more epochs than `epochs` (the paper's
    # 30 epochs assume many windows per epoch; the 100-frame demo has one window batch). 0 = exactly `epochs`
    min_steps: int = 0
    lr: float = 2e-4
    lr_decay: float = 0.99          # × per epoch ("exp" schedule)
    # "exp": lr × lr_decay per epoch (the paper); "cosine": from lr down to lr_floor × lr over the run — its
    # steps (epochs × steps per epoch) or, with a time budget, its seconds (MotionBERT-style pretraining)
    lr_schedule: str = "exp"
    lr_floor: float = 0.02
    # optimizer steps per epoch: 0 = one pass over the training windows; N > 0 = N random batches drawn
    # from (seed, epoch) over all windows, so that a large data set is validated (and the best weights
    # kept) every N steps rather than once per pass
    epoch_steps: int = 0
    # stop after this many seconds of training (0 = no limit): the last, partial epoch is validated too
    # (it ran at the lowest learning rates) and the run ends with status "budget". A resumed run goes on
    # with the seconds its checkpoint has used. What a device lease fixes is time, not an epoch count; a
    # time-budgeted run is not step-for-step reproducible (the number of steps depends on the machine)
    time_budget_s: float = 0.0
    # lr ramps linearly from lr / warmup_steps to lr over the first steps: Adam's first updates move every
    # weight by ~lr at once, which on a short recording (the demo: one step per epoch) briefly broke the
    # fit to the 2D (validation reprojection error 2.6x); 0 = off (the paper, and the README experiment)
    warmup_steps: int = 10
    weight_decay: float = 0.0       # 0 → Adam (the paper); MotionBERT pretraining uses 0.01 (AdamW)
    batch_size: int = 8             # windows per step (each window holds all its views)
    grad_clip: float = 1.0          # max global gradient norm
    seed: int = 0
    window: int | None = None       # frames per window; None → the model's maxlen
    stride: int | None = None       # None → window // 3
    val_fraction: float = 0.15      # tail of each clip held out for validation (fine-tuning)
    collapse_fraction: float = 0.5  # 2D + consistency: stop when predicted body size < this × initial
    # 2D + consistency: stop when the validation reprojection error exceeds this × the initial one for
    # `soft_collapse_patience` epochs in a row — the "soft" collapse, where the views agree on a pose of
    # plausible size that no longer fits the 2D; 0 = off. Such epochs are never kept. The patience lets
    # the first steps' transient pass (on a short recording the first epoch's error can briefly double).
    soft_collapse_factor: float = 1.5
    soft_collapse_patience: int = 3
    lambda_reproj: float = 1.0
    lambda_con: float | None = None  # None → DEFAULT_LAMBDA_CON[variant]
    lambda_pos: float = 1.0
    lambda_vel: float = 20.0
    lambda_scale: float = 0.5
    lambda_guard: float = 1.0       # collapse guard with 2D + consistency (core.losses.collapse_guard)
    amp: bool = True                # bf16 autocast on CUDA (ignored on CPU)
    # mirror half the windows, chosen by (seed, epoch) (MotionBERT pretraining). On by default because the
    # app lifts with flip test-time augmentation: fine-tuned without it, the mirrored half of every
    # prediction stays unadapted (the demo's two-view residual after fine-tuning: 114 mm without, 58 mm with)
    flip: bool = True
    # pretraining on synthetic clips: draw the detector noise of every training window anew each epoch from
    # the exact projections the clips carry (`kp2d_clean`), with the measured statistics of
    # resources/noise (data.detector_noise.MeasuredNoise); the clips' own noise is one draw of many
    redraw_noise: bool = False

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise MvcaptureError(f"unknown variant '{self.variant}'; choose one of {', '.join(VARIANTS)}")
        if self.lambda_con is None:
            self.lambda_con = DEFAULT_LAMBDA_CON.get(self.variant, 0.0)
        if self.epochs < 1 or self.batch_size < 1:
            raise MvcaptureError("epochs and batch size must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise MvcaptureError(f"learning rate must be a positive number, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise MvcaptureError(f"unknown learning-rate schedule '{self.lr_schedule}'; choose one of "
                                 f"{', '.join(LR_SCHEDULES)}")
        if not (0.0 <= self.lr_floor <= 1.0):
            raise MvcaptureError(f"lr_floor is a fraction of the learning rate in [0, 1], got {self.lr_floor}")
        if self.epoch_steps < 0:
            raise MvcaptureError(f"steps per epoch must be ≥ 0 (0 = one pass over the data), got {self.epoch_steps}")
        if not (math.isfinite(self.time_budget_s) and self.time_budget_s >= 0):
            raise MvcaptureError(f"time budget must be a number of seconds ≥ 0 (0 = none), got {self.time_budget_s}")
        for name in ("lambda_reproj", "lambda_con", "lambda_pos", "lambda_vel", "lambda_scale", "lambda_guard"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise MvcaptureError(f"{name.replace('lambda_', 'λ_')} must be a number ≥ 0, got {value}")

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise MvcaptureError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(**data)

    def loss_weights(self) -> dict:
        """λ of every term this variant uses (for the model card)."""
        terms = VARIANTS[self.variant]
        out = {}
        if terms["reproj"]:
            out["reproj"] = self.lambda_reproj
        if terms["sup3d"]:
            out.update(pos=self.lambda_pos, vel=self.lambda_vel, scale=self.lambda_scale)
        if terms["con"]:
            out["con_" + terms["con"]] = self.lambda_con
            if terms["reproj"] and self.lambda_guard:
                out["guard"] = self.lambda_guard
        return out


# --------------------------------------------------------------------------------------------- losses

def loss_confidence(batch: dict) -> torch.Tensor:
    """(B, V, T, 17) joint weights: detection confidence, 0 on padding frames of short clips."""
    conf = batch["conf"]
    if "valid" in batch:
        conf = conf * batch["valid"][:, None, :, None].to(conf.dtype)
    return conf


def compute_losses(pred: torch.Tensor, batch: dict, config: TrainConfig,
                   share_weights: dict[str, float] | None = None) -> tuple[torch.Tensor, dict]:
    """The variant's total loss for a batch of multi-view windows, and its parts (floats, unweighted):
    `loss_terms` with each part read back to the host."""
    total, parts = loss_terms(pred, batch, config, share_weights)
    return total, {k: float(v.detach()) for k, v in parts.items()}


def loss_terms(pred: torch.Tensor, batch: dict, config: TrainConfig,
               share_weights: dict[str, float] | None = None) -> tuple[torch.Tensor, dict]:
    """The variant's total loss for a batch of multi-view windows, and its parts (scalar tensors, unweighted).

    Terms (core.losses): reprojection (2D variants), λ_pos·L_pos + λ_vel·L_vel + λ_scale·L_scale (3D
    variants), λ_con·L_con over all view pairs (sequence or frame alignment), and for 2D + consistency
    the collapse guard λ_guard·guard (core.losses.collapse_guard).

    Args:
        pred: (B, V, T, 17, 3) lifter output, normalized 2.5D (made root-relative here).
        batch: WindowDataset items stacked: `kp2d_norm` (B, V, T, 17, 2), `conf` (B, V, T, 17), `valid`
            (B, T) and, for 3D variants, `target` (B, V, T, 17, 3) with `has_target` (B,).
        share_weights: per-term factors ("reproj", "mean") that make a DDP rank's share of a global batch
            contribute its exact part of the global mean; None for a whole batch.

    Returns:
        total loss (scalar tensor, share-weighted), {"total", "reproj", "pos", "vel", "scale", "con",
        "guard"} as used (scalar tensors on pred's device, this batch's unweighted values).
    """
    from mvcapture.core import losses

    terms = VARIANTS[config.variant]
    w_reproj, w_mean = (share_weights["reproj"], share_weights["mean"]) if share_weights else (1.0, 1.0)
    pred = pred - pred[..., :1, :]
    flat = pred.flatten(0, 1)
    conf = loss_confidence(batch)
    kp = batch["kp2d_norm"].flatten(0, 1)
    total = pred.new_zeros(())
    parts: dict[str, torch.Tensor] = {}
    if terms["reproj"]:
        parts["reproj"] = losses.reprojection_loss(flat, kp, conf.flatten(0, 1))
        total = total + w_reproj * config.lambda_reproj * parts["reproj"]
    if terms["sup3d"]:
        if "target" not in batch or ("has_target" in batch and not bool(batch["has_target"].all())):
            raise MvcaptureError(f"variant {config.variant} needs 3D ground truth (key 'gt3d') in every "
                                 "training clip; use an l2d variant for clips without it")
        target = batch["target"].flatten(0, 1)
        if "target_weight" in batch:  # pseudo-labels: each joint as confidently as it was triangulated
            w = batch["target_weight"].flatten(0, 1).to(flat.dtype)
            err = torch.linalg.vector_norm(flat - target, dim=-1)
            parts["pos"] = (w * err).sum() / w.sum().clamp_min(1e-6)
        else:
            parts["pos"] = losses.loss_pos(flat, target)
        parts["vel"] = losses.loss_vel(flat, target)
        parts["scale"] = losses.loss_scale(flat, target)
        total = total + w_mean * (config.lambda_pos * parts["pos"] + config.lambda_vel * parts["vel"]
                                  + config.lambda_scale * parts["scale"])
    if terms["con"]:
        parts["con"] = losses.consistency_loss(pred, conf, mode=terms["con"])
        total = total + w_mean * config.lambda_con * parts["con"]
        if terms["reproj"] and config.lambda_guard:
            parts["guard"] = losses.collapse_guard(flat, kp, conf.flatten(0, 1))
            total = total + w_mean * config.lambda_guard * parts["guard"]
    parts["total"] = total
    return total, parts


# ----------------------------------------------------------------------------------------------- data

def collate(items: list[dict]) -> dict:
    """Stack dataset items key by key (keys every item has)."""
    keys = set(items[0])
    for item in items[1:]:
        keys &= set(item)
    return {k: torch.stack([torch.as_tensor(item[k]) for item in items]) for k in sorted(keys)}


def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The global batches of an epoch: a permutation from (seed, epoch), cut into full batches.

    Independent of the number of processes (a smaller final batch is dropped unless it is the only one),
    which is what makes DDP and resumed runs follow the single-process run exactly.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n_items, generator=gen).numpy()
    if n_items <= batch_size:
        return [order]
    n_full = n_items // batch_size
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(n_full)]


def sampled_batches(n_items: int, batch_size: int, seed: int, epoch: int, steps: int) -> list[np.ndarray]:
    """`steps` global batches of an epoch drawn from (seed, epoch) over all items: permutations of every item
    laid end to end (each item once before any twice) and cut into full batches — epochs shorter or longer
    than one pass over a data set. Like `epoch_batches`, independent of the number of processes."""
    rng = np.random.default_rng([seed, epoch])
    size = min(batch_size, n_items)
    passes = -(-steps * size // n_items)
    order = np.concatenate([rng.permutation(n_items) for _ in range(passes)])
    return [order[i * size:(i + 1) * size] for i in range(steps)]


def epoch_flips(n_items: int, seed: int, epoch: int) -> np.ndarray:
    """(n_items,) bool: which windows are mirrored this epoch (from (seed, epoch) only, like the order)."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 2 + 1)
    return (torch.rand(n_items, generator=gen) < 0.5).numpy()


def mirror_batch(batch: dict, mask: torch.Tensor) -> dict:
    """Mirror the windows where `mask` (B,) is set: x → −x, left ↔ right joints, in every view.

    Mirroring every view of a window keeps it multi-view consistent (each camera sees the mirror image
    of the same motion), so the consistency loss stays valid.
    """
    from mvcapture.core.skeleton import H36M17_FLIP_PERMUTATION

    if not bool(mask.any()):
        return batch
    perm = torch.as_tensor(H36M17_FLIP_PERMUTATION, device=mask.device)
    out = dict(batch)

    def pick(key, mirrored):
        shape = (-1,) + (1,) * (batch[key].ndim - 1)
        out[key] = torch.where(mask.view(shape), mirrored, batch[key])

    for key in ("input", "kp2d_norm", "target", "gt3d"):
        if key in batch:
            m = batch[key][..., perm, :].clone()
            m[..., 0] = -m[..., 0]
            pick(key, m)
    pick("conf", batch["conf"][..., perm])
    if "target_weight" in batch:
        pick("target_weight", batch["target_weight"][..., perm])
    if "root_m" in batch:
        pick("root_m", batch["root_m"] * torch.tensor([-1.0, 1.0, 1.0], device=mask.device))
    return out


def share_weights(n_share: int, conf_share: float, n_total: float, conf_total: float, world: int) -> dict:
    """Loss-term factors for one rank's share of a global batch (see `compute_losses`).

    DDP averages gradients over `world` ranks. Mean-over-items terms weighted by world·n_share/n_total
    and the confidence-weighted reprojection by world·conf_share/conf_total make that average exactly
    the gradient of the loss of the whole global batch.
    """
    return {"mean": world * n_share / n_total, "reproj": world * conf_share / max(conf_total, 1e-12)}


def rank_share(batch_idx: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's part of a global batch (interleaved, so shares differ by at most one item)."""
    return batch_idx[rank::world]


# ---------------------------------------------------------------------------------------- distributed

@dataclass(frozen=True)
class DistInfo:
    """This process's rank in a `torchrun` job and the number of processes (1, 0 when alone)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, values: list[float], device) -> list[float]:
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()


# -------------------------------------------------------------------------------------------- trainer

def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": _numpy_state_to_list(np.random.get_state())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuple(state["python"]))
    np.random.set_state(_numpy_state_from_list(state["numpy"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_list(state) -> list:
    return [state[0], torch.from_numpy(np.asarray(state[1], dtype=np.int64)), int(state[2]), int(state[3]),
            float(state[4])]


def _numpy_state_from_list(state) -> tuple:
    return (state[0], np.asarray(state[1], dtype=np.uint32), state[2], state[3], state[4])


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    """How a run ended: `finished`, `cancelled`, `collapsed` or `budget` (its time budget spent), and the
    best epoch's metrics."""

    status: str
    best_epoch: int | None
    best_metrics: dict
    history: list = field(default_factory=list)


class Trainer:
    """Trains `model` (B, T, 17, 3) → (B, T, 17, 3) on windows of multi-view clips.

    Args:
        model: the lifter network (plain module; wrapped in DDP here when `dist.world > 1`).
        train_set / val_set: map-style datasets of windows (WindowDataset items).
        config: TrainConfig.
        emit: called with every progress event (dict); only the main rank emits.
        dist: this process's rank and the world size.
    """

    def __init__(self, model: torch.nn.Module, train_set, val_set, config: TrainConfig,
                 emit: Callable[[dict], None] = lambda event: None, dist: DistInfo = DistInfo(),
                 device: str | torch.device = "auto"):
        self.config = config
        from mvcapture.lifter import select_device

        self.device = select_device(device)  # "auto": CUDA, then Apple MPS, then CPU
        self.model = model.to(self.device)
        self.train_set, self.val_set = train_set, val_set
        self.dist = dist
        self._emit = emit
        if len(train_set) < dist.world:
            raise MvcaptureError(f"only {len(train_set)} training windows for {dist.world} processes; "
                                 "give more or longer clips")
        if len(val_set) == 0:
            raise MvcaptureError("no validation windows; give longer clips (or more of them)")
        self.net = model
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.epoch = 0            # current epoch (0-based)
        self.step = 0             # next batch index within the epoch
        self.global_step = 0
        self.epoch_sums: dict[str, float] = {}
        self.epoch_count = 0
        self.history: list[dict] = []
        self.best_epoch: int | None = None
        self.best_score = math.inf
        self.best_metrics: dict = {}
        self.best_state: dict | None = None
        self.initial: dict | None = None   # validation of the starting model
        self.collapse_message: str | None = None
        self.train_seconds = 0.0  # seconds of training so far (all runs of a resumed job; ranks' mean)
        self._run_t0, self._seconds_before = time.perf_counter(), 0.0  # this run's clock (set by `run`)
        self.steps_per_epoch = config.epoch_steps or len(epoch_batches(len(train_set), config.batch_size,
                                                                       config.seed, 0))
        if config.min_steps > 0 and config.epochs * self.steps_per_epoch < config.min_steps:
            # a function of the data only, so a resumed job arrives at the same number
            self.config = replace(config, epochs=math.ceil(config.min_steps / self.steps_per_epoch))

    # ---------------------------------------------------------------------------- state / checkpoint
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
            "epoch_sums": dict(self.epoch_sums), "epoch_count": self.epoch_count,
            "history": self.history, "best_epoch": self.best_epoch, "best_score": self.best_score,
            "best_metrics": self.best_metrics, "best_state": self.best_state, "initial": self.initial,
            "collapse_message": self.collapse_message, "train_seconds": self.train_seconds,
            "rng": rng_state(), "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.epoch_sums, self.epoch_count = dict(state["epoch_sums"]), state["epoch_count"]
        self.history = list(state["history"])
        self.best_epoch, self.best_score = state["best_epoch"], state["best_score"]
        self.best_metrics, self.initial = state["best_metrics"], state["initial"]
        self.best_state = state["best_state"]
        self.collapse_message = state.get("collapse_message")
        self.train_seconds = float(state.get("train_seconds", 0.0))
        set_rng_state(state["rng"])

    def emit(self, event: dict) -> None:
        if self.dist.is_main:
            self._emit(event)

    # ------------------------------------------------------------------------------------ validation
    @property
    def selects_by_mpjpe(self) -> bool:
        """3D-supervised variants select the best epoch by MPJPE; 2D ones never look at 3D ground truth."""
        return VARIANTS[self.config.variant]["sup3d"]

    @torch.no_grad()
    def validate(self, dataset=None, model: torch.nn.Module | None = None) -> dict:
        """Metrics on the held-out windows (means over windows), or on the windows of `dataset`, of the
        trained model or of `model` (e.g. the starting lifter, on the trainer's device).

        consistency_mm: L_c between views after scaling each view's prediction to the athlete-height
        prior (so it is in mm and cannot shrink with the body); mpjpe_mm: against gt3d where the
        windows have it (exact metres via focal_px and the root); body_size: mean predicted bone-chain
        length (normalized units, for the collapse guard); loss: the training objective; reproj (2D
        variants): the reprojection error (normalized image units, for the soft-collapse guard).
        """
        from mvcapture.core.losses import consistency_loss
        from mvcapture.core.normalize import height_proxy, norm25d_to_camera, norm25d_to_metres

        model = self.model if model is None else model
        model.eval()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}

        def add(key, value, n):
            sums[key] = sums.get(key, 0.0) + float(value) * n
            counts[key] = counts.get(key, 0) + n

        size = self.config.batch_size
        dataset = self.val_set if dataset is None else dataset
        for start in range(0, len(dataset), size):
            items = [dataset[i] for i in range(start, min(start + size, len(dataset)))]
            batch = self._to_device(collate(items))
            pred = self._forward(batch, model).float()
            pred = pred - pred[..., :1, :]
            n = pred.shape[0]
            has_target = batch["has_target"].bool() if "has_target" in batch else torch.ones(n, dtype=torch.bool)
            if not VARIANTS[self.config.variant]["sup3d"] or bool(has_target.all()):
                parts = compute_losses(pred, batch, self.config)[1]
                add("loss", parts["total"], n)
                if "reproj" in parts:   # 2D variants: the unweighted reprojection term of that objective
                    add("reproj", parts["reproj"], n)
            conf = loss_confidence(batch)
            add("consistency_mm", 1000 * consistency_loss(norm25d_to_metres(pred), conf, mode="sequence"), n)
            add("body_size", height_proxy(pred).mean(), n)
            if bool(has_target.any()):
                sel = has_target.nonzero().flatten()
                pred_m = norm25d_to_camera(pred[sel], batch["focal_px"][sel], batch["image_size"][sel],
                                           batch["root_m"][sel])
                gt = batch["gt3d"][sel]
                add("mpjpe_mm", 1000 * (pred_m - (gt - gt[..., :1, :])).norm(dim=-1).mean(), len(sel))
        model.train()
        return {k: sums[k] / counts[k] for k in sums}

    def collapsed(self, body_size: float) -> bool:
        """The degenerate solution of L_con without 3D supervision: predicted bodies shrinking to a point.

        Only 2D + consistency variants can collapse (PAPER.md); with 3D supervision the size is pinned
        and a shrinking body (e.g. from an over-sized random initialisation) is learning, not collapse.
        """
        terms = VARIANTS[self.config.variant]
        if not terms["con"] or terms["sup3d"]:
            return False
        return body_size < self.config.collapse_fraction * self.initial["body_size"]

    def soft_collapsed(self, val: dict) -> bool:
        """The soft collapse of 2D + consistency: the views agree (low L_con) on a pose that no longer fits
        the 2D, seen as a validation reprojection error above `soft_collapse_factor` × the initial one."""
        terms = VARIANTS[self.config.variant]
        factor = self.config.soft_collapse_factor
        if not (terms["con"] and terms["reproj"]) or terms["sup3d"] or not factor:
            return False
        if "reproj" not in val or "reproj" not in (self.initial or {}):
            return False
        return val["reproj"] > factor * self.initial["reproj"]

    def score(self, metrics: dict) -> float:
        if self.selects_by_mpjpe:
            return metrics.get("mpjpe_mm", math.inf)
        return metrics["consistency_mm"]

    # -------------------------------------------------------------------------------------- training
    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _forward(self, batch: dict, net: torch.nn.Module | None = None) -> torch.Tensor:
        net = self.model if net is None else net
        x = batch["input"]
        B, V = x.shape[:2]
        use_amp = self.config.amp and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = net(x.flatten(0, 1))
        return out.float().reshape(B, V, *out.shape[1:])

    def _batches(self, epoch: int) -> list[np.ndarray]:
        cfg = self.config
        if cfg.epoch_steps:
            return sampled_batches(len(self.train_set), cfg.batch_size, cfg.seed, epoch, cfg.epoch_steps)
        return epoch_batches(len(self.train_set), cfg.batch_size, cfg.seed, epoch)

    def train_step(self, global_idx: np.ndarray, stop_requested: Callable[[], bool] = lambda: False
                   ) -> tuple[dict, float, float, bool]:
        """One optimizer step on a global batch (this rank's share of it).

        Returns the batch's loss parts and mean body size (averaged over all ranks), the gradient norm,
        and whether any rank asked to stop; updates `train_seconds` (the ranks' mean). Everything the step
        reports (loss parts, body size, gradient norm) is read back to the host in one transfer after the
        optimizer step; alone, it needs no confidence sum for share weights either. (Still synchronising on a
        GPU: `mirror_batch`'s check for any mirrored window and the 3D variants' check for ground truth.)
        """
        share = rank_share(global_idx, self.dist.rank, self.dist.world)
        batch = self._to_device(collate([self.train_set[int(i)] for i in share]))
        if self.config.flip:
            flips = epoch_flips(len(self.train_set), self.config.seed, self.epoch)[share]
            batch = mirror_batch(batch, torch.as_tensor(flips, device=self.device))
        world = self.dist.world
        if world == 1:  # the whole global batch: every share weight is 1
            n_total, shares = float(len(share)), {"mean": 1.0, "reproj": 1.0}
        else:
            # DDP averages gradients over ranks. Each term is a mean over this rank's share (reprojection:
            # confidence-weighted), so weighting it by world × (share / global batch), in items or in
            # confidence, makes that average the gradient of the mean over the whole global batch.
            conf_sum = float(loss_confidence(batch).sum())
            n_total, conf_total = self.dist.all_reduce_sum([float(len(share)), conf_sum], self.device)
            shares = share_weights(len(share), conf_sum, n_total, conf_total, world)
        pred = self._forward(batch, self.net)
        loss, terms = loss_terms(pred, batch, self.config, shares)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.epoch, self.global_step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        keys = sorted(terms)
        size, grad_norm, *values = torch.stack(
            [height_proxy_mean(pred.detach()), grad_norm.float()] + [terms[k].detach().float() for k in keys]).tolist()
        reproj_keys = {"reproj"}
        weighted = [v * (shares["reproj"] if k in reproj_keys else shares["mean"]) / world
                    for k, v in zip(keys, values)]
        seconds = self._seconds_before + (time.perf_counter() - self._run_t0)
        stop, size_sum, seconds_sum, *part_sums = self.dist.all_reduce_sum(
            [float(stop_requested()), size * len(share), seconds] + weighted, self.device)
        self.train_seconds = seconds_sum / world
        parts = dict(zip(keys, part_sums))
        parts["total"] = sum(self._weighted_parts(parts))
        return parts, size_sum / n_total, float(grad_norm), bool(stop)

    def lr_at(self, epoch: int, global_step: int) -> float:
        """Learning rate of the step `global_step` (0-based) in `epoch`, warmed up over the first steps, then
        decayed per epoch ("exp") or on a cosine from lr to lr_floor × lr over the run ("cosine": over its
        steps, or with a time budget over its seconds so far, `train_seconds`)."""
        cfg = self.config
        warm = min(1.0, (global_step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
        if cfg.lr_schedule == "exp":
            return cfg.lr * cfg.lr_decay ** epoch * warm
        if cfg.time_budget_s:
            frac = self.train_seconds / cfg.time_budget_s
        else:
            frac = global_step / max(1, cfg.epochs * self.steps_per_epoch - 1)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
        return cfg.lr * warm * (cfg.lr_floor + (1.0 - cfg.lr_floor) * cosine)

    def _weighted_parts(self, parts: dict) -> list[float]:
        cfg = self.config
        lam = {"reproj": cfg.lambda_reproj, "pos": cfg.lambda_pos, "vel": cfg.lambda_vel,
               "scale": cfg.lambda_scale, "con": cfg.lambda_con, "guard": cfg.lambda_guard}
        return [lam[k] * v for k, v in parts.items() if k in lam]

    def run(self, stop_requested: Callable[[], bool] = lambda: False,
            save_checkpoint: Callable[[dict], None] | None = None,
            checkpoint_every_s: float = 60.0) -> TrainResult:
        """Train until the last epoch, a stop request (checkpoint, `cancelled`), a collapse or the end of
        the time budget (`budget`: the partial epoch validated, a checkpoint written).

        `save_checkpoint(state)` is called by the main rank at each epoch end, on cancel and at least
        every `checkpoint_every_s` seconds.
        """
        cfg = self.config
        # the budget's clock runs from here (the first validation included), on from a checkpoint's seconds
        self._run_t0, self._seconds_before = time.perf_counter(), self.train_seconds
        self.model.train()
        if self.initial is None:
            self.initial = self.validate()
            self.emit({"event": "validation", "epoch": 0, "validation": self.initial})
        t_start, steps_done = time.perf_counter(), 0
        last_ckpt = time.perf_counter()
        total_steps = cfg.epochs * self.steps_per_epoch
        status = "finished"

        def checkpoint():
            nonlocal last_ckpt
            if save_checkpoint is not None and self.dist.is_main:
                save_checkpoint(self.state_dict())
                self.emit({"event": "checkpoint", "epoch": self.epoch, "step": self.step,
                           "global_step": self.global_step})
            last_ckpt = time.perf_counter()

        while self.epoch < cfg.epochs:
            batches = self._batches(self.epoch)
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(self.epoch)
            while self.step < len(batches):
                if cfg.time_budget_s and self.train_seconds >= cfg.time_budget_s:
                    status = "budget"
                    break
                parts, size, grad_norm, stop = self.train_step(batches[self.step], stop_requested)
                n_global = len(batches[self.step])
                self.step += 1
                self.global_step += 1
                steps_done += 1
                for k, v in parts.items():
                    self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
                self.epoch_count += 1
                elapsed = time.perf_counter() - t_start
                eta = elapsed / steps_done * (total_steps - self.global_step)
                if cfg.time_budget_s:
                    eta = max(0.0, min(eta, cfg.time_budget_s - self.train_seconds))
                self.emit({"event": "step", "epoch": self.epoch + 1, "epochs": cfg.epochs, "step": self.step,
                           "steps_per_epoch": len(batches), "global_step": self.global_step,
                           "total_steps": total_steps, "losses": parts, "lr": self.optimizer.param_groups[0]["lr"],
                           "grad_norm": float(grad_norm), "body_size_ratio": size / self.initial["body_size"],
                           "samples_per_s": steps_done * n_global / elapsed, "eta_s": eta,
                           "train_s": self.train_seconds, "time_budget_s": cfg.time_budget_s})
                if self.collapsed(size):
                    status = "collapsed"
                    break
                if stop:
                    status = "cancelled"
                    break
                if time.perf_counter() - last_ckpt > checkpoint_every_s:
                    checkpoint()
            if status == "budget":
                self.emit({"event": "budget", "seconds": self.train_seconds, "budget_s": cfg.time_budget_s,
                           "global_step": self.global_step, "epoch": self.epoch + 1, "step": self.step})
                if self.step > 0:  # the partial last epoch ran at the lowest learning rates: validate it too
                    status = "budget" if self._end_epoch() == "finished" else "collapsed"
                checkpoint()
                break
            if status != "finished":
                break
            status = self._end_epoch()
            checkpoint()
            if status != "finished":
                break
        if status == "cancelled":
            checkpoint()
        if status == "collapsed":
            message = self.collapse_message or (
                f"predicted body size fell below {cfg.collapse_fraction:.0%} of the initial one; "
                f"stopped, {self._kept()}. Lower λ_con.")
            self.emit({"event": "collapse", "epoch": self.epoch + 1, "step": self.step, "message": message})
        return TrainResult(status, self.best_epoch, self.best_metrics, self.history)

    def _kept(self) -> str:
        return f"kept the best epoch ({self.best_epoch})" if self.best_epoch else "no epoch to keep"

    def _end_epoch(self) -> str:
        cfg = self.config
        train = {k: v / max(self.epoch_count, 1) for k, v in self.epoch_sums.items()}
        val = self.validate()
        record = {"epoch": self.epoch + 1, "train": train, "validation": val,
                  "lr": self.optimizer.param_groups[0]["lr"]}
        collapsed = self.collapsed(val["body_size"])
        over = self.soft_collapsed(val)
        if over:  # consecutive epochs over the soft-collapse threshold, this one included
            record["soft_collapse_strikes"] = 1 + (self.history[-1].get("soft_collapse_strikes", 0)
                                                   if self.history else 0)
        strikes = record.get("soft_collapse_strikes", 0)
        if not collapsed and over and strikes >= max(1, cfg.soft_collapse_patience):
            collapsed = True
            self.collapse_message = (
                f"the views agree but no longer fit the 2D (validation reprojection error "
                f"{val['reproj']:.3f}, {val['reproj'] / self.initial['reproj']:.1f}× the initial "
                f"{self.initial['reproj']:.3f}, {strikes} epoch(s) in a row); stopped, {self._kept()}. "
                f"Lower λ_con.")
        score = self.score(val)
        if not collapsed and not over and score < self.best_score:
            self.best_score, self.best_epoch, self.best_metrics = score, self.epoch + 1, val
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            record["best"] = True
        self.history.append(record)
        self.epoch += 1
        for group in self.optimizer.param_groups:  # lr decay per epoch; saved with the optimizer state
            group["lr"] = self.lr_at(self.epoch, self.global_step)
        self.step = 0
        self.epoch_sums, self.epoch_count = {}, 0
        self.emit({"event": "epoch", **record, "epochs": cfg.epochs, "best_epoch": self.best_epoch})
        return "collapsed" if collapsed else "finished"


def height_proxy_mean(pred: torch.Tensor) -> torch.Tensor:
    """Mean body size (legs + trunk bone chain) of predicted poses, for the collapse guard."""
    from mvcapture.core.normalize import height_proxy

    return height_proxy(pred - pred[..., :1, :]).mean()



def fit(model: torch.nn.Module, train_clips: list, val_clips: list, config: TrainConfig,
        emit: Callable[[dict], None] = lambda event: None, device: str | torch.device = "auto") -> TrainResult:
    """Train `model` in this process on already-split clips and leave the best epoch's weights in it."""
    from mvcapture.train.data import make_datasets, variant_clips

    window = config.window or int(model.maxlen)
    train_clips, val_clips = variant_clips(config.variant, train_clips, val_clips)
    train_set, val_set = make_datasets(train_clips, val_clips, window, config.stride)
    trainer = Trainer(model, train_set, val_set, config, emit=emit, device=device)
    result = trainer.run()
    if trainer.best_state is not None:
        model.load_state_dict(trainer.best_state)
    return result
