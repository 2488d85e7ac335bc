"""DSTformer: MotionBERT-compatible parameter names and shapes, strict loading, SDPA vs reference attention."""

from __future__ import annotations

import json

import pytest
import torch

from mvcapture.errors import MvcaptureError
from mvcapture.lifter.dstformer import CONFIGS, DSTformer, count_parameters, create_lifter
from mvcapture.lifter.weights import extract_state_dict, infer_config, load_state_dict_strict


@pytest.fixture(scope="module")
def motionbert_shapes(shared_data):
    return json.loads((shared_data / "motionbert_full_state_dict_shapes.json").read_text())


def _meta_state_dict(shapes: dict) -> dict:
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


def test_full_has_motionbert_names_shapes_and_parameter_count(motionbert_shapes):
    with torch.device("meta"):
        full, lite = create_lifter("full"), create_lifter("lite")
    state = full.state_dict()
    assert list(state) == list(motionbert_shapes)
    assert {k: list(v.shape) for k, v in state.items()} == motionbert_shapes
    assert count_parameters(full) == 42_466_317
    assert count_parameters(lite) == 16_001_549


@pytest.mark.parametrize("wrapping", ["plain", "module_prefix", "model_pos"])
def test_motionbert_state_dict_loads_strictly(motionbert_shapes, wrapping):
    state = _meta_state_dict(motionbert_shapes)
    if wrapping != "plain":
        state = {f"module.{k}": v for k, v in state.items()}
    obj = {"model_pos": state, "epoch": 60, "lr": 1e-5} if wrapping == "model_pos" else state
    state_dict, config = extract_state_dict(obj)
    assert config is None
    inferred = infer_config(state_dict)
    assert inferred == CONFIGS["full"]
    with torch.device("meta"):
        model = DSTformer(inferred)
    assert model.config_name == "full"
    load_state_dict_strict(model, state_dict)


def test_partial_or_foreign_state_dict_error_lists_keys(motionbert_shapes):
    state = _meta_state_dict(motionbert_shapes)
    del state["head.weight"], state["blocks_ts.4.mlp_t.fc2.bias"]
    state["decoder.weight"] = torch.empty(3, device="meta")
    state["pos_embed"] = torch.empty(1, 16, 512, device="meta")
    with torch.device("meta"):
        model = create_lifter("full")
    with pytest.raises(MvcaptureError) as err:
        load_state_dict_strict(model, state, "ckpt.bin")
    message = str(err.value)
    for needle in ("ckpt.bin", "missing keys (2)", "head.weight", "blocks_ts.4.mlp_t.fc2.bias",
                   "unexpected keys (1)", "decoder.weight", "wrong shapes (1)", "pos_embed"):
        assert needle in message


def test_infer_config_rejects_non_dstformer():
    with pytest.raises(MvcaptureError, match="not a DSTformer checkpoint"):
        infer_config({"conv.weight": torch.zeros(1)}, "x.pt")


@pytest.mark.parametrize("frames", [27, 10])
def test_output_shape(frames):
    torch.manual_seed(0)
    model = create_lifter("tiny").eval()
    with torch.inference_mode():
        y = model(torch.randn(2, frames, 17, 3))
    assert y.shape == (2, frames, 17, 3)
    with pytest.raises(ValueError, match="maxlen"):
        model(torch.randn(1, 28, 17, 3))


@pytest.mark.parametrize("name,overrides",
                         [("tiny", {}), ("small", {"maxlen": 20}), ("lite", {"depth": 1, "maxlen": 12})])
def test_sdpa_matches_reference_attention(name, overrides):
    torch.manual_seed(0)
    model = create_lifter(name, **overrides).eval()
    with torch.no_grad():  # random weights, non-trivial attention patterns
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, model.maxlen, 17, 3)
    with torch.inference_mode():
        model.attention = "sdpa"
        fused = model(x)
        model.attention = "reference"
        reference = model(x)
    assert model.attention == "reference"
    torch.testing.assert_close(fused, reference, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        model.attention = "flash"


def test_create_lifter_overrides_and_unknown_name():
    model = create_lifter("tiny", depth=1)
    assert model.config.depth == 1 and model.config_name == "custom"
    assert create_lifter("tiny").config_name == "tiny"
    with pytest.raises(ValueError, match="unknown lifter config"):
        create_lifter("huge")
