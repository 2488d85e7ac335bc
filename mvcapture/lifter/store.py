"""Model store: every fine-tune or pretraining run becomes a new, never-overwritten lifter version.

Layout in `data_dir()/models`: one folder per version (`v0001/`, `v0002/`, ...) holding `weights.pt` and
its model card `weights.json` (FORMATS.md), plus `active.json` naming the version lifting uses. The
shipped lifter (`resources/lifter/default.pt` + `.json`) is the read-only root version `default`; earlier
shipped defaults stay beside it under their own names (`resources/lifter/default-v1.pt` → version
`default-v1`). Below `lifter.weights` (which resolves names here) and below training (which registers here).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mvcapture.errors import ModelNotFoundError, MvcaptureError
from mvcapture.io.atomic import atomic_write_json
from mvcapture.io.cards import card_path, sha256_file
from mvcapture.paths import data_dir, resources_dir

log = logging.getLogger(__name__)

DEFAULT_VERSION = "default"
ACTIVE_VERSION = "active"
WEIGHTS_NAME = "weights.pt"  # the lifter's model-directory layout (lifter.weights.WEIGHTS_FILE_NAME)
CARD_NAME = "weights.json"
_VERSION_RE = re.compile(r"^v(\d{4,})$")
SHIPPED_DIR = "lifter"          # resources/lifter: the shipped default and the earlier defaults it replaced
SHIPPED_DEFAULT_FILE = "default.pt"
_SHIPPED_RE = re.compile(r"^default-v\d+$")  # names of earlier shipped defaults (resources/lifter/<name>.pt)

# Keys every model card carries (FORMATS.md "Model card").
CARD_KEYS = ("name", "version", "parent_version", "architecture", "training_data", "losses", "epochs",
             "metrics", "date", "weights_file", "sha256")


@dataclass(frozen=True)
class ModelVersion:
    """One lifter version: its name, weights file and model card."""

    version: str
    weights: Path
    card: dict

    @property
    def card_path(self) -> Path:
        return card_path(self.weights)


def models_dir() -> Path:
    """The user's model store folder (created on demand)."""
    root = data_dir() / "models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def default_weights() -> Path:
    """The shipped lifter weights (the root version `default`): `resources/lifter/default.pt`."""
    return resources_dir() / SHIPPED_DIR / SHIPPED_DEFAULT_FILE


def missing_default_error(path: Path) -> ModelNotFoundError:
    """The error for shipped default weights that are not there, saying what to do."""
    return ModelNotFoundError(
        f"the default lifter weights are missing ({path}). Train the shipped lifter (the training "
        f"command saves it there with save_lifter), copy a trained `default.pt` with its "
        f"`default.json` model card into {path.parent}, or pass a weights file or a MotionBERT "
        f"checkpoint with --model PATH.")


def shipped_versions() -> list[ModelVersion]:
    """Earlier shipped defaults kept by name (`resources/lifter/default-vN.pt`), oldest first."""
    folder = resources_dir() / SHIPPED_DIR
    files = [p for p in folder.glob("default-v*.pt") if _SHIPPED_RE.match(p.stem)] if folder.is_dir() else []
    files.sort(key=lambda p: int(p.stem.rsplit("v", 1)[1]))
    return [ModelVersion(p.stem, p, read_card(p)) for p in files]


