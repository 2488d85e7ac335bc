"""Model cards travel with weights files: `<weights>.json` beside `<weights>.pt`, with the file's sha256.

Torch-free, so the model store and the CLI can read cards without importing torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def card_path(weights_path: Path | str) -> Path:
    """The model card of a weights file: same name with `.json` (`default.pt` → `default.json`)."""
    return Path(weights_path).with_suffix(".json")


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
