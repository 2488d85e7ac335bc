import numpy as np
import pytest

from mvcapture.core import skeleton as sk


def _coco_pose():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 17, 2)) * 100 + 500


def test_coco_to_h36m_direct_and_derived_joints():
    coco = _coco_pose()
    conf = np.random.default_rng(1).uniform(0.1, 1, size=(4, 17))
    h36m, hconf = sk.coco_to_h36m(coco, conf)
    # independent reference by joint names
    name = {n: i for i, n in enumerate(sk.COCO17_JOINTS)}
    for hi, hname in enumerate(sk.H36M17_JOINTS):
        if hname in name:
            np.testing.assert_allclose(h36m[:, hi], coco[:, name[hname]])
            np.testing.assert_allclose(hconf[:, hi], conf[:, name[hname]])
    np.testing.assert_allclose(h36m[:, 9], coco[:, name["nose"]])
    pelvis = (coco[:, name["l_hip"]] + coco[:, name["r_hip"]]) / 2
    thorax = (coco[:, name["l_shoulder"]] + coco[:, name["r_shoulder"]]) / 2
    np.testing.assert_allclose(h36m[:, 0], pelvis)
    np.testing.assert_allclose(h36m[:, 8], thorax)
    np.testing.assert_allclose(h36m[:, 7], (pelvis + thorax) / 2)
    np.testing.assert_allclose(hconf[:, 0], np.minimum(conf[:, 11], conf[:, 12]))
    np.testing.assert_allclose(hconf[:, 7], np.min(conf[:, [5, 6, 11, 12]], axis=1))


def test_head_top_is_above_ears_for_upright_person():
    # upright person in image coordinates (y down): ears above shoulders
    coco = np.zeros((17, 2))
    coco[[3, 4]] = [[90, 100], [110, 100]]  # ears at y=100
    coco[[5, 6]] = [[80, 160], [120, 160]]  # shoulders at y=160
    h36m, _ = sk.coco_to_h36m(coco)
    assert h36m[10, 1] < 100  # head top higher in the image than the ears
    assert h36m[10, 0] == pytest.approx(100)


def test_3d_mapping_and_flip_involution():
    pts = np.random.default_rng(2).normal(size=(3, 5, 17, 3))
    h36m, conf = sk.coco_to_h36m(pts)
    assert conf is None and h36m.shape == pts.shape
    flipped = sk.flip_h36m(h36m)
    np.testing.assert_allclose(sk.flip_h36m(flipped), h36m)
    # left hip of the flipped pose is the mirrored right hip of the original
    np.testing.assert_allclose(flipped[..., 4, 0], -h36m[..., 1, 0])
    np.testing.assert_allclose(flipped[..., 4, 1:], h36m[..., 1, 1:])


def test_flip_pairs_are_left_right_names():
    for l, r in zip(sk.H36M17_LEFT, sk.H36M17_RIGHT):
        assert sk.H36M17_JOINTS[l].replace("l_", "r_") == sk.H36M17_JOINTS[r]
    for l, r in zip(sk.COCO17_LEFT, sk.COCO17_RIGHT):
        assert sk.COCO17_JOINTS[l].replace("l_", "r_") == sk.COCO17_JOINTS[r]


def test_bones_form_a_tree_rooted_at_pelvis():
    assert len(sk.H36M17_BONES) == 16
    assert sk.H36M17_PARENTS[0] == -1 and (sk.H36M17_PARENTS[1:] >= 0).all()


@pytest.mark.parametrize("shape", [(17,), (5, 16, 2), (5, 17, 4)])
def test_bad_shapes_raise_value_error_naming_argument(shape):
    with pytest.raises(ValueError, match=r"points must have shape \(\.\.\., 17, 2\) or \(\.\.\., 17, 3\)"):
        sk.coco_to_h36m(np.zeros(shape))


@pytest.mark.parametrize("points, message", [
    (np.zeros((0, 17, 2)), "points must not be empty"),
    (np.full((3, 17, 2), np.nan), "points must hold finite numbers"),
    (np.full((3, 17, 3), np.inf), "points must hold finite numbers"),
])
def test_empty_or_nan_points_raise_value_error(points, message):
    with pytest.raises(ValueError, match=message):
        sk.coco_to_h36m(points)


def test_conf_shape_mismatch():
    with pytest.raises(ValueError, match="conf"):
        sk.coco_to_h36m(np.zeros((2, 17, 2)), np.zeros((3, 17)))


def test_torso_joint_constants_name_left_then_right():
    from mvcapture.core import skeleton as sk

    for names, shoulders, hips in ((sk.H36M17_JOINTS, sk.H36M17_SHOULDERS, sk.H36M17_HIPS),
                                   (sk.COCO17_JOINTS, sk.COCO17_SHOULDERS, sk.COCO17_HIPS)):
        assert [names[j] for j in shoulders] == ["l_shoulder", "r_shoulder"]
        assert [names[j] for j in hips] == ["l_hip", "r_hip"]