def read_card(weights: Path | str) -> dict:
    """The model card of a weights file ({} when the file has none)."""
    path = card_path(weights)
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _version_dirs() -> list[Path]:
    dirs = [p for p in models_dir().iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
    return sorted(dirs, key=lambda p: int(_VERSION_RE.match(p.name).group(1)))


def get_version(version: str) -> ModelVersion:
    """Look up a version by name (`default`, `active` or `vNNNN`)."""
    if version == ACTIVE_VERSION:
        version = active_version()
    if version == DEFAULT_VERSION:
        weights = default_weights()
        if not weights.is_file():
            raise missing_default_error(weights)
        return ModelVersion(DEFAULT_VERSION, weights, read_card(weights))
    if _SHIPPED_RE.match(version):
        found = [v for v in shipped_versions() if v.version == version]
        if not found:
            known = ", ".join(v.version for v in shipped_versions()) or "none"
            raise ModelNotFoundError(f"no earlier shipped lifter '{version}' in {resources_dir() / SHIPPED_DIR} "
                                     f"(shipped: default, {known})")
        return found[0]
    weights = models_dir() / version / WEIGHTS_NAME
    if not _VERSION_RE.match(version) or not weights.is_file():
        known = ", ".join(v.version for v in list_versions()) or "none"
        raise ModelNotFoundError(f"no model version '{version}' in {models_dir()} (known: {known})")
    return ModelVersion(version, weights, read_card(weights))


def user_versions() -> list[ModelVersion]:
    """The versions trained and registered in the user's store (`vNNNN`), oldest first."""
    return [ModelVersion(d.name, d / WEIGHTS_NAME, read_card(d / WEIGHTS_NAME))
            for d in _version_dirs() if (d / WEIGHTS_NAME).is_file()]


def list_versions() -> list[ModelVersion]:
    """All versions, oldest first; `default` first when the shipped weights exist, then the earlier shipped
    defaults (`default-v1`, ...), then the user's versions."""
    out = []
    if default_weights().is_file():
        out.append(ModelVersion(DEFAULT_VERSION, default_weights(), read_card(default_weights())))
    return out + shipped_versions() + user_versions()


def active_version() -> str:
    """The version lifting uses (`default` until another one is activated)."""
    path = models_dir() / "active.json"
    if not path.is_file():
        return DEFAULT_VERSION
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["version"])
    except (ValueError, KeyError) as exc:
        log.warning("ignoring unreadable %s (%s); using the default lifter", path, exc)
        return DEFAULT_VERSION


def activate(version: str) -> ModelVersion:
    """Make `version` the one lifting uses (one atomic write; the previous choice stays in the store)."""
    found = get_version(version)
    atomic_write_json(models_dir() / "active.json", {"version": found.version})
    log.info("active lifter is now %s", found.version)
    return found


def is_version_name(spec: str | Path) -> bool:
    """Whether `spec` names a store version (`default`, `default-vN`, `active`, `vNNNN`) rather than a file."""
    text = str(spec)
    return text in (DEFAULT_VERSION, ACTIVE_VERSION) or bool(_VERSION_RE.match(text) or _SHIPPED_RE.match(text))


def resolve_model(spec: str | Path | None = None) -> Path:
    """Weights file for a model spec: a version name (`default`, `default-vN`, `active`, `vNNNN`) or a weights path.

    `None` means the active version. This is what `mvcapture.lifter.load_lifter` resolves names with.
    """
    if spec is None:
        spec = ACTIVE_VERSION
    text = str(spec)
    if is_version_name(text):
        return get_version(text).weights
    path = Path(text).expanduser()
    if path.is_file():
        return path
    raise ModelNotFoundError(
        f"model '{text}' is neither a version in the model store nor a weights file "
        f"(see `mvcapture models list`)")


def register_version(weights: Path | str, card: dict) -> ModelVersion:
    """Copy `weights` into a new version folder with its completed model card; never overwrites.

    The card gets `version`, `date` and `sha256` filled in. The folder appears atomically (built under
    a temporary name, then renamed), so a crash never leaves a half-registered version.
    """
    weights = Path(weights)
    root = models_dir()
    tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=root))
    try:
        shutil.copyfile(weights, tmp / WEIGHTS_NAME)
        with open(tmp / WEIGHTS_NAME, "rb") as f:
            os.fsync(f.fileno())
        while True:
            dirs = _version_dirs()
            number = int(_VERSION_RE.match(dirs[-1].name).group(1)) + 1 if dirs else 1
            version = f"v{number:04d}"
            full = {key: None for key in CARD_KEYS}
            full.update(card)
            full.update(version=version, weights_file=WEIGHTS_NAME, sha256=sha256_file(tmp / WEIGHTS_NAME),
                        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
            full["name"] = full.get("name") or version
            atomic_write_json(tmp / CARD_NAME, full)
            try:
                os.rename(tmp, root / version)  # fails if another process took this number
                break
            except OSError:
                if not (root / version).exists():
                    raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("registered model version %s (parent %s)", version, full.get("parent_version"))
    return ModelVersion(version, root / version / WEIGHTS_NAME, full)


def export_version(version: str, dest: Path | str) -> Path:
    """Copy a version's weights and card to `dest` (a `.pt` path, or a folder for `<version>.pt`)."""
    found = get_version(version)
    dest = Path(dest)
    if dest.suffix != ".pt":
        dest.mkdir(parents=True, exist_ok=True)
        dest = dest / f"{found.version}.pt"
    if dest.exists():
        raise MvcaptureError(f"{dest} already exists; choose another path (exports never overwrite)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found.weights, dest)
    atomic_write_json(card_path(dest), {**found.card, "weights_file": dest.name})
    return dest
