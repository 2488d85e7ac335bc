"""`mvcapture experiment --quick`: the README experiment end to end in miniature (the real run is not a test)."""

from __future__ import annotations

import json

from mvcapture.cli import main


def test_experiment_quick_end_to_end(shared_data, tmp_path):
    out, js = tmp_path / "exp", tmp_path / "exp.json"
    rc = main(["experiment", "--quick", "--out", str(out), "--json", str(js),
               "--bvh", str(shared_data / "mocap" / "cmu")])
    assert rc == 0
    payload = json.loads(js.read_text())
    assert payload == json.loads((out / "results.json").read_text())
    assert list(payload["variants"]) == ["baseline", "l2d", "l2d_con", "l2d_con_frame", "l3d", "l3d_con"]
    for r in payload["variants"].values():
        assert {"mpjpe", "pa_mpjpe", "n_mpjpe", "consistency", "epochs", "train_seconds"} <= set(r)
        assert r["mpjpe"] > 0 and r["pa_mpjpe"] > 0
    assert payload["variants"]["baseline"]["epochs"] == 0
    assert payload["variants"]["l2d"]["epochs"] == 1
    assert set(payload["lambda_sweep"]) == {"0.3", "1"}
    assert set(payload["angle_sweep"]) == {"45", "90"}
    assert payload["lambda_sweep"]["0.3"] == payload["variants"]["l2d_con"]   # reused, not retrained
    assert {"l2d_con_over_l2d_mpjpe", "l2d_con_over_baseline_mpjpe", "l3d_over_l2d_mpjpe"} <= set(payload["ratios"])
    assert payload["source"]["epochs"] == 1 and (out / "source_lifter.pt").is_file()
    # target-test clips are held out by clip and never among the target-train clips
    test = set(payload["data"]["target_test"]["files"])
    assert test and not test & set(payload["data"]["target_train"]["90"]["files"])
    assert all(f.split("_")[0] in payload["setup"]["source_subjects"] for f in payload["data"]["source"]["files"])
    md = (out / "results.md").read_text()
    assert "l2d_con / l2d MPJPE" in md and "λ_con sweep" in md


def test_experiment_from_a_given_source_lifter_skips_pretraining(shared_data, tmp_path):
    """--source-model (e.g. a MotionBERT checkpoint on a GPU machine): no pretraining, the given weights are
    the baseline, and the results say so."""
    import numpy as np
    import torch

    from mvcapture.io.clip import load_dataset
    from mvcapture.lifter import create_lifter, load_lifter, save_lifter
    from mvcapture.train.evaluate import evaluate_lifter
    from mvcapture.train.experiment import ExperimentConfig, run_experiment

    torch.manual_seed(3)
    weights = tmp_path / "given.pt"
    save_lifter(create_lifter("tiny"), weights, {"name": "given source"})
    cfg = ExperimentConfig.quick(bvh_dir=str(shared_data / "mocap" / "cmu"), source_model=str(weights),
                                 variants=("baseline", "l2d_con"), lambdas=(), angles=())
    payload = run_experiment(cfg, tmp_path / "out")
    assert payload["source"]["given"] and payload["source"]["weights"] == str(weights)
    assert not (tmp_path / "out" / "source_lifter.pt").exists()
    test_clips = load_dataset(tmp_path / "out" / "data" / "target_test", min_views=1)
    expected = evaluate_lifter(load_lifter(str(weights), device="cpu"), test_clips)["mpjpe"]
    np.testing.assert_allclose(payload["variants"]["baseline"]["mpjpe"], expected, rtol=1e-6)
    assert "Source lifter: given" in (tmp_path / "out" / "results.md").read_text()


def test_experiment_missing_bvh_is_a_clear_error(tmp_path, capsys):
    rc = main(["experiment", "--quick", "--out", str(tmp_path / "o"), "--bvh", str(tmp_path / "nope")])
    assert rc == 2
    assert "--bvh" in capsys.readouterr().err


def test_splits_keep_source_target_and_test_apart(shared_data):
    from mvcapture.train.experiment import SPLITS, ExperimentConfig, _bvh_files

    for name, split in SPLITS.items():
        source, train, test = _bvh_files(ExperimentConfig(split=name, bvh_dir=str(shared_data / "mocap" / "cmu")))
        subjects = {p.stem[:3] for p in source}
        assert subjects == set(split.source_subjects), name
        assert train and test and not {p.stem for p in train} & {p.stem for p in test}
        assert not subjects & {p.stem[:3] for p in train + test}, "target subjects are never in the source"
        assert {p.stem for p in test} == set(split.test_clips)


def test_experiment_killed_late_keeps_what_it_finished_and_resumes(shared_data, tmp_path):
    import pytest

    from mvcapture.train.experiment import ExperimentConfig, run_experiment

    class Killed(Exception):
        pass

    def kill_in_l2d(name, event):
        if name == "l2d" and event.get("event") == "step":
            raise Killed

    cfg = ExperimentConfig.quick(bvh_dir=str(shared_data / "mocap" / "cmu"), variants=("baseline", "l2d"),
                                 lambdas=(), angles=())
    out = tmp_path / "out"
    with pytest.raises(Killed):
        run_experiment(cfg, out, emit=kill_in_l2d)
    kept = json.loads((out / "eval_variants.json").read_text())
    assert list(kept["variants"]) == ["baseline"] and (out / "source.json").is_file()

    events = []
    payload = run_experiment(cfg, out, emit=lambda name, event: events.append((name, event["event"])),
                             resume=True)
    assert ("baseline", "skipped") in events and not any(name == "pretrain" for name, _ in events)
    assert list(payload["variants"]) == ["baseline", "l2d"]
    assert payload["variants"]["baseline"] == kept["variants"]["baseline"]
