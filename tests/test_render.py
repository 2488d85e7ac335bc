import numpy as np

from mvcapture.io.render import VIEW_COLOURS_BGR, draw_skeleton_2d, render_skeletons_3d


def _pose():
    rng = np.random.default_rng(0)
    p = rng.normal(scale=0.25, size=(17, 3))
    return p - p[0]


def test_3d_render_shows_each_skeleton_in_its_colour():
    img = render_skeletons_3d(np.stack([_pose(), _pose() + [0.3, 0, 0]]))
    assert img.shape == (480, 480, 3)
    for colour in VIEW_COLOURS_BGR[:2]:
        assert np.all(img == colour, axis=-1).sum() > 50


def test_2d_overlay_skips_missing_joints():
    img = np.zeros((100, 100, 3), np.uint8)
    kp = np.full((17, 2), 50.0)
    kp[1] = [10, 10]
    conf = np.zeros(17)
    draw_skeleton_2d(img, kp, conf)
    assert img.sum() == 0  # nothing confident → nothing drawn
    conf[:] = 1
    draw_skeleton_2d(img, kp, conf, colour=(0, 255, 0))
    assert img[10, 10].sum() > 0 and img[50, 50].sum() > 0
