"""Lifter weights on disk: our weights file + model card, MotionBERT checkpoints, resolution by name.

Our file is a `torch.save` dict {format, config_name, config, state_dict}; its model card (FORMATS.md)
is `<weights stem>.json` beside it. Everything is read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import torch

from mvcapture.errors import ModelNotFoundError, MvcaptureError
from mvcapture.io.atomic import atomic_write_bytes, atomic_write_json
from mvcapture.io.cards import card_path, sha256_file
from mvcapture.lifter import store
from mvcapture.lifter.dstformer import DSTformer, DSTformerConfig, count_parameters

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "mvcapture-lifter"
# File name of the weights inside a model directory (e.g. one version of the model store).
WEIGHTS_FILE_NAME = "weights.pt"
# Model card fields of FORMATS.md, in the order they are written.
CARD_FIELDS = ("name", "version", "parent_version", "architecture", "training_data", "losses", "epochs",
               "metrics", "date", "weights_file", "sha256")
# MotionBERT's released configs both use 8 heads; the head count cannot be read from tensor shapes.
MOTIONBERT_NUM_HEADS = 8


def default_weights_path() -> Path:
    """Where the shipped default lifter lives: `resources/lifter/default.pt`."""
    return store.default_weights()


def save_lifter(model, path: Path | str, card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a lifter's weights and its model card atomically.

    Args:
        model: a DSTformer (or a `Lifter`, or a `torch.compile`d DSTformer).
        path: weights file to write (`.pt`); the card goes to `card_path(path)`.
        card: FORMATS.md fields known to the caller (name, version, parent_version, training_data,
            losses, epochs, metrics, ...; extra keys are kept). `architecture`, `weights_file` and
            `sha256` are filled in here; `date` defaults to now (UTC).

    Returns:
        The model card as written.
    """
    model = _unwrap(model)
    path = Path(path)
    payload = {
        "format": WEIGHTS_FORMAT,
        "config_name": model.config_name,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    card = dict(card or {})
    written = {
        "name": card.pop("name", path.stem),
        "version": card.pop("version", None),
        "parent_version": card.pop("parent_version", None),
        "architecture": {"model": "DSTformer", "config_name": model.config_name,
                         "config": model.config.to_dict(), "parameters": count_parameters(model)},
        "training_data": card.pop("training_data", []),
        "losses": card.pop("losses", {}),
        "epochs": card.pop("epochs", None),
        "metrics": card.pop("metrics", {}),
        "date": card.pop("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")),
        "weights_file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    for key in ("architecture", "weights_file", "sha256"):
        card.pop(key, None)
    written.update(card)
    atomic_write_bytes(path, data)
    atomic_write_json(card_path(path), written)
    log.info("saved lifter %s (%s) to %s", written["name"], model.config_name, path)
    return written


def read_card(weights_path: Path | str) -> dict[str, Any] | None:
    """The model card beside a weights file, or None when there is none."""
    path = card_path(weights_path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MvcaptureError(f"{path}: model card is not readable JSON ({exc})") from exc


def resolve_weights(spec: str | Path = "default") -> Path:
    """A model spec → weights file: "default", a weights file, a model directory holding weights.pt, or a
    model-store version ("active", "v0003", an earlier shipped default "default-v1"; resolved by
    mvcapture.lifter.store.resolve_model)."""
    if str(spec) == "default":
        path = default_weights_path()
        if not path.is_file():
            raise store.missing_default_error(path)
        return path
    path = Path(spec).expanduser()
    if not path.exists() and store.is_version_name(spec):  # "active", "vNNNN", "default-vN"
        return store.resolve_model(spec)
    if path.is_dir():
        weights = path / WEIGHTS_FILE_NAME
        if not weights.is_file():
            raise ModelNotFoundError(f"model directory {path} has no {WEIGHTS_FILE_NAME}")
        return weights
    if path.is_file():
        return path
    raise ModelNotFoundError(
        f"no lifter weights at {path}: give 'default', a weights file (.pt / MotionBERT .bin) or a "
        f"model directory containing {WEIGHTS_FILE_NAME}")


def load_dstformer(path: Path | str, config: str | dict | DSTformerConfig | None = None
                   ) -> tuple[DSTformer, dict[str, Any] | None]:
    """Read a weights file (ours or a MotionBERT checkpoint) into a DSTformer on the CPU, in eval mode.

    Args:
        path: weights file.
        config: architecture to build; by default the file's own config (ours) or one inferred from
            the tensor shapes (MotionBERT, 8 heads assumed).

    Returns:
        (model, model card or None). Raises MvcaptureError when the file is not loadable or its keys
        or shapes do not match the architecture (listing missing, unexpected and mis-shaped keys).
    """
    path = Path(path)
    card = read_card(path)
    if card and card.get("sha256") and card["sha256"] != sha256_file(path):
        raise MvcaptureError(
            f"{path} does not match its model card {card_path(path)} (sha256 differs): the weights were "
            f"replaced or damaged; restore the pair or save the model again")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "Unsupported global" in line), "")
        if not detail:
            raise MvcaptureError(f"{path}: not a readable weights file (not a PyTorch checkpoint)") from exc
        raise MvcaptureError(
            f"{path}: holds Python objects besides weights, which are never unpickled for safety ({detail}); "
            f"save the model's state dict alone (or use save_lifter)") from exc
    except Exception as exc:  # truncated zips, non-torch files
        raise MvcaptureError(f"{path}: not a readable weights file ({exc})") from exc
    state_dict, file_config = extract_state_dict(obj, str(path))
    if config is None:
        config = file_config if file_config is not None else infer_config(state_dict, str(path))
    model = DSTformer(config)
    load_state_dict_strict(model, state_dict, str(path))
    return model.eval(), card


