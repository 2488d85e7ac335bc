"""Lifter weights: our file + model card round trip, MotionBERT checkpoints, safe loading, clear errors."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from mvcapture.errors import ModelNotFoundError, MvcaptureError
from mvcapture.lifter import create_lifter, load_lifter, read_card, save_lifter
from mvcapture.lifter.weights import card_path, load_dstformer


def _windows(frames=27, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-1, 1, (batch, frames, 17, 2)), rng.uniform(0.2, 1, (batch, frames, 17, 1))],
                          axis=-1).astype(np.float32)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return create_lifter("tiny").eval()


def test_save_and_load_round_trip_with_model_card(tmp_path, tiny_model):
    path = tmp_path / "v1" / "weights.pt"
    card = save_lifter(tiny_model, path, {"name": "coach-tuned", "version": "v1", "parent_version": "default",
                                          "epochs": 3, "metrics": {"h36m-val": {"mpjpe": 50.0}},
                                          "training_data": [{"source": "synthetic", "license": "CC0"}],
                                          "note": "kept"})
    assert card_path(path) == tmp_path / "v1" / "weights.json"
    on_disk = json.loads(card_path(path).read_text())
    assert on_disk == card == read_card(path)
    assert on_disk["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert on_disk["architecture"]["config_name"] == "tiny"
    assert on_disk["architecture"]["parameters"] == sum(p.numel() for p in tiny_model.parameters())
    assert on_disk["weights_file"] == "weights.pt" and on_disk["note"] == "kept" and on_disk["date"]
    for field in ("name", "version", "parent_version", "architecture", "training_data", "losses", "epochs",
                  "metrics", "date", "sha256"):
        assert field in on_disk
    # a file path and the model directory both resolve; outputs are identical
    for spec in (path, tmp_path / "v1"):
        lifter = load_lifter(spec, device="cpu")
        assert lifter.config_name == "tiny" and lifter.name == "coach-tuned@v1"
        x = _windows()
        with torch.inference_mode():
            expected = tiny_model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(lifter.lift_windows(x), expected - expected[..., :1, :], atol=1e-6)


def test_card_sha256_mismatch_is_an_error(tmp_path, tiny_model):
    path = tmp_path / "w.pt"
    save_lifter(tiny_model, path, {"name": "w"})
    save_lifter(create_lifter("tiny"), tmp_path / "other.pt")
    path.write_bytes((tmp_path / "other.pt").read_bytes())
    with pytest.raises(MvcaptureError, match="sha256"):
        load_lifter(path)


def test_motionbert_checkpoint_file_loads(tmp_path, tiny_model):
    checkpoint = {"model_pos": {f"module.{k}": v for k, v in tiny_model.state_dict().items()},
                  "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]},
                  "epoch": 7, "lr": 1.9e-4, "min_loss": 41.5}
    path = tmp_path / "best_epoch.bin"
    torch.save(checkpoint, path)
    lifter = load_lifter(path, device="cpu", config="tiny")
    assert lifter.config_name == "tiny" and lifter.card["name"] == "best_epoch"
    x = _windows()
    with torch.inference_mode():
        expected = tiny_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(lifter.lift_windows(x), expected - expected[..., :1, :], atol=1e-6)
    # without a config the shapes give everything but the head count (MotionBERT's 8)
    inferred, _ = load_dstformer(path)
    assert inferred.config.dim_feat == 32 and inferred.config.depth == 2 and inferred.config.num_heads == 8


class _NotWeights:
    pass


def test_loading_is_weights_only(tmp_path, tiny_model):
    path = tmp_path / "pickled.pt"
    torch.save({"model_pos": tiny_model.state_dict(), "extra": _NotWeights()}, path)
    with pytest.raises(MvcaptureError, match="never unpickled for safety.*_NotWeights"):
        load_lifter(path)


def test_partial_file_error_lists_keys(tmp_path, tiny_model):
    state = tiny_model.state_dict()
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "partial.pt"
    torch.save({"model_pos": state}, path)
    with pytest.raises(MvcaptureError) as err:
        load_lifter(path, config="tiny")
    assert "missing keys (1): head.bias" in str(err.value)
    assert "unexpected keys (1): extra.weight" in str(err.value)
    torch.save({"epoch": 3}, path)
    with pytest.raises(MvcaptureError, match="no model weights"):
        load_lifter(path)


def test_missing_default_and_missing_paths_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("MVCAPTURE_RESOURCES", str(tmp_path / "resources"))
    with pytest.raises(ModelNotFoundError) as err:
        load_lifter("default")
    assert "default lifter weights are missing" in str(err.value)
    assert str(tmp_path / "resources" / "lifter" / "default.pt") in str(err.value)
    assert "--model" in str(err.value)
    with pytest.raises(ModelNotFoundError, match="no lifter weights"):
        load_lifter(tmp_path / "nope.pt")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ModelNotFoundError, match="weights.pt"):
        load_lifter(tmp_path / "empty_dir")


def test_default_resolves_from_resources(tmp_path, monkeypatch, tiny_model):
    monkeypatch.setenv("MVCAPTURE_RESOURCES", str(tmp_path))
    save_lifter(tiny_model, tmp_path / "lifter" / "default.pt", {"name": "default", "version": "1"})
    lifter = load_lifter("default", device="cpu")
    assert lifter.name == "default@1" and lifter.card["architecture"]["config_name"] == "tiny"


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not weights\n")
    with pytest.raises(MvcaptureError, match="not a readable weights file"):
        load_lifter(path)
