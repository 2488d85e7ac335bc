"""Detector weights: rtmlib's model table, and finding each ONNX file on disk or on the network.

Resolution order for one model: the file or folder the user gives → rtmlib's download cache →
rtmlib's own download (short network probe first, so a dead network fails in seconds) →
`ModelNotFoundError` naming the file, where to put it and the URL to get it from.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mvcapture.errors import ModelNotFoundError

log = logging.getLogger(__name__)

# Seconds the network probe may take before the download step is given up.
NETWORK_PROBE_TIMEOUT_S = 3.0
# Set to 1 to never try a download (portable installs, CI).
OFFLINE_ENV = "MVCAPTURE_OFFLINE"


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable ONNX model of rtmlib's table.

    Attributes:
        url: rtmlib's download URL (a zip holding `end2end.onnx`).
        input_size: model input as rtmlib's class for it expects it: (width, height) for RTMPose,
            (height, width) for YOLOX and RTMO.
    """

    url: str
    input_size: tuple[int, int]

    @property
    def archive_name(self) -> str:
        return os.path.basename(urlparse(self.url).path)

    @property
    def onnx_name(self) -> str:
        """The file name rtmlib gives the extracted model in its cache."""
        return self.archive_name.split(".")[0] + ".onnx"


def _rtmlib_table() -> dict[str, dict[str, ModelSpec]]:
    from rtmlib import Body

    table: dict[str, dict[str, ModelSpec]] = {}
    for mode, entry in Body.MODE.items():
        table[mode] = {
            "det": ModelSpec(entry["det"], tuple(entry["det_input_size"])),
            "pose": ModelSpec(entry["pose"], tuple(entry["pose_input_size"])),
        }
    rtmo = Body.RTMO_MODE["balanced"]
    table["rtmo"] = {"pose": ModelSpec(rtmo["pose"], tuple(rtmo["pose_input_size"]))}
    return table


# Detector modes: RTMPose top-down with YOLOX boxes in rtmlib's three sizes, and one-stage RTMO (rtmo-m).
MODES = ("lightweight", "balanced", "performance", "rtmo")


def model_specs(mode: str) -> dict[str, ModelSpec]:
    """The models of a detector mode: {"det": ..., "pose": ...} (RTMO: {"pose": ...} only)."""
    if mode not in MODES:
        raise ValueError(f"unknown detector mode {mode!r}; choose one of {', '.join(MODES)}")
    return _rtmlib_table()[mode]


def rtmlib_cache_dir() -> Path:
    """Where rtmlib keeps downloaded checkpoints: $TORCH_HOME/hub/checkpoints, else
    $XDG_CACHE_HOME/rtmlib/hub/checkpoints, else ~/.cache/rtmlib/hub/checkpoints."""
    from rtmlib.tools.file import _get_rtmhub_dir

    return Path(_get_rtmhub_dir()) / "checkpoints"


def _find_in(folder: Path, spec: ModelSpec) -> Path | None:
    """The extracted ONNX file in `folder`, extracting rtmlib's zip there first when only that is present."""
    onnx_path = folder / spec.onnx_name
    if onnx_path.is_file():
        return onnx_path
    if (folder / spec.archive_name).is_file():
        from rtmlib.tools.file import download_checkpoint

        # With the archive present rtmlib only extracts it (no network).
        return Path(download_checkpoint(spec.url, dst_dir=str(folder), progress=False))
    return None


def _network_reachable(url: str, timeout_s: float = NETWORK_PROBE_TIMEOUT_S) -> bool:
    """True when the URL's server answers an HTTP HEAD request (any status) within `timeout_s`."""
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    result: list[bool] = []

    def probe() -> None:
        try:
            urlopen(Request(url, method="HEAD", headers={"User-Agent": "mvcapture"}), timeout=timeout_s).close()
        except HTTPError:  # the server answered (some refuse HEAD): the network works
            pass
        except Exception:  # noqa: BLE001 - DNS failure, refused, timed out: no network
            return
        result.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result)


def _download(spec: ModelSpec) -> Path | None:
    if os.environ.get(OFFLINE_ENV) == "1":
        log.info("%s=1: not downloading %s", OFFLINE_ENV, spec.url)
        return None
    from rtmlib.tools.file import download_checkpoint, get_mirror_url

    hosts = [spec.url] + [u for u in [get_mirror_url(spec.url)] if u]
    if not any(_network_reachable(u) for u in hosts):
        log.warning("no network connection to %s: cannot download %s", urlparse(spec.url).hostname,
                    spec.archive_name)
        return None
    try:
        return Path(download_checkpoint(spec.url))
    except Exception as exc:  # noqa: BLE001 - any download failure ends in the same user message
        log.warning("download of %s failed: %s", spec.url, exc)
        return None


def missing_model_message(specs: list[ModelSpec], model_dir: Path | None = None) -> str:
    """What a user must do to get the given models onto this machine."""
    cache = rtmlib_cache_dir()
    where = f"{model_dir} (the folder you gave) or {cache}" if model_dir else str(cache)
    lines = ["detector model(s) not found on this computer and the download failed (no network?):"]
    for spec in specs:
        lines.append(f"  - {spec.onnx_name}\n    get it from {spec.url}")
    lines.append(f"Put each downloaded .zip (or the 'end2end.onnx' inside it, renamed to the name above) "
                 f"into {where}, or into any folder you then pass with --model-dir; then run again.")
    return "\n".join(lines)


def resolve_model(spec: ModelSpec, model_path: Path | str | None = None, model_dir: Path | str | None = None,
                  download: bool = True) -> Path:
    """Find one model's ONNX file.

    Args:
        spec: the model (rtmlib URL and input size).
        model_path: an ONNX file the user gives; used as is (an error if it does not exist).
        model_dir: a folder the user gives, searched for `spec.onnx_name` or rtmlib's zip.
        download: allow rtmlib's download when neither the given places nor the cache hold it.

    Returns:
        Path of an existing ONNX file.

    Raises:
        ModelNotFoundError: with the file name, the folder to put it in and the URL.
    """
    if model_path is not None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelNotFoundError(f"detector model file {model_path} does not exist")
        return model_path
    folders = ([Path(model_dir)] if model_dir is not None else []) + [rtmlib_cache_dir()]
    for folder in folders:
        found = _find_in(folder, spec)
        if found is not None:
            log.info("model %s found at %s", spec.onnx_name, found)
            return found
    if download:
        found = _download(spec)
        if found is not None:
            return found
    raise ModelNotFoundError(missing_model_message([spec], Path(model_dir) if model_dir else None))
