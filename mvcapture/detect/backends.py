"""2D pose detectors: one interface, rtmlib implementations (RTMPose + YOLOX boxes, one-stage RTMO).

Both run through onnxruntime on CUDA when it is available, else on the CPU. The stages are run one by
one through rtmlib's classes so that every pose comes with the person box it was found in: rtmlib's
own `Body`/`RTMPose` invent a whole-frame box (and RTMO a zero skeleton) when nobody is found, which
must never reach the tracker as a detection.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvcapture.detect.models import ModelSpec, missing_model_message, model_specs, resolve_model
from mvcapture.errors import ModelNotFoundError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class Person:
    """One person found in one frame.

    Attributes:
        box: (4,) x1, y1, x2, y2 in pixels.
        box_score: detector confidence of the box in [0, 1].
        keypoints: (17, 2) COCO-17 joints in pixels (x right, y down).
        scores: (17,) joint confidences.
    """

    box: np.ndarray
    box_score: float
    keypoints: np.ndarray
    scores: np.ndarray


class PoseDetector(ABC):
    """Finds the people in a BGR frame. `model_id` names the models and settings (cache key).

    Top-down detectors also offer the two stages apart (`supports_tracking`): `detect_boxes` (the person
    detector) and `pose_in_boxes` (the pose model on given boxes, several frames' crops in one call), so that
    live mode can take the next boxes from the last keypoints instead of running the person detector.
    """

    model_id: str
    provider: str
    supports_tracking = False

    @abstractmethod
    def detect(self, frame_bgr: np.ndarray) -> list[Person]:
        """All people in a (H, W, 3) uint8 BGR frame; an empty list when nobody is there."""


def _providers_for(device: str) -> list[str]:
    """rtmlib device names to try in order; the CPU is always the last resort."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["cpu"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            log.warning("CUDA asked for but onnxruntime has no CUDA provider (install onnxruntime-gpu); "
                        "using the CPU")
            return ["cpu"]
        return [device, "cpu"]
    if device == "auto":
        if "CUDAExecutionProvider" in available:
            return ["cuda", "cpu"]
        if "CoreMLExecutionProvider" in available:  # Apple silicon
            return ["mps", "cpu"]
        return ["cpu"]
    raise ValueError(f"unknown device {device!r}; choose {', '.join(DEVICES)} or cuda:N")


def _quiet_cpu_session(model: Path):
    """A CPU onnxruntime session whose worker threads sleep between runs. By default they spin for a
    while after each inference, stealing the cores the lifter and the capture threads run on next
    (rtmlib creates its sessions with the defaults)."""
    import onnxruntime as ort

    from mvcapture import threads

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads.current_budget()  # the app's thread policy (live or processing)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


def _load_tool(cls, model: Path, device: str, **kwargs):
    """Instantiate an rtmlib class on the first device that works (CUDA, then the CPU)."""
    last_error: Exception | None = None
    for dev in _providers_for(device):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # rtmlib prints "load ... with backend"
                tool = cls(str(model), backend="onnxruntime", device=dev, **kwargs)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several kinds for a broken provider
            log.warning("could not load %s on %s (%s)", model.name, dev, exc)
            last_error = exc
            continue
        if tool.session.get_providers()[0] == "CPUExecutionProvider":
            tool.session = _quiet_cpu_session(model)
        log.info("loaded %s with providers %s", model.name, tool.session.get_providers())
        return tool
    raise RuntimeError(f"could not load detector model {model}: {last_error}")


def _static_hw(tool) -> tuple[int, int] | None:
    """(height, width) of the model input when the ONNX file fixes it."""
    shape = tool.session.get_inputs()[0].shape
    if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    return None


def _provider_name(tool) -> str:
    return tool.session.get_providers()[0].replace("ExecutionProvider", "").lower()


