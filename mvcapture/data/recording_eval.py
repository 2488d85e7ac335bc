"""How a lifter does on a calibrated real recording (`mvcapture eval-recording`): each view lifted alone, as
`mvcapture process` lifts it, against the triangulated reference seen from that camera, and the camera angles
the lifts imply for every camera pair against the calibration's.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from mvcapture.core.metrics import mpjpe, n_mpjpe, pa_mpjpe
from mvcapture.core.procrustes import optical_axis_angle_deg, procrustes, rotation_angle_deg
from mvcapture.core.sides import repair_side_swaps
from mvcapture.core.skeleton import coco_to_h36m
from mvcapture.data.calibrated import (InvalidRecordingError, Recording, load_calibrated_recording,
                                       reference_3d, relative_rotation, to_camera,
                                       triangulate_reference)


def default_pairs(recording: Recording) -> list[tuple[str, str]]:
    """Every camera pair of the recording, (first, second) in calibration order."""
    return list(itertools.combinations(recording.names, 2))


def parse_pairs(text: str, recording: Recording) -> list[tuple[str, str]]:
    """`"01-04,02-03"` (numbers or full camera names) → [("cam01", "cam04"), ("cam02", "cam03")]."""
    pairs = []
    for item in text.split(","):
        parts = item.strip().split("-")
        if len(parts) != 2 or not all(parts):
            raise InvalidRecordingError(f"--pairs: {item!r} is not a camera pair like 01-04")
        a, b = (recording.camera(p).name for p in parts)
        if a == b:
            raise InvalidRecordingError(f"--pairs: {item!r} pairs a camera with itself")
        pairs.append((a, b))
    return pairs


def lift_recording(recording: Recording, lifter, flip: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lift every camera's detections alone, the way `mvcapture process` lifts a view: COCO-17 → H36M-17, the
    detector's left/right swaps undone (`core.sides.repair_side_swaps`), `Lifter.lift_clip` (flip test-time
    augmentation), `to_metres` with the athlete's default height.

    Returns:
        pose3d_m (V, T, 17, 3) root-relative metres in each camera's frame, conf (V, T, 17) H36M-17 and
        side_order (V, T, 17) int, the detected joint each lifted joint came from (np.arange(17) where no
        swap was undone).
    """
    from mvcapture.lifter.runtime import to_metres

    poses, confs, orders = [], [], []
    for v, cam in enumerate(recording.cameras):
        kp, conf = coco_to_h36m(recording.kp2d_coco_px[v].astype(np.float32),
                                recording.conf_coco[v].astype(np.float32))
        kp, conf, order = repair_side_swaps(kp, conf, recording.fps)
        pose_norm = lifter.lift_clip(kp, conf, cam.image_size, flip=flip)
        poses.append(to_metres(pose_norm, cam.image_size))
        confs.append(conf)
        orders.append(order)
    return np.stack(poses).astype(np.float64), np.stack(confs).astype(np.float64), np.stack(orders)


def reference_in_cameras(recording: Recording, reference_world_m: np.ndarray | None = None) -> np.ndarray:
    """(V, T, 17, 3) the reference (world metres, default `reference_3d`) in each camera's frame, pelvis-relative."""
    world = reference_3d(recording) if reference_world_m is None else np.asarray(reference_world_m, np.float64)
    cams = np.stack([to_camera(world, cam) for cam in recording.cameras])
    return cams - cams[:, :, :1]


def _depth_ratio(pose: np.ndarray) -> float:
    """Median over frames of the pose's depth spread (z) over its width spread (x): how flat it is."""
    spread = pose.max(-2) - pose.min(-2)
    return float(np.median(spread[:, 2] / np.maximum(spread[:, 0], 1e-9)))


def evaluate_lifts(recording: Recording, pose3d_m: np.ndarray, conf: np.ndarray,
                   pairs: list[tuple[str, str]] | None = None,
                   reference_world_m: np.ndarray | None = None) -> dict:
    """Score per-view lifts of `recording` against its reference and the calibration.

    Args:
        pose3d_m: (V, T, 17, 3) each camera's lift, root-relative metres in its camera frame.
        conf: (V, T, 17) H36M-17 confidences; they weight the sequence Procrustes between two views (as
            `mvcapture process` does).
        pairs: camera name pairs (default: all).
        reference_world_m: (T, 17, 3) world reference (default `reference_3d(recording)`).

    Returns:
        {"n_frames", "views": {name: {"n_mpjpe", "pa_mpjpe", "mpjpe", "orientation_error_deg", "depth_ratio",
         "reference_depth_ratio"}},
         "pairs": [{"pair": "a-b", "cameras": [a, b], "optical_axis_angle_deg": {"lifter", "calibration",
         "error"}, "relative_rotation_deg": {...}}]} — errors in mm over the frames where the whole reference
         is known, angles in degrees (lifter − calibration). orientation_error_deg: the angle of the one rotation
         (sequence Procrustes) that best turns the view's lift onto the reference in that camera — how far the
         lifter misjudges the athlete's orientation to the camera; a pair's angle errors come from these.
    """
    ref = reference_in_cameras(recording, reference_world_m)
    pose3d_m = np.asarray(pose3d_m, np.float64)
    conf = np.asarray(conf, np.float64)
    if pose3d_m.shape != ref.shape or conf.shape != ref.shape[:-1]:
        raise ValueError(f"pose3d_m must be {ref.shape} and conf {ref.shape[:-1]}, got {pose3d_m.shape} and "
                         f"{conf.shape}")
    known = np.isfinite(ref).all((0, 2, 3))
    if not known.any():
        raise InvalidRecordingError(f"{recording.folder}: the reference 3D is incomplete in every frame")
    pose = pose3d_m - pose3d_m[:, :, :1]
    views = {}
    for v, name in enumerate(recording.names):
        p, g = pose[v, known], ref[v, known]
        turn = procrustes(p, g, None, mode="sequence").R  # the lift's orientation in its camera, corrected
        views[name] = {"n_mpjpe": n_mpjpe(p, g), "pa_mpjpe": pa_mpjpe(p, g), "mpjpe": mpjpe(p, g),
                       "orientation_error_deg": float(rotation_angle_deg(turn)),
                       "depth_ratio": _depth_ratio(p), "reference_depth_ratio": _depth_ratio(g)}
    rows = []
    for a, b in pairs or default_pairs(recording):
        ia, ib = recording.index(a), recording.index(b)
        fit = procrustes(pose[ib], pose[ia], conf[ia] * conf[ib], mode="sequence")
        calib = relative_rotation(recording.cameras[ia], recording.cameras[ib])
        row = {"pair": f"{a}-{b}", "cameras": [a, b]}
        for key, fn in (("optical_axis_angle_deg", optical_axis_angle_deg),
                        ("relative_rotation_deg", rotation_angle_deg)):
            lifted, truth = float(fn(fit.R)), float(fn(calib))
            row[key] = {"lifter": lifted, "calibration": truth, "error": lifted - truth}
        rows.append(row)
    return {"n_frames": int(known.sum()), "views": views, "pairs": rows}


