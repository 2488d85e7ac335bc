"""Exact decoding to pixels on tiny generated ONNX models (RTMPose + YOLOX, RTMO), and no invented boxes."""

from __future__ import annotations

import numpy as np
import pytest

from mvcapture.detect import RTMODetector, RTMPoseDetector
from mvcapture.detect.testing import (make_rtmo, make_rtmpose, make_yolox_constant, make_yolox_raw_constant,
                                      make_yolox_rectangles)

POSE_W, POSE_H = 48, 64          # RTMPose input (width, height): SimCC x has 96 bins, y 128
BINS_X = np.arange(17) * 5 + 3
BINS_Y = np.arange(17) * 7 + 2


def expected_keypoints(box, bins_x=BINS_X, bins_y=BINS_Y, w=POSE_W, h=POSE_H, padding=1.25, split=2.0):
    """Independent derivation: the box, padded by 1.25 and widened to the input aspect ratio, maps
    linearly onto the (w, h) input; SimCC bin b sits at input pixel b / split."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    sw, sh = (x2 - x1) * padding, (y2 - y1) * padding
    if sw > sh * w / h:
        sh = sw * h / w
    else:
        sw = sh * w / h
    u, v = np.asarray(bins_x) / split, np.asarray(bins_y) / split
    return np.stack([cx - sw / 2 + u * sw / w, cy - sh / 2 + v * sh / h], axis=1)


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory):
    return make_rtmpose(tmp_path_factory.mktemp("m") / "pose.onnx", BINS_X, BINS_Y, (POSE_W, POSE_H), value=0.9)


def test_expected_keypoints_formula_is_exact_on_a_simple_box():
    # A tall box 48 x 128 → padded 60 x 160 → widened to 120 x 160: 1 bin = 1.25 px.
    kp = expected_keypoints((100, 50, 148, 178))
    np.testing.assert_allclose(kp, np.stack([64 + 1.25 * BINS_X, 34 + 1.25 * BINS_Y], axis=1))


@pytest.mark.parametrize("box", [(100.0, 50.0, 148.0, 178.0),     # tall: height decides the scale
                                 (12.0, 80.0, 212.0, 132.0)])     # wide: width decides
def test_rtmpose_topdown_decodes_to_exact_pixels(tmp_path, pose_model, box):
    frame = np.zeros((256, 256, 3), np.uint8)                     # YOLOX input 64x64 → ratio 0.25
    det = make_yolox_constant(tmp_path / "det.onnx", [[*(np.array(box) * 0.25), 0.8]], (64, 64))
    detector = RTMPoseDetector(pose_model, det, device="cpu")
    people = detector.detect(frame)
    assert len(people) == 1
    np.testing.assert_allclose(people[0].box, box, atol=1e-4)
    assert people[0].box_score == pytest.approx(0.8, abs=1e-6)
    np.testing.assert_allclose(people[0].keypoints, expected_keypoints(box), atol=1e-3)
    np.testing.assert_allclose(people[0].scores, 0.9, atol=1e-6)
    assert people[0].keypoints.shape == (17, 2) and people[0].scores.shape == (17,)


def test_input_sizes_are_read_from_the_model(tmp_path, pose_model):
    det = make_yolox_constant(tmp_path / "det.onnx", [[10, 10, 20, 30, 0.9]], (64, 96))
    detector = RTMPoseDetector(pose_model, det, pose_input_size=(192, 256), det_input_size=(640, 640),
                               device="cpu")
    assert detector.pose.model_input_size == (POSE_W, POSE_H)
    assert detector.det.model_input_size == (64, 96)
    assert "@48x64" in detector.model_id and "@96x64" in detector.model_id


def test_several_people_each_get_their_own_pose(tmp_path, pose_model):
    boxes = [(100.0, 50.0, 148.0, 178.0), (180.0, 40.0, 220.0, 200.0)]
    dets = [[*(np.array(b) * 0.25), s] for b, s in zip(boxes, (0.9, 0.6))]
    detector = RTMPoseDetector(pose_model, make_yolox_constant(tmp_path / "d.onnx", dets), device="cpu")
    people = detector.detect(np.zeros((256, 256, 3), np.uint8))
    assert len(people) == 2
    for person, box in zip(people, boxes):
        np.testing.assert_allclose(person.box, box, atol=1e-4)
        np.testing.assert_allclose(person.keypoints, expected_keypoints(box), atol=1e-3)


def test_no_person_gives_no_detection_never_a_whole_frame_box(tmp_path, pose_model):
    from rtmlib import RTMPose

    frame = np.zeros((256, 320, 3), np.uint8)
    det = make_yolox_constant(tmp_path / "det.onnx", [[5, 5, 60, 60, 0.1], [0, 0, 10, 10, 0.0]])
    detector = RTMPoseDetector(pose_model, det, device="cpu")
    assert len(detector.detect_boxes(frame)[0]) == 0
    assert detector.detect(frame) == []
    # The pitfall this guards against: rtmlib's RTMPose with no boxes poses the whole frame.
    kp, _ = RTMPose(str(pose_model), model_input_size=(POSE_W, POSE_H), backend="onnxruntime")(frame, bboxes=[])
    assert kp.shape == (1, 17, 2)


def test_bright_rectangle_detector_finds_the_box_and_nothing_on_black(tmp_path, pose_model):
    detector = RTMPoseDetector(pose_model, make_yolox_rectangles(tmp_path / "rect.onnx"), device="cpu")
    frame = np.zeros((192, 256, 3), np.uint8)
    assert detector.detect(frame) == []
    frame[32:160, 40:80] = 255
    boxes, scores = detector.detect_boxes(frame)
    np.testing.assert_allclose(boxes, [[40, 32, 80, 160]])
    np.testing.assert_allclose(scores, [1.0])


def test_yolox_export_without_nms_is_grid_decoded(tmp_path, pose_model):
    anchors = 8 * 8 + 4 * 4 + 2 * 2                              # strides 8, 16, 32 on a 64x64 input
    raw = np.zeros((1, anchors, 6), np.float32)
    raw[0, 2 * 8 + 3] = [0.5, 0.5, np.log(2.0), np.log(4.0), 0.9, 0.9]   # cell (3, 2) at stride 8
    detector = RTMPoseDetector(pose_model, make_yolox_raw_constant(tmp_path / "raw.onnx", raw), device="cpu")
    boxes, scores = detector.detect_boxes(np.zeros((256, 256, 3), np.uint8))
    # centre (3.5, 2.5) * 8 = (28, 20), size (16, 32) in input px → ×4 in the 256 px frame
    np.testing.assert_allclose(boxes, [[80, 16, 144, 144]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.81], atol=1e-6)


def _rtmo_outputs():
    dets = np.array([[8, 4, 24, 40, 0.95], [30, 10, 50, 60, 0.2], [40, 2, 60, 30, 0.8]], np.float32)
    kps = np.zeros((3, 17, 3), np.float32)
    for n in range(3):
        kps[n, :, 0] = dets[n, 0] + np.arange(17) * 0.75
        kps[n, :, 1] = dets[n, 1] + np.arange(17) * 1.5
        kps[n, :, 2] = np.linspace(0.3, 0.95, 17)
    return dets, kps


def test_rtmo_decodes_to_exact_pixels(tmp_path):
    dets, kps = _rtmo_outputs()
    detector = RTMODetector(make_rtmo(tmp_path / "rtmo.onnx", dets, kps, (64, 64)), device="cpu")
    frame = np.zeros((128, 256, 3), np.uint8)                     # ratio min(64/128, 64/256) = 0.25
    people = detector.detect(frame)
    assert len(people) == 2                                       # the 0.2 box is below the threshold
    people.sort(key=lambda p: -p.box_score)
    for person, n in zip(people, (0, 2)):
        np.testing.assert_allclose(person.box, dets[n, :4] * 4, atol=1e-4)
        np.testing.assert_allclose(person.keypoints, kps[n, :, :2] * 4, atol=1e-4)
        np.testing.assert_allclose(person.scores, kps[n, :, 2], atol=1e-6)
        assert person.box_score == pytest.approx(dets[n, 4], abs=1e-6)
    assert detector.model_id.startswith("rtmo[")


def test_rtmo_without_people_gives_no_detection(tmp_path):
    from rtmlib import RTMO

    dets, kps = _rtmo_outputs()
    dets[:, 4] = 0.05
    model = make_rtmo(tmp_path / "rtmo.onnx", dets, kps, (64, 64))
    frame = np.zeros((128, 256, 3), np.uint8)
    assert RTMODetector(model, device="cpu").detect(frame) == []
    # rtmlib's RTMO returns one all-zero skeleton in that case; it must not be taken for a person.
    kp, _ = RTMO(str(model), model_input_size=(64, 64), backend="onnxruntime")(frame)
    assert kp.shape == (1, 17, 2)


def test_unknown_device_is_refused(tmp_path, pose_model):
    with pytest.raises(ValueError, match="unknown device"):
        RTMODetector(make_rtmo(tmp_path / "r.onnx", *_rtmo_outputs()), device="tpu")


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_cuda_is_tried_first_and_the_cpu_takes_over(tmp_path, monkeypatch):
    import onnxruntime as ort

    from mvcapture.detect import backends

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert backends._providers_for("auto") == ["cuda", "cpu"]
    assert backends._providers_for("cuda:1") == ["cuda:1", "cpu"]
    tried = []

    class FailsOnCuda:
        def __init__(self, model, backend, device, **kwargs):
            tried.append(device)
            if device != "cpu":
                raise RuntimeError("CUDA library not found")
            self.session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    model = make_rtmo(tmp_path / "r.onnx", *_rtmo_outputs())
    tool = backends._load_tool(FailsOnCuda, model, "auto")
    assert tried == ["cuda", "cpu"] and backends._provider_name(tool) == "cpu"
    # A real detector asked for CUDA on a machine without it still runs (on the CPU).
    assert RTMODetector(model, device="auto").provider == "cpu"
