"""`mvcapture eval`: requirements checked before training, FORMATS.md clips for l3d (focal length estimated
from gt3d and kp2d), results written after each variant and `--resume`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mvcapture.cli import main
from mvcapture.core.normalize import focal_from_projection
from mvcapture.errors import MvcaptureError
from mvcapture.train.evaluate import run_eval
from tests.train_helpers import make_clip, tiny_weights, write_clips


def _formats_only(folder, **kw):
    """Clips with exactly the FORMATS.md keys (gt3d, no `focal_px`)."""
    write_clips(folder, **kw)
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as data:
            arrays = {k: data[k] for k in ("kp2d", "conf", "image_size", "fps", "gt3d")}
        np.savez(path, **arrays)
    return folder


def test_focal_length_from_gt3d_and_kp2d_is_the_projections():
    clip = make_clip(T=40, focal_px=1234.0, noise_px=1.0)
    focal = focal_from_projection(clip.kp2d, clip.conf, clip.gt3d, clip.image_size)
    np.testing.assert_allclose(focal, 1234.0, rtol=5e-3)
    clip.extras.clear()
    np.testing.assert_allclose(clip.focal_px(), focal)
    behind = make_clip(T=10)
    behind.gt3d[..., 2] *= -1
    behind.extras.clear()
    with pytest.raises(MvcaptureError, match="'gt3d' of view 0 does not project onto its 'kp2d'"):
        behind.focal_px("behind.npz")


def test_l3d_trains_on_clips_that_follow_formats_md(tmp_path):
    train = _formats_only(tmp_path / "train", n=2, T=80)
    test = _formats_only(tmp_path / "test", n=1, T=40, first_seed=10)
    payload = run_eval(train, test, model=str(tiny_weights(tmp_path / "w.pt")), variants=["l3d"], epochs=1,
                       batch_size=4)
    entry = payload["variants"]["l3d"]
    assert entry["best_epoch"] == 1 and np.isfinite(entry["mpjpe"])


def test_every_variants_requirements_are_checked_before_any_training(tmp_path):
    train = write_clips(tmp_path / "train", n=2, T=80)
    for path in sorted(train.glob("*.npz")):  # 2D only
        with np.load(path) as data:
            np.savez(path, **{k: data[k] for k in ("kp2d", "conf", "image_size", "fps")})
    test = write_clips(tmp_path / "test", n=1, T=40, first_seed=10)
    events = []
    out = tmp_path / "results.json"
    with pytest.raises(MvcaptureError, match=r"variant l3d needs key 'gt3d' in every training clip; .*clip00"
                                             r"\.npz has none \(and 1 more clip"):
        run_eval(train, test, model=str(tiny_weights(tmp_path / "w.pt")), variants=["baseline", "l2d", "l3d"],
                 epochs=1, batch_size=4, emit=lambda v, e: events.append((v, e)), out=out)
    assert events == [] and not out.exists()


def test_test_clips_without_gt3d_fail_before_training(tmp_path):
    train = write_clips(tmp_path / "train", n=2, T=80)
    test = write_clips(tmp_path / "test", n=1, T=40, first_seed=10)
    path = next(test.glob("*.npz"))
    with np.load(path) as data:
        np.savez(path, **{k: data[k] for k in ("kp2d", "conf", "image_size", "fps")})
    with pytest.raises(MvcaptureError, match=r"clip00\.npz: test clip has no key 'gt3d'"):
        run_eval(train, test, model=str(tiny_weights(tmp_path / "w.pt")), variants=["l2d"], epochs=1)


def test_results_written_after_each_variant_and_resume_continues(tmp_path, capsys):
    write_clips(tmp_path / "train", n=2, T=80)
    write_clips(tmp_path / "test", n=1, T=40, first_seed=10)
    weights = str(tiny_weights(tmp_path / "w.pt"))
    out = tmp_path / "results.json"

    class Killed(Exception):
        pass

    def kill_in_l2d(variant, event):
        if variant == "l2d" and event.get("event") == "step":
            raise Killed

    with pytest.raises(Killed):
        run_eval(tmp_path / "train", tmp_path / "test", model=weights, variants=["baseline", "l2d"], epochs=1,
                 batch_size=4, emit=kill_in_l2d, out=out)
    kept = json.loads(out.read_text())
    assert list(kept["variants"]) == ["baseline"] and kept["unfinished"] == ["l2d"]

    args = ["eval", "--train", str(tmp_path / "train"), "--test", str(tmp_path / "test"), "--out", str(out),
            "--model", weights, "--variants", "baseline", "l2d", "--epochs", "1", "--batch-size", "4"]
    assert main(args + ["--resume"]) == 0
    assert "baseline: kept from" in capsys.readouterr().out
    done = json.loads(out.read_text())
    assert list(done["variants"]) == ["baseline", "l2d"] and done["unfinished"] == []
    assert done["variants"]["baseline"] == kept["variants"]["baseline"]

    code = main([*args[:-4], "--epochs", "2", "--batch-size", "4", "--resume"])
    assert code == 2 and "made with other settings" in capsys.readouterr().err
