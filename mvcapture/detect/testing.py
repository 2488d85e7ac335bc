"""Tiny ONNX stand-ins for rtmlib's detector models, with the real inputs/outputs and known answers.

For tests only (needs the `onnx` package): no weights can be downloaded on CI machines, so tests build
these and check that decoding to pixels is exact. YOLOX here is a real detector of bright rectangles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 17
IR_VERSION = 8
# Pixels whose mean over B, G, R exceeds this count as "person" for the rectangle detector.
BRIGHT_THRESHOLD = 200.0


def _save(graph, path: Path | str) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _const(name: str, array: np.ndarray):
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name))


def _image_input(height: int, width: int, batched: bool = False):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch" if batched else 1, 3, height, width])


def _constant_outputs(inputs_hw: tuple[int, int], outputs: dict[str, np.ndarray], path: Path | str,
                      batched: bool = False) -> Path:
    """A graph whose outputs are fixed tensors (each plus 0 × mean(input), so the input is used). With
    `batched` the input's first dimension is free and the float outputs (1, A, B) get it: (N, A, B)."""
    from onnx import TensorProto, helper

    if batched:   # per-sample mean (N, 1, 1): the outputs broadcast to the batch
        nodes = [helper.make_node("ReduceMean", ["input"], ["mean4"], axes=[1, 2, 3], keepdims=1),
                 _const("shape3", np.array([-1, 1, 1], np.int64)),
                 helper.make_node("Reshape", ["mean4", "shape3"], ["mean"])]
    else:
        nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0)]
    nodes += [_const("zero", np.float32(0.0)), helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    value_infos = []
    for name, array in outputs.items():
        array = np.asarray(array)
        nodes.append(_const(f"{name}_const", array))
        if array.dtype == np.float32:
            nodes.append(helper.make_node("Add", [f"{name}_const", "nothing"], [name]))
            elem = TensorProto.FLOAT
        else:
            nodes.append(helper.make_node("Identity", [f"{name}_const"], [name]))
            elem = TensorProto.INT64
        shape = ["batch", *array.shape[1:]] if batched and elem == TensorProto.FLOAT else list(array.shape)
        value_infos.append(helper.make_tensor_value_info(name, elem, shape))
    nodes.sort(key=lambda node: node.op_type != "Constant")
    graph = helper.make_graph(nodes, "constant", [_image_input(*inputs_hw, batched)], value_infos)
    return _save(graph, path)


def simcc_peaks(bins_x: np.ndarray, bins_y: np.ndarray, width: int, height: int, value: float = 0.9,
                split_ratio: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """SimCC vectors (1, 17, W·r), (1, 17, H·r) that peak (height `value`) at the given bins."""
    simcc_x = np.full((1, 17, int(width * split_ratio)), 0.01, np.float32)
    simcc_y = np.full((1, 17, int(height * split_ratio)), 0.01, np.float32)
    simcc_x[0, np.arange(17), np.asarray(bins_x)] = value
    simcc_y[0, np.arange(17), np.asarray(bins_y)] = value
    return simcc_x, simcc_y


def make_rtmpose(path: Path | str, bins_x: np.ndarray, bins_y: np.ndarray, input_size=(48, 64),
                 value: float = 0.9) -> Path:
    """RTMPose stand-in: input (N, 3, H, W) → simcc_x (N, 17, 2W), simcc_y (N, 17, 2H) peaking at the
    given bins for every image (N free: several crops in one run). `input_size` is (width, height) like
    rtmlib's RTMPose."""
    width, height = input_size
    simcc_x, simcc_y = simcc_peaks(bins_x, bins_y, width, height, value)
    return _constant_outputs((height, width), {"simcc_x": simcc_x, "simcc_y": simcc_y}, path, batched=True)


def make_rtmpose_following(path: Path | str, fractions_x: np.ndarray, fractions_y: np.ndarray,
                           input_size=(48, 64), value: float = 0.9, threshold: float = 1.5) -> Path:
    """RTMPose stand-in whose keypoints follow a bright rectangle: in each crop of the batch it finds the
    bounding box [x1, x2) × [y1, y2) (input pixels) of the bright pixels (mean of the three normalised
    channels > `threshold`; rtmlib normalises (pixel − 123.7..103.5) / 57.4..58.4, so > 1.5 is a pixel
    brighter than about 205) and puts keypoint i at (x1 + fx_i (x2 − x1), y1 + fy_i (y2 − y1)) with score
    `value`; a crop without bright pixels gives every keypoint score 0.01 (the athlete is lost).

    Input (N, 3, H, W) → simcc_x (N, 17, 2W), simcc_y (N, 17, 2H) (SimCC split ratio 2: the peak bin is
    twice the keypoint's input pixel, rounded; every other bin is 0.01).

    Args:
        fractions_x, fractions_y: (17,) where each keypoint sits in the bright box, 0..1.
        input_size: (width, height) like rtmlib's RTMPose.
    """
    from onnx import TensorProto, helper

    width, height = input_size
    fx = np.asarray(fractions_x, np.float32).reshape(1, 17, 1)
    fy = np.asarray(fractions_y, np.float32).reshape(1, 17, 1)
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["grey"], axes=[1], keepdims=1),          # (N,1,H,W)
        _const("thr", np.float32(threshold)),
        helper.make_node("Greater", ["grey", "thr"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["mask"], ["cols"], axes=[2], keepdims=0),            # (N,1,W)
        helper.make_node("ReduceMax", ["mask"], ["rows"], axes=[3], keepdims=0),            # (N,1,H)
        helper.make_node("ReduceMax", ["mask"], ["seen"], axes=[1, 2, 3], keepdims=0),      # (N,)
        _const("shape3", np.array([-1, 1, 1], np.int64)),
        helper.make_node("Reshape", ["seen", "shape3"], ["seen3"]),                         # (N,1,1)
        _const("one", np.float32(1.0)), _const("two", np.float32(2.0)),
        _const("floor_value", np.float32(0.01)), _const("peak_gain", np.float32(value - 0.01)),
        helper.make_node("Mul", ["seen3", "peak_gain"], ["gain"]),
    ]
    for axis, n, prof, frac in (("x", width, "cols", fx), ("y", height, "rows", fy)):
        coords = np.arange(n, dtype=np.float32)
        nodes += [
            _const(f"{axis}s", coords), _const(f"{axis}s_rev", n - coords), _const(f"{axis}n", np.float32(n)),
            _const(f"{axis}_frac", frac), _const(f"{axis}_bins", np.arange(2 * n, dtype=np.float32).reshape(1, 1, -1)),
            helper.make_node("Mul", [prof, f"{axis}s"], [f"{axis}_on"]),
            helper.make_node("ReduceMax", [f"{axis}_on"], [f"{axis}_last"], axes=[2], keepdims=1),   # (N,1,1)
            helper.make_node("Add", [f"{axis}_last", "one"], [f"{axis}2"]),
            helper.make_node("Mul", [prof, f"{axis}s_rev"], [f"{axis}_on_rev"]),
            helper.make_node("ReduceMax", [f"{axis}_on_rev"], [f"{axis}_rev_max"], axes=[2], keepdims=1),
            helper.make_node("Sub", [f"{axis}n", f"{axis}_rev_max"], [f"{axis}1"]),
            helper.make_node("Sub", [f"{axis}2", f"{axis}1"], [f"{axis}_extent"]),
            helper.make_node("Mul", [f"{axis}_extent", f"{axis}_frac"], [f"{axis}_offset"]),   # (N,17,1)
            helper.make_node("Add", [f"{axis}1", f"{axis}_offset"], [f"{axis}_px"]),
            helper.make_node("Mul", [f"{axis}_px", "two"], [f"{axis}_bin_raw"]),
            helper.make_node("Round", [f"{axis}_bin_raw"], [f"{axis}_bin"]),
            helper.make_node("Sub", [f"{axis}_bins", f"{axis}_bin"], [f"{axis}_diff"]),        # (N,17,2n)
            helper.make_node("Abs", [f"{axis}_diff"], [f"{axis}_dist"]),
            helper.make_node("Sub", ["one", f"{axis}_dist"], [f"{axis}_tent_raw"]),
            helper.make_node("Relu", [f"{axis}_tent_raw"], [f"{axis}_tent"]),   # 1 at the peak bin, else 0
            helper.make_node("Mul", [f"{axis}_tent", "gain"], [f"{axis}_peak"]),
            helper.make_node("Add", [f"{axis}_peak", "floor_value"], [f"simcc_{axis}"]),
        ]
    nodes.sort(key=lambda node: node.op_type != "Constant")
    outputs = [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, ["batch", 17, 2 * width]),
               helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, ["batch", 17, 2 * height])]
    graph = helper.make_graph(nodes, "following", [_image_input(height, width, batched=True)], outputs)
    return _save(graph, path)


