"""`mvcapture lift` and `mvcapture bench lifter` end to end on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mvcapture.cli import main
from mvcapture.io.clip import MultiViewClip
from mvcapture.lifter import create_lifter, lift_file, save_lifter


@pytest.fixture
def clip_and_weights(tmp_path):
    rng = np.random.default_rng(0)
    V, T = 2, 40
    clip = MultiViewClip(kp2d=rng.uniform(100, 500, (V, T, 17, 2)).astype(np.float32),
                         conf=rng.uniform(0.5, 1, (V, T, 17)).astype(np.float32),
                         image_size=np.array([[640, 480], [640, 480]], np.int32), fps=30.0, name="walk",
                         extras={"focal_px": np.array([800.0, 900.0])})
    clip.save(tmp_path / "walk.npz")
    torch.manual_seed(0)
    save_lifter(create_lifter("tiny"), tmp_path / "tiny.pt", {"name": "tiny-test", "version": "0"})
    return tmp_path / "walk.npz", tmp_path / "tiny.pt"


def test_lift_command_writes_per_view_predictions(clip_and_weights, tmp_path, capsys):
    clip_path, weights = clip_and_weights
    out, report = tmp_path / "out.npz", tmp_path / "lift.json"
    assert main(["lift", str(clip_path), "--model", str(weights), "--out", str(out), "--flip", "--device", "cpu",
                 "--json", str(report)]) == 0
    with np.load(out, allow_pickle=False) as data:
        assert data["pose3d_norm"].shape == data["pose3d_m"].shape == (2, 40, 17, 3)
        assert str(data["model"]) == "tiny-test@0" and str(data["metres_method"]) == "focal+height"
        assert np.all(data["pose3d_m"][:, :, 0] == 0)
    summary = json.loads(report.read_text())
    assert summary["views"] == 2 and summary["frames"] == 40 and summary["flip"] is True
    assert summary["precision"] == "fp32" and summary["compiled"] is False
    assert "walk.npz" in capsys.readouterr().out
    # the Python API writes the same predictions (default output beside the clip)
    api = lift_file(clip_path, model=str(weights), flip=True, device="cpu")
    with np.load(api["out"]) as a, np.load(out) as b:
        np.testing.assert_allclose(a["pose3d_norm"], b["pose3d_norm"], atol=1e-6)
    assert api["out"].endswith("walk.lift.npz")


@pytest.mark.slow  # torch.compile builds C++ kernels first: about 30 s on 2 cores
def test_lift_command_compiled_matches_eager(clip_and_weights, tmp_path):
    """`--compile` (torch.compile, inductor's CPU code here) gives the eager predictions."""
    clip_path, weights = clip_and_weights
    outs = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        outs[name] = tmp_path / f"{name}.npz"
        report = tmp_path / f"{name}.json"
        assert main(["lift", str(clip_path), "--model", str(weights), "--out", str(outs[name]), "--device", "cpu",
                     "--json", str(report), *extra]) == 0
        assert json.loads(report.read_text())["compiled"] is (name == "compiled")
    with np.load(outs["eager"]) as a, np.load(outs["compiled"]) as b:
        np.testing.assert_allclose(b["pose3d_norm"], a["pose3d_norm"], atol=1e-5)


def test_lift_without_default_weights_explains(clip_and_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MVCAPTURE_RESOURCES", str(tmp_path / "no_resources"))
    assert main(["lift", str(clip_and_weights[0])]) == 2
    assert "default lifter weights are missing" in capsys.readouterr().err


def test_bench_lifter_reports_full_parameter_count(tmp_path, capsys):
    report = tmp_path / "bench.json"
    assert main(["bench", "lifter", "--configs", "tiny", "--repeats", "1", "--batch", "2",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "42,466,317" in out and "OK" in out
    result = json.loads(report.read_text())
    assert result["full_parameters"] == 42_466_317 and result["full_parameters_match_motionbert"]
    (tiny,) = result["results"]
    assert tiny["config"] == "tiny" and tiny["optimized"]["clips_per_s"] > 0 and tiny["reference"]["live_step_ms"] > 0


def test_live_step_bar_judged_on_one_core_only():
    from mvcapture.bench.lifter import LIVE_STEP_BAR_MS, live_step_check

    def result(config, ms, device="cpu"):
        return {"config": config, "device": device, "optimized": {"live_step_ms": ms}}

    assert live_step_check([result("tiny", 5.0)], 1) is None            # the live config (small) not benchmarked
    assert live_step_check([result("small", LIVE_STEP_BAR_MS - 1)], 1)["verdict"] == "met"
    missed = live_step_check([result("tiny", 1.0), result("small", LIVE_STEP_BAR_MS + 1)], 1)
    assert missed["verdict"] == "MISSED" and missed["config"] == "small" and "MISSED" in missed["message"]
    assert live_step_check([result("small", 5.0)], 2)["verdict"].startswith("not judged")
    assert live_step_check([result("small", 5.0, "cuda:0")], 1)["verdict"].startswith("not judged")
