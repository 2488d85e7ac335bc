"""Cost-matched detector stand-ins: MACs within tolerance of the real models', the real inputs/outputs, the
network really runs, and decoding gives exactly the tiny test models' boxes and keypoints."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from mvcapture.detect import RTMPoseDetector, model_specs  # noqa: E402
from mvcapture.detect import standin  # noqa: E402
from mvcapture.detect.testing import make_rtmpose, make_yolox_rectangles  # noqa: E402

MODE = "lightweight"                       # YOLOX-tiny 416x416 + RTMPose-s 192x256: small enough for tests
TINY_BINS_X = np.arange(17) * 5 + 3        # the bench's tiny 48x64 pose model
TINY_BINS_Y = np.arange(17) * 7 + 2


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    return standin.make_standins(MODE, tmp_path_factory.mktemp("standin"))


def _session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _median_s(session, x, repeats=5):
    session.run(None, {"input": x})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, {"input": x})
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# --- compute ----------------------------------------------------------------------------------------


def test_count_macs_follows_the_conv_and_matmul_formulas():
    from onnx import TensorProto, helper, numpy_helper

    w_dense = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w_dense")   # 3→8, 3×3, stride 2
    w_dw = numpy_helper.from_array(np.zeros((8, 1, 5, 5), np.float32), "w_dw")         # depthwise 5×5
    w_lin = numpy_helper.from_array(np.zeros((16 * 16, 10), np.float32), "w_lin")
    nodes = [helper.make_node("Conv", ["input", "w_dense"], ["a"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w_dw"], ["b"], kernel_shape=[5, 5], pads=[2, 2, 2, 2], group=8),
             helper.make_node("Reshape", ["b", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w_lin"], ["out"])]
    shape = numpy_helper.from_array(np.array([1, 8, 256], np.int64), "shape")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 10])],
                              [w_dense, w_dw, w_lin, shape])
    expected = 3 * 3 * 3 * 8 * 16 * 16 + 5 * 5 * 1 * 8 * 16 * 16 + 8 * 256 * 10
    assert standin.count_macs(helper.make_model(graph)) == expected


def test_published_figures_and_their_units():
    # YOLOX's README "GFLOPs" are 2 × multiply-accumulates (yolox.utils.get_model_info), MMPose's are MACs.
    assert standin.target_gmacs("yolox-m") == pytest.approx(36.9)
    assert standin.target_gmacs("rtmpose-m") == pytest.approx(1.93)
    assert standin.mode_target_gmacs("performance") == pytest.approx({"det": 140.95, "pose": 17.29})


@pytest.mark.parametrize("mode", ["lightweight", "balanced", "performance"])
def test_stand_in_macs_are_within_tolerance_of_the_real_models(mode):
    models = standin.standin_models(mode, weights=False)      # shapes only: no hundreds of MB of weights
    for role, target in standin.mode_target_gmacs(mode).items():
        gmacs = standin.count_macs(models[role]) / 1e9
        assert abs(gmacs / target - 1) <= standin.MAC_TOLERANCE, (mode, role, gmacs, target)


def test_the_built_files_have_the_counted_graph(standins):
    counted = standin.standin_models(MODE, weights=False)
    for role, path in standins.items():
        assert standin.count_macs(onnx.load(str(path))) == standin.count_macs(counted[role])


# --- inputs and outputs -----------------------------------------------------------------------------


def test_files_have_the_real_models_names_inputs_and_outputs(standins):
    specs = model_specs(MODE)
    assert {role: p.name for role, p in standins.items()} == {role: s.onnx_name for role, s in specs.items()}
    det, pose = _session(standins["det"]), _session(standins["pose"])
    det_h, det_w = specs["det"].input_size
    pose_w, pose_h = specs["pose"].input_size
    assert [(i.name, i.shape) for i in det.get_inputs()] == [("input", [1, 3, det_h, det_w])]
    assert [(o.name, o.shape) for o in det.get_outputs()] == [("dets", [1, 1, 5]), ("labels", [1, 1])]
    # the pose model takes several crops (both views' athletes) in one run: a free batch dimension
    assert [(i.name, i.shape) for i in pose.get_inputs()] == [("input", ["batch", 3, pose_h, pose_w])]
    assert [(o.name, o.shape) for o in pose.get_outputs()] == [("simcc_x", ["batch", 17, 2 * pose_w]),
                                                               ("simcc_y", ["batch", 17, 2 * pose_h])]


def test_the_pose_standin_takes_a_batch_with_the_known_answer_per_crop(standins):
    specs = model_specs(MODE)
    pose_w, pose_h = specs["pose"].input_size
    crops = np.random.default_rng(1).normal(0, 1, (3, 3, pose_h, pose_w)).astype(np.float32)
    simcc_x, simcc_y = _session(standins["pose"]).run(None, {"input": crops})
    assert simcc_x.shape == (3, 17, 2 * pose_w) and simcc_y.shape == (3, 17, 2 * pose_h)
    bins_x, bins_y = standin.default_pose_bins((pose_w, pose_h))
    for n in range(3):
        np.testing.assert_array_equal(simcc_x[n].argmax(-1), bins_x)
        np.testing.assert_array_equal(simcc_y[n].argmax(-1), bins_y)


def test_the_network_really_runs(standins, tmp_path):
    """Every Conv of the graph is executed (onnxruntime's profile), and the stand-ins take far longer than
    the tiny models with the same inputs and outputs."""
    import onnxruntime as ort

    specs = model_specs(MODE)
    det_h, det_w = specs["det"].input_size
    pose_w, pose_h = specs["pose"].input_size
    tiny = {"det": make_yolox_rectangles(tmp_path / "det.onnx", (det_h, det_w)),
            "pose": make_rtmpose(tmp_path / "pose.onnx", TINY_BINS_X, TINY_BINS_Y, (pose_w, pose_h))}
    rng = np.random.default_rng(0)
    inputs = {"det": rng.uniform(0, 255, (1, 3, det_h, det_w)).astype(np.float32),
              "pose": rng.normal(0, 1, (1, 3, pose_h, pose_w)).astype(np.float32)}
    for role, path in standins.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = str(tmp_path / role)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        session.run(None, {"input": inputs[role]})
        with open(session.end_profiling()) as f:
            events = json.load(f)
        ran = sum(1 for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
                  and e["args"]["op_name"] in ("Conv", "FusedConv"))
        convs = sum(1 for n in onnx.load(str(path)).graph.node if n.op_type == "Conv")
        assert ran == convs > 40, role
        slow, fast = _median_s(_session(path), inputs[role]), _median_s(_session(tiny[role]), inputs[role])
        assert slow > 20 * fast, (role, slow, fast)


def test_output_is_the_known_answer_even_if_the_network_overflows():
    """The tie (known + 0 × scalar) ignores NaN and ±inf from the random network."""
    import onnxruntime as ort

    net = standin._Net(seed=0)
    net.shapes["input"] = (1, 3, 4, 4)
    known = net.const(np.array([[1.5, -2.0]], np.float32))
    standin._tie(net, known, [net.mean_scalar("input")], "out")
    model = net.model("tie", {"out": (1, 2)})
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for fill in (3.0, np.nan, np.inf, -np.inf):
        out = session.run(None, {"input": np.full((1, 3, 4, 4), fill, np.float32)})[0]
        np.testing.assert_array_equal(out, [[1.5, -2.0]])


# --- decoding ---------------------------------------------------------------------------------------


def test_decoding_gives_exactly_the_tiny_models_boxes_and_keypoints(standins, tmp_path):
    """The same image through RTMPoseDetector: stand-ins vs tiny models (rectangle box model at the same input
    size, 48x64 SimCC model with bins 1/4 of the stand-in's): identical boxes, keypoints and scores."""
    specs = model_specs(MODE)
    det_hw = specs["det"].input_size
    bins = standin.default_pose_bins(specs["pose"].input_size)
    np.testing.assert_array_equal(bins[0], TINY_BINS_X * 4)
    np.testing.assert_array_equal(bins[1], TINY_BINS_Y * 4)
    matched = RTMPoseDetector(standins["pose"], standins["det"], device="cpu")
    tiny = RTMPoseDetector(make_rtmpose(tmp_path / "pose.onnx", TINY_BINS_X, TINY_BINS_Y, (48, 64)),
                           make_yolox_rectangles(tmp_path / "det.onnx", det_hw), device="cpu")
    assert matched.det.model_input_size == det_hw and matched.pose.model_input_size == (192, 256)
    frame = np.zeros((480, 640, 3), np.uint8)                     # letterboxed: ratio 0.65
    assert matched.detect(frame) == [] and tiny.detect(frame) == []
    frame[80:400, 200:320] = 255
    frame[300:340, 320:360] = (250, 240, 230)
    people, expected = matched.detect(frame), tiny.detect(frame)
    assert len(people) == len(expected) == 1
    np.testing.assert_allclose(people[0].box, expected[0].box, rtol=0, atol=1e-9)
    assert people[0].box_score == expected[0].box_score == 1.0
    np.testing.assert_allclose(people[0].keypoints, expected[0].keypoints, rtol=0, atol=1e-4)
    np.testing.assert_allclose(people[0].scores, expected[0].scores, rtol=0, atol=1e-6)
    # And the box is the bright region's (to the letterbox's pixel grid: 1 / 0.65 px).
    np.testing.assert_allclose(people[0].box, [200, 80, 360, 400], atol=1 / 0.65 + 1e-6)


def test_box_is_exact_when_the_frame_is_the_model_input_size(standins):
    detector = RTMPoseDetector(standins["pose"], standins["det"], device="cpu")
    h, w = detector.det.model_input_size
    frame = np.zeros((h, w, 3), np.uint8)
    frame[32:160, 40:80] = 255
    boxes, scores = detector.detect_boxes(frame)
    np.testing.assert_array_equal(boxes, [[40, 32, 80, 160]])
    np.testing.assert_array_equal(scores, [1.0])
    assert math.isfinite(float(scores[0]))


# --- bench ------------------------------------------------------------------------------------------


def test_bench_uses_the_matched_stand_in_without_real_weights(tmp_path, monkeypatch):
    import argparse

    from mvcapture.bench import live
    from mvcapture.errors import ModelNotFoundError

    def no_weights(*args, **kwargs):
        raise ModelNotFoundError("no weights here")

    monkeypatch.setattr("mvcapture.detect.backends.create_detector", no_weights)
    args = argparse.Namespace(mode=MODE, model_dir=None, device="cpu", standin="matched")
    detector, note, info = live._detector(args, tmp_path)
    assert info["kind"] == "matched" and info["models"] == {"det": "YOLOX-tiny", "pose": "RTMPose-s"}
    assert info["gmacs"]["det"] == pytest.approx(3.18, abs=0.01)
    assert "RANDOM-WEIGHT STAND-IN" in note and "PROXY" in note and "--model-dir" in note
    assert "6.45 GFLOPs" in note and "0.68 GFLOPs" in note
    assert "yolox_tiny" in detector.model_id and "@416x416" in detector.model_id
    args.standin = "tiny"
    detector, note, info = live._detector(args, tmp_path / "tiny")
    assert info["kind"] == "tiny" and "tiny generated test models" in note and "@64x64" in detector.model_id
    args.standin, args.mode = "matched", "rtmo"
    _, note, info = live._detector(args, tmp_path / "rtmo")
    assert info["kind"] == "tiny" and "no cost-matched stand-in for mode 'rtmo'" in note


def test_tracking_keeps_a_steady_box_on_the_stand_in_with_tracking_bins(tmp_path):
    """A pillarboxed athlete (bright rectangle in a dark 1280x720 frame, as the 720p webcam stand-in shows
    the portrait demo): with `tracking_pose_bins` the tracked box stays the athlete's (the detector runs
    once); with the default bins (keypoints over 83–88 % of the crop) it grows every pair until the
    tracker gives up on it."""
    import torch

    from mvcapture.lifter import create_lifter
    from mvcapture.lifter.runtime import Lifter
    from mvcapture.pipeline.live import LivePipeline

    specs = model_specs(MODE)
    torch.manual_seed(0)
    lifter = Lifter(create_lifter("tiny"), device="cpu")
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[40:700, 440:840] = 255
    sizes = {}
    for name, bins in (("tracking", standin.tracking_pose_bins(specs["pose"].input_size)), ("default", None)):
        paths = standin.make_standins(MODE, tmp_path / name, bins)
        live = LivePipeline(RTMPoseDetector(paths["pose"], paths["det"], device="cpu"), lifter, num_views=1,
                            detect_every=1000, lift_stride=4)
        boxes = []
        for _ in range(20):
            live.process([frame])
            box = live.trackers[0]._keypoint_box
            boxes.append(None if box is None else box[2:] - box[:2])
        sizes[name] = (boxes, dict(live.trackers[0].reasons))
    boxes, reasons = sizes["tracking"]
    assert reasons == {"scheduled": 0, "no athlete": 1, "low confidence": 0, "drift": 0}
    np.testing.assert_allclose(boxes[-1], boxes[0], rtol=0.03)
    np.testing.assert_allclose(boxes[0] * 1.25, [660 * 0.75, 660], rtol=0.02)   # the athlete's box, 3:4
    boxes, reasons = sizes["default"]
    assert sum(reasons.values()) > 1 or boxes[-1][0] > 1.5 * boxes[0][0]