def make_yolox_constant(path: Path | str, dets: np.ndarray, input_hw=(64, 64)) -> Path:
    """YOLOX (export with NMS) stand-in: dets (1, N, 5) x1 y1 x2 y2 score in input pixels, labels (1, N)."""
    dets = np.asarray(dets, np.float32).reshape(1, -1, 5)
    labels = np.zeros(dets.shape[:2], np.int64)
    return _constant_outputs(tuple(input_hw), {"dets": dets, "labels": labels}, path)


def make_yolox_raw_constant(path: Path | str, raw: np.ndarray, input_hw=(64, 64)) -> Path:
    """YOLOX export without NMS: (1, A, 6) cx, cy, log w, log h (grid units), objectness, person score."""
    return _constant_outputs(tuple(input_hw), {"output": np.asarray(raw, np.float32)}, path)


def make_rtmo(path: Path | str, dets: np.ndarray, keypoints: np.ndarray, input_hw=(64, 64)) -> Path:
    """RTMO stand-in: dets (1, N, 5) and keypoints (1, N, 17, 3) x, y, score, in input pixels."""
    dets = np.asarray(dets, np.float32).reshape(1, -1, 5)
    keypoints = np.asarray(keypoints, np.float32).reshape(1, -1, 17, 3)
    return _constant_outputs(tuple(input_hw), {"dets": dets, "keypoints": keypoints}, path)


