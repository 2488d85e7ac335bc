"""Alignment through real media files: two videos cut from one rendered scene (a skeleton acting, with claps in
its sound) at a known, fractional-frame offset, encoded with picture and sound, imported into a session (frame
times from the files' presentation times, audio decoded from the files), then aligned by sound (≤ 1 ms) and by
the motion of keypoints found in the decoded pictures (≤ 0.25 frame)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mvcapture.io.video import VideoWriter, iter_frames
from mvcapture.session import Session
from mvcapture.sync import RecordingSignals, estimate_audio_offset, estimate_offset
from mvcapture.sync.synthetic import SyntheticScene, true_sync

SIZE = (480, 360)
FPS = 30.0
# The joints drawn, each as a disc of its own colour: fully saturated colours, told apart by chromaticity (the
# colour divided by its brightest channel), which the discs' anti-aliased, compressed edges keep.
# Shoulders and hips are needed too (the motion signal is scaled by the body's size).
MARKERS = {0: (128, 255, 255),                                                          # nose
           5: (255, 0, 128), 6: (128, 0, 255), 11: (0, 128, 255), 12: (128, 255, 0),    # shoulders, hips
           7: (255, 0, 0), 8: (0, 255, 0), 9: (0, 0, 255), 10: (255, 255, 0),          # elbows, wrists
           13: (255, 0, 255), 14: (0, 255, 255), 15: (0, 255, 128), 16: (255, 128, 0)}  # knees, ankles
SUBPIXEL = 4  # cv2 drawing with 1/16-pixel centres
DURATION_S = 20.0


def _render(path, scene: SyntheticScene, yaw_deg: float, start_s: float, duration_s: float, rate: int, seed: int):
    """The scene filmed from `yaw_deg`: each marked joint a small disc in its colour, and the scene's sound."""
    view = scene.record_view(yaw_deg, FPS, start_s, duration_s, seed=seed, noise_px=0.0, image_size=SIZE,
                             focal_px=300.0)
    with VideoWriter(path, *SIZE, FPS, pixel_format="rgb24", audio_rate=rate, crf=8) as writer:
        for kp in view["kp2d_px"]:
            image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
            for j, colour in MARKERS.items():
                centre = (int(round(kp[j, 0] * 2 ** SUBPIXEL)), int(round(kp[j, 1] * 2 ** SUBPIXEL)))
                cv2.circle(image, centre, 3 * 2 ** SUBPIXEL, colour, -1, cv2.LINE_AA, SUBPIXEL)
            writer.write(image)
        writer.write_audio(scene.record_audio(rate, start_s, duration_s, seed=seed))


def _find_joints(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(17, 2) px and (17,) confidence: for each marker, the brightness-weighted centroid of the largest
    blob of its chromaticity (1 where found; 0 for unmarked joints and for markers hidden behind another)."""
    rgb = image.astype(np.float32)
    brightness = rgb.max(axis=-1)
    ys, xs = np.nonzero(brightness > 40.0)
    chroma = rgb[ys, xs] / brightness[ys, xs, None]
    palette = np.array(list(MARKERS.values()), np.float32) / 255.0
    distance = np.linalg.norm(chroma[:, None, :] - palette[None], axis=-1)
    nearest, close = distance.argmin(axis=1), distance.min(axis=1) < 0.25
    kp, conf = np.zeros((17, 2), np.float32), np.zeros(17, np.float32)
    for m, j in enumerate(MARKERS):
        mine = close & (nearest == m)
        if mine.sum() < 15:  # a disc is ~28 px; slivers where two discs blend are not one
            continue
        x, y = xs[mine], ys[mine]
        mask = np.zeros((y.max() - y.min() + 1, x.max() - x.min() + 1), np.uint8)
        mask[y - y.min(), x - x.min()] = 1
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        blob = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[blob, cv2.CC_STAT_AREA] < 15:
            continue
        keep = labels[y - y.min(), x - x.min()] == blob
        w = brightness[y[keep], x[keep]]
        kp[j] = (x[keep] * w).sum() / w.sum(), (y[keep] * w).sum() / w.sum()
        conf[j] = 1.0
    return kp, conf


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Views 0 and 1 of the scene ~90° apart; B starts 4.37 frames after A; both 20 s, 30 fps."""
    scene = SyntheticScene(DURATION_S + 6.0, seed=3)
    folder = tmp_path_factory.mktemp("media")
    start_a, start_b = 1.0, 1.0 + 4.37 / FPS
    _render(folder / "a.mp4", scene, 0.0, start_a, DURATION_S, 48000, seed=1)
    _render(folder / "b.mp4", scene, 95.0, start_b, DURATION_S, 44100, seed=2)
    with pytest.MonkeyPatch.context() as mp:  # module scope: before the per-test isolated home exists
        mp.setenv("MVCAPTURE_HOME", str(tmp_path_factory.mktemp("media_home")))
        session = Session.create(name="rendered scene")
        session.import_videos([folder / "a.mp4", folder / "b.mp4"])
    return session, true_sync(start_a, start_b)[0]


def test_audio_from_the_imported_files_within_1ms(session):
    session, truth = session
    (a, rate_a), (b, rate_b) = session.load_audio(0), session.load_audio(1)
    assert (rate_a, rate_b) == (48000, 44100)
    result = estimate_audio_offset(a, rate_a, b, rate_b)
    assert abs(result.offset_s - truth) < 1e-3 and not result.low_confidence


def test_motion_of_keypoints_found_in_the_decoded_pictures_within_a_quarter_frame(session):
    session, truth = session
    signals = []
    for view in session.views:
        found = [_find_joints(image) for _, image in iter_frames(view.media)]
        kp, conf = np.stack([k for k, _ in found]), np.stack([c for _, c in found])
        times = view.frame_times()
        assert len(times) == len(kp) == round(DURATION_S * FPS) and conf[:, list(MARKERS)].mean() > 0.9
        np.testing.assert_allclose(np.diff(times), 1 / FPS, atol=1e-4)  # presentation times read back
        signals.append(RecordingSignals(kp2d_px=kp, conf=conf, frame_times_s=times))
    result = estimate_offset(*signals)
    assert result.method.startswith("motion")
    assert abs(result.offset_s - truth) * FPS < 0.25, result.to_dict()
    # Measured: 0.005 frame off, confidence 0.51, near the flag threshold (0.5): the markers found in the
    # compressed pictures (a few hidden behind others) against 0.56 for the exact projections of the same
    # 13 joints; below it the app would ask the user to check the alignment rather than use it silently.
    assert result.confidence > 0.3