def extract_state_dict(obj: Any, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict | None]:
    """The model tensors of a loaded file (`module.` prefix removed) and its config dict when stored.

    Accepts our format, a MotionBERT checkpoint ({'model_pos': ...}) or a bare state dict.
    """
    if not isinstance(obj, dict):
        raise MvcaptureError(f"{source}: expected a dict of tensors, found {type(obj).__name__}")
    config = None
    if obj.get("format") == WEIGHTS_FORMAT:
        state_dict, config = obj.get("state_dict"), obj.get("config")
    elif "model_pos" in obj:
        state_dict = obj["model_pos"]
    elif "state_dict" in obj:
        state_dict = obj["state_dict"]
    else:
        state_dict = obj
    if not isinstance(state_dict, dict) or not state_dict or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        keys = ", ".join(sorted(map(str, obj))[:8])
        raise MvcaptureError(f"{source}: no model weights found (top-level keys: {keys}); expected our "
                             f"weights file or a MotionBERT checkpoint with 'model_pos'")
    prefix = "module."
    state_dict = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}
    return state_dict, config


def infer_config(state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> DSTformerConfig:
    """Read the DSTformer architecture off tensor shapes (heads cannot be read: MotionBERT's 8)."""
    required = ("temp_embed", "pos_embed", "joints_embed.weight", "pre_logits.fc.weight", "head.weight",
                "blocks_st.0.mlp_s.fc1.weight", "blocks_st.0.attn_s.qkv.weight")
    missing = [k for k in required if k not in state_dict]
    if missing:
        raise MvcaptureError(
            f"{source}: not a DSTformer checkpoint, missing keys: {', '.join(missing)} "
            f"(found {len(state_dict)} tensors, e.g. {', '.join(list(state_dict)[:5])})")
    depth = len({k.split(".")[1] for k in state_dict if k.startswith("blocks_st.")})
    dim_feat = state_dict["pos_embed"].shape[-1]
    return DSTformerConfig(
        dim_feat=dim_feat,
        dim_rep=state_dict["pre_logits.fc.weight"].shape[0],
        depth=depth,
        num_heads=MOTIONBERT_NUM_HEADS,
        mlp_ratio=state_dict["blocks_st.0.mlp_s.fc1.weight"].shape[0] / dim_feat,
        maxlen=state_dict["temp_embed"].shape[1],
        num_joints=state_dict["pos_embed"].shape[1],
        dim_in=state_dict["joints_embed.weight"].shape[1],
        dim_out=state_dict["head.weight"].shape[0],
        qkv_bias="blocks_st.0.attn_s.qkv.bias" in state_dict,
        att_fuse="ts_attn.0.weight" in state_dict,
    )


def load_state_dict_strict(model: DSTformer, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """`load_state_dict(strict=True)` with one clear error naming every missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {tuple(state_dict[k].shape)} (model {tuple(v.shape)})"
             for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
            if keys:
                shown = ", ".join(keys[:12]) + (f", ... ({len(keys) - 12} more)" if len(keys) > 12 else "")
                parts.append(f"{label} ({len(keys)}): {shown}")
        raise MvcaptureError(
            f"{source}: weights do not fit the DSTformer config {model.config_name!r} "
            f"({model.config.to_dict()}): " + "; ".join(parts))
    # (meta tensors hold no values to check: the shape-only load of MotionBERT's layout in the tests)
    broken = [k for k, v in state_dict.items()
              if v.is_floating_point() and not v.is_meta and not bool(torch.isfinite(v).all())]
    if broken:
        raise MvcaptureError(f"{source}: weights hold NaN or infinite values (key {broken[0]!r}"
                             + (f" and {len(broken) - 1} more" if len(broken) > 1 else "")
                             + "); expected finite numbers: the file is damaged or came from a diverged training")
    model.load_state_dict(state_dict, strict=True)


def load_lifter(spec: str | Path = "default", device: str | torch.device | None = None,
                config: str | dict | DSTformerConfig | None = None, **runtime_options):
    """Resolve `spec` ("default", a weights file, a MotionBERT checkpoint, a model directory) → Lifter.

    Args:
        spec: see `resolve_weights`.
        device: "cuda", "mps", "cpu" or None for the best available.
        config: architecture override (a name from CONFIGS, a dict or a DSTformerConfig).
        runtime_options: passed to `Lifter` (precision, compile, batch_size).
    """
    from mvcapture.lifter.runtime import Lifter

    path = resolve_weights(spec)
    model, card = load_dstformer(path, config)
    card = card or {"name": path.stem, "weights_file": path.name}
    return Lifter(model, card=card, device=device, **runtime_options)


def _unwrap(model) -> DSTformer:
    model = getattr(model, "model", model)  # a Lifter
    model = getattr(model, "_orig_mod", model)  # torch.compile
    model = getattr(model, "module", model)  # DataParallel / DDP
    if not isinstance(model, DSTformer):
        raise TypeError(f"save_lifter needs a DSTformer, got {type(model).__name__}")
    return model