def _rectangle_nodes(height: int, width: int, dets: str = "dets") -> list:
    """Nodes that find the bounding box of all bright pixels (mean BGR > BRIGHT_THRESHOLD) of graph input
    "input" (1, 3, H, W): `dets` (1, 1, 5) x1 y1 x2 y2 in input pixels and score 1, or score 0 when there
    are none, and "labels" (1, 1) int64 zeros. Constant nodes come first (valid graph order)."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["input"], ["grey"], axes=[1], keepdims=1),          # (1,1,H,W)
        _const("thr", np.float32(BRIGHT_THRESHOLD)),
        helper.make_node("Greater", ["grey", "thr"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["mask"], ["cols"], axes=[2], keepdims=0),            # (1,1,W)
        helper.make_node("ReduceMax", ["mask"], ["rows"], axes=[3], keepdims=0),            # (1,1,H)
        helper.make_node("ReduceMax", ["mask"], ["score"], axes=[0, 1, 2, 3], keepdims=1),  # (1,1,1,1)
        _const("one", np.float32(1.0)),
    ]
    for axis, n, prof in (("x", width, "cols"), ("y", height, "rows")):
        coords = np.arange(n, dtype=np.float32)
        nodes += [
            _const(f"{axis}s", coords), _const(f"{axis}s_rev", n - coords), _const(f"{axis}n", np.float32(n)),
            helper.make_node("Mul", [prof, f"{axis}s"], [f"{axis}_on"]),
            helper.make_node("ReduceMax", [f"{axis}_on"], [f"{axis}_last"], axes=[0, 1, 2], keepdims=1),
            helper.make_node("Add", [f"{axis}_last", "one"], [f"{axis}2"]),
            helper.make_node("Mul", [prof, f"{axis}s_rev"], [f"{axis}_on_rev"]),
            helper.make_node("ReduceMax", [f"{axis}_on_rev"], [f"{axis}_rev_max"], axes=[0, 1, 2], keepdims=1),
            helper.make_node("Sub", [f"{axis}n", f"{axis}_rev_max"], [f"{axis}1"]),
        ]
    nodes += [
        helper.make_node("Reshape", ["score", "shape3"], ["score3"]),
        _const("shape3", np.array([1, 1, 1], np.int64)),
        helper.make_node("Concat", ["x1", "y1", "x2", "y2", "score3"], [dets], axis=2),
        _const("labels_const", np.zeros((1, 1), np.int64)),
        helper.make_node("Identity", ["labels_const"], ["labels"]),
    ]
    # Constants must precede their users in a valid graph: put every Constant first.
    nodes.sort(key=lambda node: node.op_type != "Constant")
    return nodes


def make_yolox_rectangles(path: Path | str, input_hw=(64, 64)) -> Path:
    """YOLOX stand-in that really detects: the bounding box of all bright pixels (mean BGR >
    BRIGHT_THRESHOLD) as one person with score 1, or score 0 when there are none."""
    from onnx import TensorProto, helper

    height, width = input_hw
    nodes = _rectangle_nodes(height, width)
    outputs = [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, 1, 5]),
               helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 1])]
    graph = helper.make_graph(nodes, "rectangles", [_image_input(height, width)], outputs)
    return _save(graph, path)