def evaluate_recording(folder: Path | str, model="default", pairs: str | None = None, flip: bool = True) -> dict:
    """`evaluate_lifts` of `model` (a Lifter or a `load_lifter` spec) on the recording in `folder`."""
    from mvcapture.lifter import load_lifter
    from mvcapture.lifter.runtime import Lifter

    recording = load_calibrated_recording(folder)
    chosen = parse_pairs(pairs, recording) if pairs else None
    lifter = model if isinstance(model, Lifter) else load_lifter(model)
    triangulation = triangulate_reference(recording)
    pose, conf, side_order = lift_recording(recording, lifter, flip=flip)
    result = evaluate_lifts(recording, pose, conf, chosen, triangulation.h36m())
    repaired = (side_order != np.arange(17)).any(-1)  # (V, T)
    for v, name in enumerate(recording.names):
        result["views"][name]["side_swapped_frames"] = int(triangulation.swapped[:, v].sum())
        result["views"][name]["side_repaired_frames"] = int(repaired[v].sum())
        result["views"][name]["side_repair_agreement"] = float((repaired[v] == triangulation.swapped[:, v]).mean())
    result["reference_reprojection_px"] = {name: float(np.nanmedian(triangulation.reprojection_px[:, v]))
                                           for v, name in enumerate(recording.names)}
    card = lifter.card or {}
    result.update({"recording": str(Path(folder)), "cameras": recording.names, "flip": flip,
                   "model": {"name": card.get("name"), "version": card.get("version"),
                             "sha256": card.get("sha256"), "config": lifter.config_name}})
    return result


def format_table(result: dict) -> str:
    """The result of `evaluate_lifts` as a text table, one row per camera pair."""
    head = (f"{'pair':<12} {'view':<6} {'N-MPJPE':>8} {'PA-MPJPE':>9}   {'view':<6} {'N-MPJPE':>8} {'PA-MPJPE':>9}"
            f"   {'axes° lifter':>12} {'calib':>6} {'error':>6}   {'rot° lifter':>11} {'calib':>6}")
    lines = [head, "-" * len(head)]
    for row in result["pairs"]:
        a, b = row["cameras"]
        va, vb = result["views"][a], result["views"][b]
        ax, rot = row["optical_axis_angle_deg"], row["relative_rotation_deg"]
        lines.append(f"{row['pair']:<12} {a:<6} {va['n_mpjpe']:8.1f} {va['pa_mpjpe']:9.1f}   {b:<6} "
                     f"{vb['n_mpjpe']:8.1f} {vb['pa_mpjpe']:9.1f}   {ax['lifter']:12.1f} {ax['calibration']:6.1f} "
                     f"{ax['error']:+6.1f}   {rot['lifter']:11.1f} {rot['calibration']:6.1f}")
    lines.append(f"(mm over {result['n_frames']} frames; each view lifted alone, no fine-tuning, no stereo)")
    turned = {k: v["orientation_error_deg"] for k, v in result["views"].items() if "orientation_error_deg" in v}
    if turned:
        lines.append("each view's orientation error (the rotation that best turns its lift onto the reference): "
                     + ", ".join(f"{k} {v:.1f}°" for k, v in turned.items()))
    swaps = {k: v for k, v in result["views"].items() if v.get("side_swapped_frames") or v.get("side_repaired_frames")}
    if swaps:
        lines.append("left/right swaps of the detector, by the 4-camera reference / undone before lifting (frames "
                     "agreeing): " + ", ".join(f"{k}: {v['side_swapped_frames']} / {v.get('side_repaired_frames', 0)} "
                                               f"({100 * v.get('side_repair_agreement', 0):.0f} %)"
                                               for k, v in swaps.items()))
    return "\n".join(lines)
