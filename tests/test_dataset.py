"""Training windows of multi-view clips and the subject-wise split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvcapture.core.normalize import camera_to_norm25d, norm25d_to_camera, normalize_kp2d
from mvcapture.core.skeleton import H36M17_FLIP_PERMUTATION, flip_h36m
from mvcapture.data.dataset import WindowDataset, split_by_subject, subject_of
from mvcapture.data.synth import synthesize_clip
from mvcapture.errors import MvcaptureError
from mvcapture.io.bvh import bvh_to_h36m
from mvcapture.io.clip import MultiViewClip


@pytest.fixture(scope="module")
def clips(shared_data):
    cmu = shared_data / "mocap" / "cmu"
    if not cmu.is_dir():
        pytest.skip("no CMU clips")
    out = []
    for stem in ("002_03", "003_01", "007_02"):
        pose, fps = bvh_to_h36m(cmu / f"{stem}.bvh", fps=30)
        out.append(synthesize_clip(pose, fps, name=f"{stem}_r0", seed=0, views=2))
    return out


def test_windows_shapes_and_values(clips):
    ds = WindowDataset(clips, window=27, stride=10)
    T = [c.num_frames for c in clips]
    assert len(ds) == sum(len(range(0, t - 27 + 1, 10)) + ((t - 27) % 10 != 0) for t in T)
    item = ds[len(ds) - 1]                                    # the last window ends with its clip
    c = clips[int(item["clip"])]
    start = int(item["start"])
    assert start + 27 == c.num_frames
    shapes = {k: tuple(v.shape) for k, v in item.items()}
    assert shapes["input"] == (2, 27, 17, 3) and shapes["target"] == (2, 27, 17, 3)
    assert shapes["kp2d_norm"] == (2, 27, 17, 2) and shapes["conf"] == (2, 27, 17) and shapes["root_m"] == (2, 27, 3)
    assert shapes["focal_px"] == (2,) and shapes["image_size"] == (2, 2) and shapes["valid"] == (27,)
    assert all(v.dtype == torch.float32 for k, v in item.items() if k in ("input", "target", "gt3d", "conf"))
    sl = slice(start, start + 27)
    expect_in = normalize_kp2d(c.kp2d[:, sl], c.conf[:, sl], c.image_size.astype(np.float32))
    np.testing.assert_allclose(item["input"].numpy(), expect_in, atol=1e-6)
    expect_target = camera_to_norm25d(c.gt3d[:, sl].astype(np.float64), c.extras["focal_px"], c.image_size)
    np.testing.assert_allclose(item["target"].numpy(), expect_target, atol=1e-5)
    np.testing.assert_allclose(item["gt3d"].numpy(), c.gt3d[:, sl] - c.gt3d[:, sl, :1], atol=1e-6)
    back = norm25d_to_camera(item["target"].numpy(), item["focal_px"].numpy(), item["image_size"].numpy(),
                             item["root_m"].numpy())
    np.testing.assert_allclose(back, item["gt3d"].numpy(), atol=1e-4)
    assert bool(item["has_target"]) and bool(item["valid"].all())
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["input"].shape == (4, 2, 27, 17, 3)


def test_short_clips_padded_or_skipped(clips):
    longest = max(c.num_frames for c in clips)
    ds = WindowDataset(clips, window=longest + 5)
    assert len(ds) == len(clips)
    item = ds[0]
    T = clips[0].num_frames
    assert item["valid"][:T].all() and not item["valid"][T:].any()
    assert torch.equal(item["input"][:, T:], item["input"][:, T - 1:T].expand(-1, longest + 5 - T, -1, -1))
    assert len(WindowDataset(clips, window=longest + 5, pad_short=False)) == 0


def test_flip_mirrors_all_views_consistently(clips):
    torch.manual_seed(0)
    plain = WindowDataset(clips[:1], window=16, stride=16)
    flipped = WindowDataset(clips[:1], window=16, stride=16, flip=True)
    seen = set()
    for i in range(len(flipped)):
        a, b = plain[i], flipped[i]
        seen.add(bool(b["flipped"]))
        if not b["flipped"]:
            assert torch.equal(a["input"], b["input"])
            continue
        np.testing.assert_allclose(b["input"][..., :2].numpy(), flip_h36m(a["input"][..., :2].numpy()))
        np.testing.assert_allclose(b["conf"].numpy(), a["conf"].numpy()[..., H36M17_FLIP_PERMUTATION])
        np.testing.assert_allclose(b["target"].numpy(), flip_h36m(a["target"].numpy()), atol=1e-6)
        back = norm25d_to_camera(b["target"].numpy(), b["focal_px"].numpy(), b["image_size"].numpy(),
                                 b["root_m"].numpy())
        np.testing.assert_allclose(back, b["gt3d"].numpy(), atol=1e-4)
    assert seen == {True, False}


def test_clip_without_ground_truth():
    V, T = 2, 20
    clip = MultiViewClip(kp2d=np.full((V, T, 17, 2), 100.0, np.float32), conf=np.ones((V, T, 17), np.float32),
                         image_size=np.array([[640, 480]] * V, np.int32), fps=30.0, name="real")
    item = WindowDataset([clip], window=10)[0]
    assert not item["has_gt3d"] and not item["has_target"] and float(item["focal_px"].abs().sum()) == 0
    assert item["target"].shape == (V, 10, 17, 3)


def test_split_by_subject(clips, tmp_path):
    names = [f"{s}_{t:02d}_r{r}" for s in ("002", "003", "005", "007") for t in range(1, 4) for r in range(2)]
    split = split_by_subject(names)
    subjects = {k: {subject_of(n) for n in v} for k, v in split.items()}
    assert subjects == {"train": {"002", "005"}, "val": {"003"}, "test": {"007"}}
    assert sorted(sum(split.values(), [])) == sorted(names)
    custom = split_by_subject(names, test_subjects=["002"], val_subjects=[])
    assert {subject_of(n) for n in custom["test"]} == {"002"} and not custom["val"]
    assert not {subject_of(n) for n in custom["train"]} & {"002"}
    with pytest.raises(MvcaptureError):
        split_by_subject(names, test_subjects=["002"], val_subjects=["002"])
    for c in clips:
        c.save(tmp_path / f"{c.name}.npz")
    ds = WindowDataset(tmp_path, window=9)
    assert ds.names == sorted(c.name for c in clips) and len(ds) > 0
