"""The shipped default lifter lifts a held-out subject's clip plausibly (via `mvcapture lift`)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from mvcapture.core.metrics import mpjpe
from mvcapture.core.normalize import norm25d_to_camera
from mvcapture.lifter import create_lifter, save_lifter
from mvcapture.lifter.weights import default_weights_path

# MPJPE bound (mm) on a held-out walk: the shipped lifter measures 59.4 mm on this clip (62.7 mm over all of
# subject 007, model card; default-v1 60 / 67.0 mm), an untrained network of the same config ~417 mm.
PLAUSIBLE_MPJPE_MM = 90.0


@pytest.fixture(scope="module")
def held_out_clip(tmp_path_factory, shared_data):
    from mvcapture.data.synth import synthesize_clip
    from mvcapture.io.bvh import bvh_to_h36m

    pose, fps = bvh_to_h36m(shared_data / "mocap" / "cmu" / "007_01.bvh", fps=30)
    clip = synthesize_clip(pose, fps, name="007_01_test", seed=123, views=2, angle_deg=90.0)
    path = tmp_path_factory.mktemp("clip") / "007_01.npz"
    clip.save(path)
    return path, clip


def _lift_mpjpe(clip_path, clip, model, out):
    done = subprocess.run([sys.executable, "-m", "mvcapture", "lift", str(clip_path), "--model", str(model),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as pred:
        pose_norm = pred["pose3d_norm"].astype(np.float64)
    errors = []
    for v in range(clip.num_views):
        pose_m = norm25d_to_camera(pose_norm[v], float(clip.extras["focal_px"][v]),
                                   clip.image_size[v].astype(np.float64), clip.gt3d[v, :, 0].astype(np.float64))
        errors.append(mpjpe(pose_m, clip.gt3d[v].astype(np.float64)))
    return float(np.mean(errors))


def test_shipped_lifter_is_plausible_on_a_held_out_subject(held_out_clip, tmp_path):
    if not default_weights_path().is_file():
        pytest.fail(f"the default lifter is missing: {default_weights_path()}")
    clip_path, clip = held_out_clip
    trained = _lift_mpjpe(clip_path, clip, "default", tmp_path / "trained.npz")
    torch.manual_seed(0)
    untrained_path = tmp_path / "untrained.pt"
    save_lifter(create_lifter("small"), untrained_path, {"name": "untrained"})
    untrained = _lift_mpjpe(clip_path, clip, untrained_path, tmp_path / "untrained.npz")
    print(f"held-out 007_01: shipped {trained:.1f} mm, untrained {untrained:.1f} mm")
    assert trained < PLAUSIBLE_MPJPE_MM < untrained
