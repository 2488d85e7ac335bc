"""The model store beside the lifter's weights: no import circle with training, earlier shipped defaults
loadable by name."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import torch

from mvcapture.errors import ModelNotFoundError
from mvcapture.lifter import load_lifter, store
from mvcapture.lifter.weights import default_weights_path

PACKAGE = Path(__file__).resolve().parent.parent / "mvcapture"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_lifter_package_imports_nothing_from_training():
    for path in (PACKAGE / "lifter").glob("*.py"):
        assert not any(n.startswith("mvcapture.train") for n in _imports(path)), path.name
    assert not any(n.startswith("mvcapture.lifter.weights") for n in _imports(PACKAGE / "lifter" / "store.py"))
    from mvcapture.train import store as old_name

    assert old_name.resolve_model is store.resolve_model and old_name.register_version is store.register_version


def test_earlier_default_stays_loadable_by_name(tmp_path, monkeypatch):
    lifter_dir = tmp_path / "lifter"
    lifter_dir.mkdir()
    shipped = default_weights_path()
    for suffix in (".pt", ".json"):
        shutil.copyfile(shipped.with_suffix(suffix), lifter_dir / f"default{suffix}")
        shutil.copyfile(shipped.with_suffix(suffix), lifter_dir / f"default-v1{suffix}")
    monkeypatch.setenv("MVCAPTURE_RESOURCES", str(tmp_path))
    assert [v.version for v in store.list_versions()] == ["default", "default-v1"]
    assert store.resolve_model("default-v1") == lifter_dir / "default-v1.pt"
    old, new = load_lifter("default-v1"), load_lifter("default")
    x = torch.randn(1, old.window, 17, 3)
    with torch.no_grad():
        torch.testing.assert_close(old.model(x), new.model(x))
    store.activate("default-v1")
    assert store.resolve_model("active") == lifter_dir / "default-v1.pt"
    with pytest.raises(ModelNotFoundError, match="no earlier shipped lifter 'default-v2'"):
        load_lifter("default-v2")
    (lifter_dir / "default.pt").unlink()
    with pytest.raises(ModelNotFoundError, match="default lifter weights are missing"):
        load_lifter("default")


def test_the_shipped_earlier_default_is_the_one_before():
    """Issue #17: the GPU-trained default replaced the CPU-trained one, which stays loadable as `default-v1`
    (its own weights, sha256-checked on load, its own card and metrics), and `default` names it as parent."""
    if not (default_weights_path().parent / "default-v1.pt").is_file():
        pytest.fail("resources/lifter/default-v1.pt is missing: the earlier default must stay loadable by name")
    old, new = load_lifter("default-v1", device="cpu"), load_lifter("default", device="cpu")
    assert old.card["version"] == "default-v1" and new.card["parent_version"] == "default-v1"
    assert old.card["sha256"] != new.card["sha256"]
    assert [s["stage"] for s in new.card["training_stages"]] == [s["stage"] for s in old.card["training_stages"]] + [5]
    x = torch.randn(1, old.window, 17, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (old.model(x) - new.model(x)).abs().max() > 1e-3
    assert [v.version for v in store.shipped_versions()] == ["default-v1"]