def _letterbox_boxes(dets: np.ndarray, ratio: float, score_thr: float, nms_thr: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 5) x1 y1 x2 y2 score in model-input pixels → kept boxes (M, 4) image px, scores (M,), indices (M,)."""
    from rtmlib.tools.object_detection.post_processings import multiclass_nms

    boxes = dets[:, :4].astype(np.float64) / ratio
    scores = dets[:, 4].astype(np.float64)
    kept, keep = multiclass_nms(boxes, scores[:, None], nms_thr=nms_thr, score_thr=score_thr)
    if kept is None:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int)
    return kept[:, :4], kept[:, 4], np.asarray(keep, dtype=int)


def _yolox_raw_to_dets(outputs: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """YOLOX export without NMS, (1, A, 5 + C): grid-decode to (A, 5) person boxes in input pixels."""
    grids, strides = [], []
    for stride in (8, 16, 32):
        h, w = input_hw[0] // stride, input_hw[1] // stride
        xv, yv = np.meshgrid(np.arange(w), np.arange(h))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((h * w, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    pred = outputs[0].astype(np.float64)
    centre = (pred[:, :2] + grid) * stride
    size = np.exp(pred[:, 2:4]) * stride
    person_score = pred[:, 4] * pred[:, 5]  # objectness × class 0 (person)
    return np.concatenate([centre - size / 2, centre + size / 2, person_score[:, None]], axis=1)


class RTMPoseDetector(PoseDetector):
    """Top-down: YOLOX person boxes, then RTMPose (SimCC) inside each box.

    Args:
        pose_model, det_model: ONNX files (see `create_detector` for finding them).
        pose_input_size: RTMPose input (width, height); the ONNX file's own size wins when it fixes one.
        det_input_size: YOLOX input (height, width); likewise.
        device: "auto" (CUDA if onnxruntime has it, else CPU), "cpu", "cuda" or "cuda:N".
        det_score_thr: minimum box score for a person.
        nms_thr: IoU above which overlapping boxes are merged.
    """

    supports_tracking = True

    def __init__(self, pose_model: Path | str, det_model: Path | str, pose_input_size=(192, 256),
                 det_input_size=(640, 640), device: str = "auto", det_score_thr: float = 0.3,
                 nms_thr: float = 0.45):
        from rtmlib import YOLOX, RTMPose

        self.det = _load_tool(YOLOX, Path(det_model), device, model_input_size=tuple(det_input_size),
                              score_thr=det_score_thr, nms_thr=nms_thr)
        hw = _static_hw(self.det)
        if hw:
            self.det.model_input_size = hw
        self.pose = _load_tool(RTMPose, Path(pose_model), device, model_input_size=tuple(pose_input_size))
        hw = _static_hw(self.pose)
        if hw:
            self.pose.model_input_size = (hw[1], hw[0])
        self.det_score_thr = det_score_thr
        self.nms_thr = nms_thr
        self.provider = _provider_name(self.pose)
        batch = self.pose.session.get_inputs()[0].shape[0]
        # rtmlib's exports fix batch 1; a model with a free batch dimension takes every crop in one run.
        self.pose_batched = not isinstance(batch, int) or batch != 1
        self.worker_cpu_s = 0.0   # CPU seconds of pose runs in `pose_in_boxes`' worker threads
        self._cpu_lock = threading.Lock()
        dh, dw = self.det.model_input_size
        pw, ph = self.pose.model_input_size
        self.model_id = (f"rtmpose[det={Path(det_model).stem}@{dw}x{dh},thr={det_score_thr},nms={nms_thr};"
                         f"pose={Path(pose_model).stem}@{pw}x{ph}]")

    def detect_boxes(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes (N, 4) x1 y1 x2 y2 px and their scores (N,); empty when nobody is there."""
        img, ratio = self.det.preprocess(frame_bgr)
        outputs = self.det.inference(img)[0]
        if outputs.shape[-1] == 5:  # export with NMS inside: (1, N, 5) dets (+ labels, unused)
            dets = outputs[0]
        else:
            dets = _yolox_raw_to_dets(outputs, self.det.model_input_size)
        boxes, scores, _ = _letterbox_boxes(dets, ratio, self.det_score_thr, self.nms_thr)
        h, w = frame_bgr.shape[:2]
        boxes = np.clip(boxes, 0, [w, h, w, h])
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return boxes[valid], scores[valid]

    def pose_in_box(self, frame_bgr: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RTMPose inside one box: (17, 2) keypoints px and (17,) scores."""
        img, center, scale = self.pose.preprocess(frame_bgr, np.asarray(box, dtype=np.float64))
        outputs = self.pose.inference(img)
        keypoints, scores = self.pose.postprocess(outputs, center, scale)
        scores = np.clip(scores[0], 0.0, 1.0)
        return keypoints[0].astype(np.float64), scores

    def pose_in_boxes(self, frames_bgr: list[np.ndarray], boxes: np.ndarray, workers: int = 1
                      ) -> tuple[np.ndarray, np.ndarray]:
        """RTMPose on one box per frame (e.g. both views' athletes), all crops in one onnxruntime run when
        the model has a free batch dimension (`pose_batched`), else one run per crop. With `workers` > 1
        the crops are split into that many runs side by side in threads (onnxruntime releases the GIL; each
        run uses the session's own threads, one in live mode): the pair's wall time falls towards one
        crop's while the cores are free.

        Args:
            frames_bgr: N frames (H_i, W_i, 3) uint8 BGR. boxes: (N, 4) x1 y1 x2 y2 px, one per frame.
            workers: parallel runs (at most N).

        Returns:
            keypoints (N, 17, 2) px of each frame and scores (N, 17) in [0, 1].
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(frames_bgr) != len(boxes):
            raise ValueError(f"pose_in_boxes needs one box per frame, got {len(frames_bgr)} frames, {len(boxes)} boxes")
        if not len(boxes):
            return np.zeros((0, 17, 2)), np.zeros((0, 17))
        runs = max(1, min(int(workers), len(boxes))) if self.pose_batched else len(boxes)
        chunks = [list(c) for c in np.array_split(np.arange(len(boxes)), runs)]
        work = [([frames_bgr[i] for i in c], boxes[c]) for c in chunks]
        if workers > 1 and len(work) > 1:   # the first run in this thread, the others in the pool's
            others = [self._pool(workers).submit(self._pose_run_counted, *job) for job in work[1:]]
            found = [self._pose_run(*work[0])] + [f.result() for f in others]
        else:
            found = [self._pose_run(*job) for job in work]
        return np.concatenate([k for k, _ in found]), np.concatenate([s for _, s in found])

    def _pose_run_counted(self, frames_bgr, boxes):
        """`_pose_run` in a pool thread; its CPU time is added to `worker_cpu_s`."""
        import time

        start = time.thread_time()
        try:
            return self._pose_run(frames_bgr, boxes)
        finally:
            with self._cpu_lock:
                self.worker_cpu_s += time.thread_time() - start

    def _pool(self, workers: int):
        from concurrent.futures import ThreadPoolExecutor

        pool = getattr(self, "_workers", None)
        if pool is None or pool._max_workers < workers:
            if pool is not None:
                pool.shutdown(wait=False)
            pool = self._workers = ThreadPoolExecutor(workers, thread_name_prefix="pose")
        return pool

    def _pose_run(self, frames_bgr: list[np.ndarray], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One onnxruntime run on the crops of `boxes` (N, 4) in `frames_bgr` (N of them; N = 1 when the
        model fixes batch 1)."""
        from rtmlib.tools.pose_estimation.post_processings import get_simcc_maximum
        from rtmlib.tools.pose_estimation.pre_processings import bbox_xyxy2cs, top_down_affine

        # rtmlib's `preprocess` (box padded 1.25, affine crop, normalised), normalising in float32 straight
        # into the batch (rtmlib's float64 arithmetic took 60 % of it)
        width, height = self.pose.model_input_size
        batch = np.empty((len(boxes), 3, height, width), np.float32)
        mean, std = np.float32(self.pose.mean), np.float32(self.pose.std)
        centres, scales = [], []
        for i, (image, box) in enumerate(zip(frames_bgr, boxes)):
            centre, scale = bbox_xyxy2cs(np.asarray(box, np.float64), padding=1.25)
            crop, scale = top_down_affine(self.pose.model_input_size, scale, centre, image)
            batch[i] = ((crop.astype(np.float32) - mean) / std).transpose(2, 0, 1)
            centres.append(centre)
            scales.append(scale)
        session = self.pose.session
        simcc_x, simcc_y = session.run([o.name for o in session.get_outputs()],
                                       {session.get_inputs()[0].name: batch})[:2]
        locs, scores = get_simcc_maximum(simcc_x, simcc_y)   # (N, 17, 2) SimCC bins, (N, 17)
        scale = np.asarray(scales, np.float64)[:, None, :]
        keypoints = (locs / 2.0) / np.asarray(self.pose.model_input_size) * scale
        keypoints = keypoints + np.asarray(centres, np.float64)[:, None, :] - scale / 2
        return keypoints.astype(np.float64), np.clip(scores, 0.0, 1.0).astype(np.float64)

    def detect(self, frame_bgr: np.ndarray) -> list[Person]:
        boxes, box_scores = self.detect_boxes(frame_bgr)
        people = []
        for box, box_score in zip(boxes, box_scores):
            keypoints, scores = self.pose_in_box(frame_bgr, box)
            people.append(Person(box, float(box_score), keypoints, scores))
        return people


class RTMODetector(PoseDetector):
    """One-stage RTMO: boxes and keypoints of everyone in one pass.

    Args:
        model: ONNX file. input_size: (height, width); the ONNX file's own size wins when it fixes one.
        device, score_thr, nms_thr: as for `RTMPoseDetector`.
    """

    def __init__(self, model: Path | str, input_size=(640, 640), device: str = "auto",
                 score_thr: float = 0.5, nms_thr: float = 0.45):
        from rtmlib import RTMO

        self.rtmo = _load_tool(RTMO, Path(model), device, model_input_size=tuple(input_size),
                               score_thr=score_thr, nms_thr=nms_thr)
        hw = _static_hw(self.rtmo)
        if hw:
            self.rtmo.model_input_size = hw
        self.score_thr = score_thr
        self.nms_thr = nms_thr
        self.provider = _provider_name(self.rtmo)
        h, w = self.rtmo.model_input_size
        self.model_id = f"rtmo[{Path(model).stem}@{w}x{h},thr={score_thr},nms={nms_thr}]"

    def detect(self, frame_bgr: np.ndarray) -> list[Person]:
        img, ratio = self.rtmo.preprocess(frame_bgr)
        dets, pose = self.rtmo.inference(img)[:2]
        boxes, box_scores, keep = _letterbox_boxes(dets[0], ratio, self.score_thr, self.nms_thr)
        people = []
        for box, box_score, k in zip(boxes, box_scores, keep):
            keypoints = pose[0, k, :, :2].astype(np.float64) / ratio
            scores = np.clip(pose[0, k, :, 2].astype(np.float64), 0.0, 1.0)
            people.append(Person(box, float(box_score), keypoints, scores))
        return people


def create_detector(mode: str = "balanced", model_dir: Path | str | None = None, device: str = "auto",
                    pose_model: Path | str | None = None, det_model: Path | str | None = None,
                    download: bool = True) -> PoseDetector:
    """A detector by mode name, its models found as `models.resolve_model` describes.

    Args:
        mode: "lightweight", "balanced", "performance" (RTMPose-s/m/x with YOLOX-tiny/m/x boxes) or
            "rtmo" (one-stage RTMO-m).
        model_dir: a folder holding the ONNX files (or rtmlib's zips), searched before rtmlib's cache.
        device: "auto", "cpu", "cuda" or "cuda:N".
        pose_model, det_model: explicit ONNX files (win over everything else).
        download: allow rtmlib's download when the models are nowhere on disk.

    Raises:
        ModelNotFoundError: a model is missing (the message says which, where to put it, its URL).
    """
    specs: dict[str, ModelSpec] = model_specs(mode)
    given = {"pose": pose_model, "det": det_model}
    paths: dict[str, Path] = {}
    missing: list[ModelSpec] = []
    for role, spec in specs.items():
        try:
            paths[role] = resolve_model(spec, given[role], model_dir, download)
        except ModelNotFoundError:
            if given[role] is not None:
                raise
            missing.append(spec)
    if missing:
        raise ModelNotFoundError(missing_model_message(missing, Path(model_dir) if model_dir else None))
    if mode == "rtmo":
        return RTMODetector(paths["pose"], specs["pose"].input_size, device)
    return RTMPoseDetector(paths["pose"], paths["det"], specs["pose"].input_size, specs["det"].input_size, device)
