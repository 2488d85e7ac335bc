"""Cost-matched stand-ins for rtmlib's detector models: the real inputs, outputs and compute, known answers.

For benchmarks without the real weights (needs the `onnx` package, like `mvcapture.detect.testing`). Each
stand-in is an ONNX model with the input and output names and shapes of rtmlib's model for a mode and a
random-weight (seeded) network of the real architecture's shape in between, so that onnxruntime spends
about the time the real model would:

- YOLOX (box model): CSPDarknet backbone (Focus stem, stages at strides 2, 4, 8, 16, 32 of CSP layers
  with 3×3 bottlenecks, SPP at stride 32), PAFPN neck and decoupled heads at strides 8, 16, 32, with
  YOLOX's width/depth multipliers (tiny 0.375/0.33, m 0.75/0.67, x 1.25/1.33) and one class (person).
- RTMPose (pose model): CSPNeXt backbone (3-conv stem, four stages of CSP layers with 3×3 + depthwise
  5×5 blocks and channel attention, SPP in the last), widths/depths s 0.5/0.33, m 0.75/0.67,
  x 1.25/1.33, and an RTMCC head (7×7 conv, linear to 256 tokens, one gated attention unit, SimCC linears).

The outputs are known exactly, as with the tiny test models: output = known result + 0 × (a scalar reduced
from every head output of the network), so the whole network must run but never changes the answer.
The box model finds the bounding box of the bright pixels of its input (`testing.make_yolox_rectangles`);
the pose model gives SimCC peaks at chosen bins (`testing.make_rtmpose`).

Compute is counted as multiply-accumulates (MACs) of the graph itself (`count_macs`: convolutions and
matrix products) and is within ±15 % (`MAC_TOLERANCE`) of the published compute of each real model
(`PUBLISHED_GFLOPS`, converted by `target_gmacs`):

- YOLOX-tiny 6.45 GFLOPs at 416×416, YOLOX-m 73.8 and YOLOX-x 281.9 GFLOPs at 640×640: the Megvii YOLOX
  README, "Standard Models" table (github.com/Megvii-BaseDetection/YOLOX). These are 2 × MACs: YOLOX's
  `yolox.utils.get_model_info` multiplies thop's multiply-accumulate count by 2 ("Gflops"), so the
  targets are 3.23, 36.9 and 141.0 GMACs. (Our count of the published architecture lands within
  1.5 % of those halves, and would be 50 % short of the undivided figures.)
- RTMPose-s 0.68 and RTMPose-m 1.93 GFLOPs at 256×192: the MMPose RTMPose README, "Body 2d (17
  Keypoints)" table (github.com/open-mmlab/mmpose, projects/rtmpose/README.md). RTMPose-x 17.29 GFLOPs at
  384×288: MMPose configs/body_2d_keypoint/rtmpose/body8 README; that row is the Halpe-26 model, whose 7×7
  head conv has 9 more output maps than the COCO-17 model rtmlib uses (0.06 G more). MMPose's counter
  (mmengine's `get_model_complexity_info`) counts one multiply-add as one FLOP: targets 0.68, 1.93 and
  17.29 GMACs.

Timings with these models are a proxy for the real ones: same compute and layer types, but onnxruntime's
speed also depends on details (fused ops, memory layout) that a random-weight sketch only approximates.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mvcapture.detect.testing import IR_VERSION, OPSET, _rectangle_nodes, simcc_peaks

# Published compute of each real model at its mode's input size, in the model zoo's own "GFLOPs"; see the
# module docstring.
PUBLISHED_GFLOPS = {
    "yolox-tiny": 6.45, "yolox-m": 73.8, "yolox-x": 281.9,
    "rtmpose-s": 0.68, "rtmpose-m": 1.93, "rtmpose-x": 17.29,
}
# Multiply-accumulates per published "FLOP": YOLOX reports 2 × MACs, MMPose reports MACs.
MACS_PER_PUBLISHED_FLOP = {"yolox": 0.5, "rtmpose": 1.0}
# Allowed relative deviation of a stand-in's MACs from the published figure.
MAC_TOLERANCE = 0.15
# (width, depth) multipliers of the published architectures.
YOLOX_SIZES = {"tiny": (0.375, 0.33), "m": (0.75, 0.67), "x": (1.25, 1.33)}
RTMPOSE_SIZES = {"s": (0.5, 0.33), "m": (0.75, 0.67), "x": (1.25, 1.33)}
# rtmlib's detector modes → (YOLOX size, RTMPose size).
MODE_SIZES = {"lightweight": ("tiny", "s"), "balanced": ("m", "m"), "performance": ("x", "x")}
NUM_KEYPOINTS = 17
# Conv weights are N(0, (GAIN / √fan-in)²): activations keep about the size of the input through every depth
# (no overflow, no denormals that would slow the CPU down).
GAIN = 1.2
SIMCC_SPLIT_RATIO = 2.0


class _Net:
    """Builds an ONNX graph layer by layer and tracks each tensor's shape.

    With `weights=False` the weights are declared as graph inputs (shapes only, no data): such a graph
    cannot run, but its MACs can be counted without generating hundreds of MB of random numbers.
    With `batched=True` the graph's input and outputs have a free first dimension "batch" (the shapes
    tracked here say 1); every op must then work per sample.
    """

    def __init__(self, seed: int, weights: bool = True, batched: bool = False):
        self.rng = np.random.default_rng(seed)
        self.weights = weights
        self.batched = batched
        self.nodes: list = []
        self.initializers: list = []
        self.weight_inputs: list = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, array: np.ndarray, prefix: str = "const") -> str:
        """A small constant tensor (always stored)."""
        from onnx import numpy_helper

        name = self.name(prefix)
        array = np.asarray(array)
        self.initializers.append(numpy_helper.from_array(array, name))
        self.shapes[name] = array.shape
        return name

    def weight(self, shape: tuple[int, ...], std: float, prefix: str = "w") -> str:
        """A random N(0, std²) float32 weight, or a graph input of that shape when weights are off."""
        from onnx import TensorProto, helper, numpy_helper

        name = self.name(prefix)
        if self.weights:
            array = (self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)
            self.initializers.append(numpy_helper.from_array(array, name))
        else:
            self.weight_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        self.shapes[name] = tuple(shape)
        return name

    def op(self, op_type: str, inputs: list[str], shape: tuple[int, ...], prefix: str | None = None,
           **attrs) -> str:
        from onnx import helper

        out = self.name(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        self.shapes[out] = tuple(shape)
        return out

    # --- layers -------------------------------------------------------------------------------------

    def silu(self, x: str) -> str:
        return self.op("Mul", [x, self.op("Sigmoid", [x], self.shapes[x])], self.shapes[x], "silu")

    def conv(self, x: str, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True,
             bias: bool = True) -> str:
        """Conv (BN folded into weight and bias, as in exported models) + SiLU; 'same' padding."""
        n, c_in, h, w = self.shapes[x]
        fan_in = c_in // groups * k * k
        # Scaled so that activations keep roughly their size through the net (no overflow or denormals).
        weight = self.weight((c_out, c_in // groups, k, k), GAIN / math.sqrt(fan_in))
        inputs = [x, weight] + ([self.const(self.rng.normal(0, 0.01, c_out).astype(np.float32), "b")]
                                if bias else [])
        pad = k // 2
        shape = (n, c_out, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        y = self.op("Conv", inputs, shape, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                    group=groups)
        return self.silu(y) if act else y

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b], self.shapes[a])

    def concat(self, xs: list[str]) -> str:
        n, _, h, w = self.shapes[xs[0]]
        return self.op("Concat", xs, (n, sum(self.shapes[x][1] for x in xs), h, w), axis=1)

    def maxpool(self, x: str, k: int) -> str:
        return self.op("MaxPool", [x], self.shapes[x], kernel_shape=[k, k], strides=[1, 1], pads=[k // 2] * 4)

    def upsample2(self, x: str) -> str:
        n, c, h, w = self.shapes[x]
        scales = self.const(np.array([1, 1, 2, 2], np.float32), "scales")
        return self.op("Resize", [x, "", scales], (n, c, 2 * h, 2 * w), mode="nearest")

    def matmul(self, a: str, b: str) -> str:
        sa, sb = self.shapes[a], self.shapes[b]
        return self.op("MatMul", [a, b], sa[:-1] + sb[-1:])

    def linear(self, x: str, n_out: int) -> str:
        """x (..., n_in) @ W (n_in, n_out), no bias (as in the RTMCC head)."""
        return self.matmul(x, self.weight((self.shapes[x][-1], n_out), 1.0 / math.sqrt(self.shapes[x][-1])))

    def mean_scalar(self, x: str) -> str:
        """() mean of all elements."""
        return self.op("ReduceMean", [x], (), keepdims=0)

    def mean_per_sample(self, x: str) -> str:
        """(N, 1, ..., 1) mean of each sample's elements (all axes but the first)."""
        shape = self.shapes[x]
        return self.op("ReduceMean", [x], shape[:1] + (1,) * (len(shape) - 1), axes=list(range(1, len(shape))),
                       keepdims=1)

    def spp(self, x: str, c_out: int, kernels=(5, 9, 13)) -> str:
        """SPP bottleneck: 1×1 to half the channels, max-pools of the given sizes, concat, 1×1."""
        hidden = self.conv(x, self.shapes[x][1] // 2, 1)
        return self.conv(self.concat([hidden] + [self.maxpool(hidden, k) for k in kernels]), c_out, 1)

    def model(self, name: str, outputs: dict[str, tuple[int, ...]], int64_outputs: tuple[str, ...] = ()):
        """The ModelProto with graph input "input" and the given outputs (name → shape)."""
        from onnx import TensorProto, helper

        batch = ["batch"] if self.batched else []
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                batch + list(self.shapes["input"][len(batch):]))]
        outs = [helper.make_tensor_value_info(o, TensorProto.INT64 if o in int64_outputs else TensorProto.FLOAT,
                                              batch + list(shape)[len(batch):]) for o, shape in outputs.items()]
        graph = helper.make_graph(self.nodes, name, inputs + self.weight_inputs, outs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        return model


def _tie(net: _Net, known: str, scalars: list[str], out: str) -> None:
    """`out` = `known` + 0 × (sum of the scalars): the network must run, the answer stays `known`. With
    per-sample "scalars" of shape (N, 1, 1) the output gets the batch dimension N (`known` has 1).

    The sum passes IsNaN→0 and a clip to [-1, 1] first, so that even an overflow in the random network
    (NaN or ±inf, where 0 × value would be NaN) cannot change the output.
    """
    from onnx import helper

    shape = net.shapes[scalars[0]]
    total = scalars[0]
    for s in scalars[1:]:
        total = net.op("Add", [total, s], shape)
    zero = net.const(np.float32(0.0), "zero")
    finite = net.op("Where", [net.op("IsNaN", [total], shape), zero, total], shape)
    bounded = net.op("Clip", [finite, net.const(np.float32(-1.0)), net.const(np.float32(1.0))], shape)
    nothing = net.op("Mul", [bounded, zero], shape, "nothing")
    net.nodes.append(helper.make_node("Add", [known, nothing], [out]))
    net.shapes[out] = net.shapes[known]


# --- YOLOX ------------------------------------------------------------------------------------------


def _csp_darknet_layer(net: _Net, x: str, c_out: int, n: int, shortcut: bool) -> str:
    """YOLOX CSPLayer: two 1×1 branches to c_out/2, n bottlenecks (1×1, 3×3, + identity) on one, concat, 1×1."""
    hidden = c_out // 2
    main = net.conv(x, hidden, 1)
    short = net.conv(x, hidden, 1)
    for _ in range(n):
        y = net.conv(net.conv(main, hidden, 1), hidden, 3)
        main = net.add(y, main) if shortcut else y
    return net.conv(net.concat([main, short]), c_out, 1)


def yolox_graph(size: str, input_hw: tuple[int, int], seed: int = 0, weights: bool = True):
    """The ONNX ModelProto of a YOLOX stand-in (see `make_yolox_standin`); `weights=False` for counting only.

    Args:
        size: "tiny", "m" or "x" (`YOLOX_SIZES`).
        input_hw: model input (height, width), multiples of 32.
    """
    width_mult, depth_mult = YOLOX_SIZES[size]
    height, width = input_hw
    net = _Net(seed, weights)
    net.shapes["input"] = (1, 3, height, width)
    base = int(64 * width_mult)
    depth = max(round(3 * depth_mult), 1)
    # The known answer first: the bright-pixel box, computed from the input image.
    net.nodes += _rectangle_nodes(height, width, dets="dets_known")
    net.shapes["dets_known"] = (1, 1, 5)
    # CSPDarknet. Focus stem: space-to-depth (stride 2) then 3×3.
    x = net.op("SpaceToDepth", ["input"], (1, 12, height // 2, width // 2), blocksize=2)
    x = net.conv(x, base, 3)
    x = _csp_darknet_layer(net, net.conv(x, 2 * base, 3, 2), 2 * base, depth, True)          # stride 4
    dark3 = _csp_darknet_layer(net, net.conv(x, 4 * base, 3, 2), 4 * base, 3 * depth, True)  # stride 8
    dark4 = _csp_darknet_layer(net, net.conv(dark3, 8 * base, 3, 2), 8 * base, 3 * depth, True)  # 16
    x = net.spp(net.conv(dark4, 16 * base, 3, 2), 16 * base)
    dark5 = _csp_darknet_layer(net, x, 16 * base, depth, False)                               # stride 32
    # PAFPN: top-down, then bottom-up.
    c3, c4, c5 = (int(c * width_mult) for c in (256, 512, 1024))
    fpn_out0 = net.conv(dark5, c4, 1)
    f_out0 = _csp_darknet_layer(net, net.concat([net.upsample2(fpn_out0), dark4]), c4, depth, False)
    fpn_out1 = net.conv(f_out0, c3, 1)
    pan_out2 = _csp_darknet_layer(net, net.concat([net.upsample2(fpn_out1), dark3]), c3, depth, False)
    p_out1 = net.concat([net.conv(pan_out2, c3, 3, 2), fpn_out1])
    pan_out1 = _csp_darknet_layer(net, p_out1, c4, depth, False)
    p_out0 = net.concat([net.conv(pan_out1, c4, 3, 2), fpn_out0])
    pan_out0 = _csp_darknet_layer(net, p_out0, c5, depth, False)
    # Decoupled heads at strides 8, 16, 32: 1×1 stem, two 3×3 convs per branch, 1×1 predictions.
    head = int(256 * width_mult)
    scalars = []
    for level in (pan_out2, pan_out1, pan_out0):
        stem = net.conv(level, head, 1)
        cls = net.conv(net.conv(stem, head, 3), head, 3)
        reg = net.conv(net.conv(stem, head, 3), head, 3)
        for branch, c in ((cls, 1), (reg, 4), (reg, 1)):   # class (person), box, objectness
            scalars.append(net.mean_scalar(net.conv(branch, c, 1, act=False)))
    _tie(net, "dets_known", scalars, "dets")
    return net.model(f"yolox-{size}-standin", {"dets": (1, 1, 5), "labels": (1, 1)}, int64_outputs=("labels",))


# --- RTMPose ----------------------------------------------------------------------------------------


def _cspnext_layer(net: _Net, x: str, c_out: int, n: int, identity: bool) -> str:
    """CSPNeXt CSPLayer: 1×1 branches to c_out/2, n blocks (3×3, depthwise 5×5, 1×1, + identity) on one,
    concat, channel attention (global pool, 1×1, hard sigmoid, scale), 1×1."""
    mid = c_out // 2
    main = net.conv(x, mid, 1)
    short = net.conv(x, mid, 1)
    for _ in range(n):
        y = net.conv(net.conv(net.conv(main, mid, 3), mid, 5, groups=mid), mid, 1)
        main = net.add(y, main) if identity else y
    cat = net.concat([main, short])
    n_, c, _, _ = net.shapes[cat]
    pooled = net.op("GlobalAveragePool", [cat], (n_, c, 1, 1))
    attention = net.op("HardSigmoid", [net.conv(pooled, c, 1, act=False)], (n_, c, 1, 1), alpha=1 / 6, beta=0.5)
    return net.conv(net.op("Mul", [cat, attention], net.shapes[cat]), c_out, 1)


def _scale_norm(net: _Net, x: str) -> str:
    """x / (‖x‖₂ / √d) over the last axis (RTMCC's ScaleNorm, gain 1)."""
    shape = net.shapes[x]
    norm = net.op("ReduceL2", [x], shape[:-1] + (1,), axes=[-1], keepdims=1)
    scaled = net.op("Mul", [norm, net.const(np.float32(shape[-1] ** -0.5))], net.shapes[norm])
    return net.op("Div", [x, net.op("Max", [scaled, net.const(np.float32(1e-5))], net.shapes[norm])], shape)


def rtmpose_graph(size: str, bins_x: np.ndarray, bins_y: np.ndarray, input_size: tuple[int, int],
                  value: float = 0.9, seed: int = 0, weights: bool = True):
    """The ONNX ModelProto of an RTMPose stand-in (see `make_rtmpose_standin`); `weights=False` for counting only.

    Args:
        size: "s", "m" or "x" (`RTMPOSE_SIZES`).
        bins_x, bins_y: (17,) SimCC bins where each keypoint's vectors peak.
        input_size: model input (width, height) like rtmlib's RTMPose, multiples of 32.
    """
    from onnx import helper

    width_mult, depth_mult = RTMPOSE_SIZES[size]
    width, height = input_size
    net = _Net(seed, weights, batched=True)
    net.shapes["input"] = (1, 3, height, width)
    simcc_x, simcc_y = simcc_peaks(bins_x, bins_y, width, height, value, SIMCC_SPLIT_RATIO)
    known_x, known_y = net.const(simcc_x, "simcc_x_known"), net.const(simcc_y, "simcc_y_known")
    # CSPNeXt stem: 3×3 stride 2 to half the stem width, 3×3, 3×3.
    stem = int(64 * width_mult)
    x = net.conv(net.conv(net.conv("input", stem // 2, 3, 2), stem // 2, 3), stem, 3)
    # Stages (in, out, blocks, identity, SPP) of CSPNeXt P5, each opened by a 3×3 stride-2 conv.
    for _c_in, c_out, blocks, identity, spp in ((64, 128, 3, True, False), (128, 256, 6, True, False),
                                                (256, 512, 6, True, False), (512, 1024, 3, False, True)):
        c_out = int(c_out * width_mult)
        x = net.conv(x, c_out, 3, 2)
        if spp:
            x = net.spp(x, c_out)
        x = _cspnext_layer(net, x, c_out, max(round(blocks * depth_mult), 1), identity)
    # RTMCC head: 7×7 conv to one map per keypoint, flatten, ScaleNorm + linear to 256-d tokens, one gated
    # attention unit (s = 128, expansion 2), SimCC linears.
    _, _, fh, fw = net.shapes[x]
    maps = net.conv(x, NUM_KEYPOINTS, 7, act=False)
    flat = net.op("Reshape", [maps, net.const(np.array([-1, NUM_KEYPOINTS, fh * fw], np.int64))],
                  (1, NUM_KEYPOINTS, fh * fw))
    tokens = net.linear(_scale_norm(net, flat), 256)
    e, s = 512, 128
    uv = net.silu(net.linear(_scale_norm(net, tokens), 2 * e + s))
    split = net.const(np.array([e, e, s], np.int64))
    u, v, base = (net.name(p) for p in ("u", "v", "base"))
    net.nodes.append(helper.make_node("Split", [uv, split], [u, v, base], axis=-1))
    net.shapes.update({u: (1, NUM_KEYPOINTS, e), v: (1, NUM_KEYPOINTS, e), base: (1, NUM_KEYPOINTS, s)})
    q = net.op("Add", [net.op("Mul", [base, net.weight((s,), 0.02)], net.shapes[base]),
                       net.weight((s,), 0.02)], net.shapes[base])
    k = net.op("Add", [net.op("Mul", [base, net.weight((s,), 0.02)], net.shapes[base]),
                       net.weight((s,), 0.02)], net.shapes[base])
    k_t = net.op("Transpose", [k], (1, s, NUM_KEYPOINTS), perm=[0, 2, 1])
    qk = net.op("Div", [net.matmul(q, k_t), net.const(np.float32(math.sqrt(s)))], (1, NUM_KEYPOINTS, NUM_KEYPOINTS))
    relu = net.op("Relu", [qk], net.shapes[qk])
    kernel = net.op("Mul", [relu, relu], net.shapes[qk])
    gated = net.op("Mul", [u, net.matmul(kernel, v)], net.shapes[u])
    tokens = net.add(net.linear(gated, 256), tokens)
    pred_x = net.linear(tokens, int(width * SIMCC_SPLIT_RATIO))
    pred_y = net.linear(tokens, int(height * SIMCC_SPLIT_RATIO))
    scalars = [net.mean_per_sample(pred_x), net.mean_per_sample(pred_y)]   # (N, 1, 1) each
    _tie(net, known_x, scalars, "simcc_x")
    _tie(net, known_y, scalars, "simcc_y")
    return net.model(f"rtmpose-{size}-standin", {"simcc_x": simcc_x.shape, "simcc_y": simcc_y.shape})


# --- files, counting --------------------------------------------------------------------------------


def _save_model(model, path: Path | str) -> Path:
    import onnx

    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_yolox_standin(path: Path | str, size: str = "m", input_hw=(640, 640), seed: int = 0) -> Path:
    """YOLOX (export with NMS) stand-in of the real model's cost that really detects bright rectangles.

    Input "input" (1, 3, H, W) float BGR pixels 0-255 (rtmlib's letterboxed image). Outputs "dets"
    (1, 1, 5): x1 y1 x2 y2 in input pixels of the bounding box of all bright pixels (mean BGR >
    `testing.BRIGHT_THRESHOLD`) and score 1, or score 0 when there are none — exactly as
    `testing.make_yolox_rectangles`; "labels" (1, 1) int64 zeros (person).

    Args:
        size: "tiny", "m" or "x" (`YOLOX_SIZES`); input_hw: (height, width), multiples of 32.
        seed: seed of the random weights (about 5, 25 and 99 million of them for tiny, m, x: 20-400 MB).
    """
    return _save_model(yolox_graph(size, tuple(input_hw), seed), path)


def make_rtmpose_standin(path: Path | str, bins_x: np.ndarray, bins_y: np.ndarray, size: str = "m",
                         input_size=(192, 256), value: float = 0.9, seed: int = 0) -> Path:
    """RTMPose stand-in of the real model's cost with known SimCC outputs.

    Input "input" (N, 3, H, W) float (rtmlib's normalised crops; N free, several crops in one run). Outputs
    "simcc_x" (N, 17, 2W) and "simcc_y" (N, 17, 2H): 0.01 everywhere but `value` at `bins_x`/`bins_y` (bin
    b = input pixel b / 2), for every image — exactly as `testing.make_rtmpose`.

    Args:
        bins_x, bins_y: (17,) SimCC bins, in [0, 2W) and [0, 2H).
        size: "s", "m" or "x" (`RTMPOSE_SIZES`); input_size: (width, height), multiples of 32.
    """
    return _save_model(rtmpose_graph(size, bins_x, bins_y, tuple(input_size), value, seed), path)


def count_macs(model) -> int:
    """Multiply-accumulates of one run of an ONNX model on one sample (a free batch dimension counts 1): Conv
    k_h·k_w·C_in/groups·C_out·H_out·W_out (batch included), MatMul M·K·N (batch dims included). Other ops
    (activations, pooling, adds) are not counted, as in the published figures. Shapes come from ONNX shape
    inference; weights may be initializers or shape-only graph inputs."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model)
    graph = inferred.graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes.setdefault(info.name, tuple(d.dim_value or 1 for d in dims))   # a free batch dimension counts 1
    macs = 0
    for node in graph.node:
        if node.op_type == "Conv":
            macs += math.prod(shapes[node.output[0]]) * math.prod(shapes[node.input[1]][1:])
        elif node.op_type == "MatMul":
            macs += math.prod(shapes[node.output[0]]) * shapes[node.input[0]][-1]
    return macs


def standin_models(mode: str, pose_bins: tuple[np.ndarray, np.ndarray] | None = None,
                   weights: bool = True, seed: int = 0) -> dict:
    """The two stand-in ModelProtos of an rtmlib mode, at the mode's input sizes.

    Args:
        mode: "lightweight", "balanced" or "performance" (`MODE_SIZES`).
        pose_bins: SimCC bins (x, y) of the pose model; default `default_pose_bins` (the bench's tiny
            models' bins scaled to the mode's input, so the keypoints land on the same pixels).

    Returns:
        {"det": ModelProto, "pose": ModelProto}.
    """
    from mvcapture.detect.models import model_specs

    det_size, pose_size = MODE_SIZES[mode]
    specs = model_specs(mode)
    if pose_bins is None:
        pose_bins = default_pose_bins(specs["pose"].input_size)
    return {"det": yolox_graph(det_size, specs["det"].input_size, seed, weights),
            "pose": rtmpose_graph(pose_size, *pose_bins, specs["pose"].input_size, seed=seed, weights=weights)}


def default_pose_bins(input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """SimCC bins (x, y) that put keypoint i at the same place in its box as the bench's tiny 48×64 model
    (bins 5i + 3, 7i + 2), scaled to an RTMPose input (width, height) of the same 3:4 aspect."""
    factor = input_size[0] // 48
    return (np.arange(NUM_KEYPOINTS) * 5 + 3) * factor, (np.arange(NUM_KEYPOINTS) * 7 + 2) * factor


# Share of the pose model's crop (each axis) that a tracked athlete's keypoints span: rtmlib pads the box by
# 1.25 and live tracking grows the keypoints' box by another 1.25 (`KeypointTracker.expansion`), so keypoints
# over 1 / 1.25² of the crop give back the same box, frame after frame, as a real athlete's do.
TRACKING_SPAN = 1 / 1.25**2


def tracking_pose_bins(input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """SimCC bins (x, y) for an RTMPose input (width, height) whose keypoints span the central
    `TRACKING_SPAN` of the crop (to the bin; the box then changes by under 0.3 % per tracked frame):
    with them live tracking keeps a steady box on the stand-in. (With `default_pose_bins` the keypoints
    span 83–88 % of the crop, so the tracked box grows every frame until the image's edges stop it.)"""
    bins = []
    for size in input_size:
        n = 2 * size   # SimCC split ratio 2
        lo = (1 - TRACKING_SPAN) / 2 * n
        bins.append(np.round(lo + np.linspace(0, TRACKING_SPAN * n, NUM_KEYPOINTS)).astype(np.int64))
    return bins[0], bins[1]


def model_names(mode: str) -> dict[str, str]:
    """{"det": "YOLOX-m", "pose": "RTMPose-m"} for a mode."""
    det_size, pose_size = MODE_SIZES[mode]
    return {"det": f"YOLOX-{det_size}", "pose": f"RTMPose-{pose_size}"}


def target_gmacs(name: str) -> float:
    """Multiply-accumulates (giga) of a real model, e.g. "yolox-m" → 36.9, from `PUBLISHED_GFLOPS`."""
    name = name.lower()
    return PUBLISHED_GFLOPS[name] * MACS_PER_PUBLISHED_FLOP[name.split("-")[0]]


def mode_target_gmacs(mode: str) -> dict[str, float]:
    """{"det": G, "pose": G}: the multiply-accumulates of the mode's real models."""
    return {role: target_gmacs(name) for role, name in model_names(mode).items()}


def make_standins(mode: str, folder: Path | str, pose_bins: tuple[np.ndarray, np.ndarray] | None = None,
                  seed: int = 0) -> dict[str, Path]:
    """Write the mode's stand-ins under the real models' file names (`ModelSpec.onnx_name`).

    Returns:
        {"det": path, "pose": path}.
    """
    from mvcapture.detect.models import model_specs

    specs = model_specs(mode)
    models = standin_models(mode, pose_bins, seed=seed)
    return {role: _save_model(model, Path(folder) / specs[role].onnx_name) for role, model in models.items()}
