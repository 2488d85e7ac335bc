import numpy as np
import pytest

from mvcapture.errors import InvalidClipError
from mvcapture.io.clip import MultiViewClip, load_clip, load_dataset


def _clip(V=2, T=10, gt=True):
    rng = np.random.default_rng(0)
    return MultiViewClip(
        kp2d=rng.uniform(0, 640, (V, T, 17, 2)).astype(np.float32),
        conf=rng.uniform(0, 1, (V, T, 17)).astype(np.float32),
        image_size=np.array([[640, 480]] * V, np.int32),
        fps=30.0,
        gt3d=rng.normal(size=(V, T, 17, 3)).astype(np.float32) if gt else None,
        name="demo",
    )


def test_round_trip(tmp_path):
    clip = _clip()
    clip.save(tmp_path / "a.npz")
    back = load_clip(tmp_path / "a.npz")
    np.testing.assert_array_equal(back.kp2d, clip.kp2d)
    np.testing.assert_array_equal(back.gt3d, clip.gt3d)
    assert back.fps == 30.0 and back.name == "demo"
    # readable with plain numpy, no pickle
    with np.load(tmp_path / "a.npz", allow_pickle=False) as d:
        assert d["kp2d"].shape == (2, 10, 17, 2)


def test_nan_where_conf_positive_is_rejected_with_file_and_key(tmp_path):
    clip = _clip()
    clip.kp2d[0, 3, 5] = np.nan
    clip.conf[0, 3, 5] = 0.0
    clip.save(tmp_path / "ok.npz")  # NaN with conf 0 is allowed
    clip.conf[0, 3, 5] = 0.5
    with pytest.raises(InvalidClipError, match="kp2d"):
        clip.save(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad.npz", kp2d=clip.kp2d, conf=clip.conf, image_size=clip.image_size, fps=30.0)
    with pytest.raises(InvalidClipError, match=r"bad\.npz.*kp2d"):
        load_clip(tmp_path / "bad.npz")


def test_min_views_and_frames(tmp_path):
    _clip(V=1).save(tmp_path / "one.npz")
    with pytest.raises(InvalidClipError, match="at least 2 views"):
        load_clip(tmp_path / "one.npz", min_views=2)
    with pytest.raises(InvalidClipError, match="at least 243 frames"):
        load_clip(tmp_path / "one.npz", min_frames=243)


def test_wrong_shape_and_missing_key(tmp_path):
    np.savez(tmp_path / "s.npz", kp2d=np.zeros((2, 5, 16, 2)), conf=np.zeros((2, 5, 17)),
             image_size=np.zeros((2, 2)), fps=30.0)
    with pytest.raises(InvalidClipError, match="'kp2d' must have shape"):
        load_clip(tmp_path / "s.npz")
    np.savez(tmp_path / "m.npz", kp2d=np.zeros((2, 5, 17, 2)))
    with pytest.raises(InvalidClipError, match="missing key 'conf'"):
        load_clip(tmp_path / "m.npz")


def test_dataset_dir(tmp_path):
    with pytest.raises(InvalidClipError, match="no .npz"):
        load_dataset(tmp_path)
    _clip().save(tmp_path / "b.npz")
    _clip().save(tmp_path / "a.npz")
    assert [c.name for c in load_dataset(tmp_path)] == ["demo", "demo"]


def _save_raw(path, **override):
    clip = _clip()
    arrays = {"kp2d": clip.kp2d, "conf": clip.conf, "image_size": clip.image_size, "fps": 30.0, "gt3d": clip.gt3d}
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize("key, value, match", [
    ("image_size", np.zeros((2, 2), np.int32), r"'image_size' must hold whole width, height in pixels, each 1 to"),
    ("image_size", np.array([[640, 480], [10**9, 480]]), r"'image_size' .* each 1 to 65536"),
    ("image_size", np.array([[640.5, 480], [640, 480]]), r"'image_size' must hold whole"),
    ("image_size", np.array([[np.nan, 480], [640, 480]]), r"'image_size' must hold whole"),
    ("image_size", np.array([["a", "b"], ["c", "d"]]), r"'image_size' holds <U1 data; expected int32 \(V, 2\)"),
    ("kp2d", np.full((2, 10, 17, 2), 1e30, np.float32), r"'kp2d' of view 0 has coordinates up to 1e\+30 px, beyond 100x"),
    ("kp2d", np.full((2, 10, 17, 2), "x"), r"'kp2d' holds <U1 data; expected float32 \(V, T, 17, 2\) pixels"),
    ("conf", np.zeros((2, 10, 17), np.float32), r"view 0 has no usable keypoints \(key 'conf' is 0"),
    ("fps", np.array([30.0, 25.0]), r"'fps' has shape \(2,\); expected one positive number"),
    ("fps", np.array("thirty"), r"'fps' holds <U6 data; expected one positive number"),
    ("gt3d", np.full((2, 10, 17, 3), 1e6, np.float32), r"'gt3d' has values up to 1e\+06; expected metres"),
])
def test_malformed_values_name_file_key_and_expectation(tmp_path, key, value, match):
    path = _save_raw(tmp_path / "bad.npz", **{key: value})
    with pytest.raises(InvalidClipError, match=r"bad\.npz: .*" + match):
        load_clip(path)


def test_one_view_without_keypoints_is_rejected_for_lifting(tmp_path):
    conf = _clip().conf.copy()
    conf[1] = 0.0
    with pytest.raises(InvalidClipError, match="view 1 has no usable keypoints"):
        load_clip(_save_raw(tmp_path / "bad.npz", conf=conf))
