"""Exports of a processed session: CSV, JSON, TRC (OpenSim/Pose2Sim) and BVH (Blender).

What is exported: each view's own 3D (camera frame of that view) with its 2D and confidence, the
`aligned` consensus: the mean of all views after mapping them onto view 0 (one similarity per sequence),
with the per-joint consistency residual, and, for sessions processed with two-view fusion, the `fused`
track (triangulated from both cameras, view 0's camera frame) with where each joint came from. 3D files use
metres. TRC and BVH are Y-up (OpenSim/Blender convention): a camera-frame point (x right, y down, z forward)
becomes (x, -y, -z).

Unknown joints (NaN, only in the fused track): CSV and TRC leave their fields empty, JSON writes null; BVH
needs every joint in every frame, so a gap of at most `BVH_MAX_GAP_S` is interpolated (the joint's offset
from its parent, linearly) and a longer one, or one at the clip's ends, holds the nearest known offset.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mvcapture.analysis import Analysis
from mvcapture.core.skeleton import H36M17_JOINTS, H36M17_PARENTS
from mvcapture.io.atomic import atomic_write_text

CAMERA_TO_YUP = np.diag([1.0, -1.0, -1.0])
BVH_ROTATION_ORDER = "ZXY"
# Leaves of the H36M-17 tree and the length of their end site, as a fraction of the leaf's bone.
_LEAVES = (3, 6, 10, 13, 16)
_END_SITE_FRACTION = 0.25
BVH_MAX_GAP_S = 0.5
# where each joint of the fused track came from (mvcapture.geometry.fusion SOURCE_*)
FUSED_SOURCE_NAMES = {0: "unknown", 1: "two-view triangulation", 2: "view 0's lift", 3: "view 1's lift"}


def export_tracks(analysis: Analysis) -> dict[str, dict[str, np.ndarray]]:
    """The tracks every format writes: `view{i}` (own camera frame), `aligned` (view 0's frame) and, when the
    session has one, `fused` (view 0's frame).

    Each view / aligned track: pose3d (T, 17, 3) m, conf (T, 17), residual_mm (T, 17); views also kp2d
    (T, 17, 2) px. The fused track: pose3d (T, 17, 3) m (NaN = unknown) and source (T, 17) int
    (FUSED_SOURCE_NAMES).
    """
    tracks = {}
    for v in range(analysis.num_views):
        tracks[f"view{v}"] = {
            "pose3d": analysis.pose3d[v], "kp2d": analysis.kp2d[v], "conf": analysis.conf[v],
            "residual_mm": analysis.residual_mm,
        }
    tracks["aligned"] = {
        "pose3d": analysis.aligned.mean(axis=0), "conf": analysis.conf.min(axis=0),
        "residual_mm": analysis.residual_mm,
    }
    if analysis.has_fused:
        source = analysis.fused_source if analysis.fused_source is not None \
            else np.isfinite(analysis.fused3d).all(-1).astype(np.int8)
        tracks["fused"] = {"pose3d": analysis.fused3d, "source": np.asarray(source, np.int8)}
    return tracks


def csv_columns(with_2d: bool, fused: bool = False) -> list[str]:
    """Column names of the CSV export: frame, time_s, then per joint x, y, z (m), [u, v (px)], conf, residual_mm;
    for the fused track x, y, z (m) and source (FUSED_SOURCE_NAMES)."""
    cols = ["frame", "time_s"]
    for name in H36M17_JOINTS:
        cols += [f"{name}_x_m", f"{name}_y_m", f"{name}_z_m"]
        if with_2d:
            cols += [f"{name}_u_px", f"{name}_v_px"]
        cols += [f"{name}_source"] if fused else [f"{name}_conf", f"{name}_residual_mm"]
    return cols


def _field(x: float) -> str:
    """A CSV / TRC number; an unknown value (NaN) is an empty field."""
    return f"{x:.6g}" if np.isfinite(x) else ""


def to_csv(track: dict[str, np.ndarray], times_s: np.ndarray) -> str:
    with_2d = "kp2d" in track
    fused = "source" in track
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_columns(with_2d, fused))
    parts = [track["pose3d"]]
    if with_2d:
        parts.append(track["kp2d"])
    if fused:
        parts.append(track["source"][..., None])
    else:
        parts += [track["conf"][..., None], track["residual_mm"][..., None]]
    per_joint = np.concatenate(parts, axis=-1).reshape(len(times_s), -1)
    for t, row in enumerate(per_joint):
        writer.writerow([t, f"{times_s[t]:.6f}"] + [_field(x) for x in row])
    return buf.getvalue()


def _json_values(values: np.ndarray) -> list:
    """Nested lists rounded to 6 decimals, None (JSON null) where a value is unknown (NaN)."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return values.tolist()
    rounded = np.round(values.astype(np.float64), 6)
    return np.where(np.isfinite(rounded), rounded, None).tolist()


def to_json(analysis: Analysis) -> str:
    """All tracks in one JSON document (nested lists: frames × joints × xyz)."""
    doc = {
        "format": "mvcapture-export", "version": 1, "units": {"pose3d": "m", "kp2d": "px", "residual": "mm"},
        "coordinate_frame": "camera of each view (x right, y down, z forward); aligned and fused: view0's camera",
        "joints": list(H36M17_JOINTS), "fps": analysis.fps, "times_s": np.round(analysis.times_s, 6).tolist(),
        "camera_angle_deg": np.round(analysis.angle_deg, 3).tolist(),
        "tracks": {name: {k: _json_values(v) for k, v in tr.items()}
                   for name, tr in export_tracks(analysis).items()},
    }
    if analysis.has_fused:
        doc["fused_source_names"] = {str(k): v for k, v in FUSED_SOURCE_NAMES.items()}
    return json.dumps(doc, allow_nan=False)


def to_trc(pose3d_m: np.ndarray, fps: float, name: str = "mvcapture.trc") -> str:
    """OpenSim TRC text: Y-up metres, markers named after the H36M-17 joints.

    Args:
        pose3d_m: (T, 17, 3) camera-frame metres; NaN (an unknown joint) becomes empty fields, which
            OpenSim reads as a marker missing in that frame.
    """
    yup = pose3d_m @ CAMERA_TO_YUP.T
    T = len(yup)
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{fps:.2f}\t{fps:.2f}\t{T}\t17\tm\t{fps:.2f}\t1\t{T}",
        "Frame#\tTime\t" + "\t\t\t".join(H36M17_JOINTS) + "\t\t",
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, 18)),
        "",
    ]
    for t in range(T):
        lines.append(f"{t + 1}\t{t / fps:.6f}\t" + "\t".join(f"{x:.6f}" if np.isfinite(x) else ""
                                                               for x in yup[t].ravel()))
    return "\n".join(lines) + "\n"


def read_trc(text: str) -> tuple[np.ndarray, float, list[str]]:
    """Read a TRC written by `to_trc` (or OpenSim): (T, M, 3) Y-up positions in its units (NaN where a
    marker is missing), rate, names."""
    lines = text.splitlines()
    rate = float(lines[2].split("\t")[0])
    names = [n for n in lines[3].split("\t")[2:] if n]
    rows = [ln.split("\t") for ln in lines[6:] if ln.strip()]
    width = 3 * len(names)
    data = np.array([[float(x) if x.strip() else np.nan for x in (r[2:2 + width] + [""] * width)[:width]]
                     for r in rows])
    return data.reshape(len(rows), len(names), 3), rate, names


def _children(j: int) -> list[int]:
    return [int(c) for c in np.flatnonzero(H36M17_PARENTS == j)]


def _batched_kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotations R (T, 3, 3) with R @ src[t, k] ≈ dst[t, k]; src, dst (T, K, 3), K ≥ 1."""
    if src.shape[1] == 1:
        return _min_rotation(src[:, 0], dst[:, 0])
    h = np.einsum("tki,tkj->tij", dst, src)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= d[:, None]
    return u @ vt


def _min_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation (T, 3, 3) taking direction a (T, 3) to direction b (T, 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.sum(a * b, axis=-1)
    angle = np.arctan2(sin, cos)
    safe = np.where(sin[:, None] > 1e-9, axis / np.maximum(sin, 1e-12)[:, None], 0.0)
    # anti-parallel: any axis perpendicular to a
    flip = (sin <= 1e-9) & (cos < 0)
    if flip.any():
        perp = np.cross(a[flip], np.array([1.0, 0.0, 0.0]))
        bad = np.linalg.norm(perp, axis=-1) < 1e-6
        perp[bad] = np.cross(a[flip][bad], np.array([0.0, 1.0, 0.0]))
        safe[flip] = perp / np.linalg.norm(perp, axis=-1, keepdims=True)
        angle[flip] = np.pi
    return Rotation.from_rotvec(safe * angle[:, None]).as_matrix()


def solve_bvh(pose_yup: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rest offsets and per-frame local rotations that reproduce the joint positions by FK.

    The rest pose takes each bone's direction from the first frame and its length from the clip's
    median, so a rigid skeleton (constant bone lengths) is reproduced exactly; branching joints
    (pelvis, thorax) get the best rotation of all their child bones (Kabsch).

    Args:
        pose_yup: (T, 17, 3) metres, Y up.

    Returns:
        offsets (17, 3) m, local rotations (T, 17, 3, 3), root positions (T, 3) m.
    """
    T = len(pose_yup)
    offsets = np.zeros((17, 3))
    for j in range(1, 17):
        p = H36M17_PARENTS[j]
        bone = pose_yup[:, j] - pose_yup[:, p]
        length = np.median(np.linalg.norm(bone, axis=-1))
        direction = bone[0] / max(np.linalg.norm(bone[0]), 1e-9)
        offsets[j] = direction * length
    glob = np.zeros((T, 17, 3, 3))
    local = np.zeros((T, 17, 3, 3))
    for j in range(17):  # H36M17_PARENTS[j] < j, so parents are solved first
        kids = _children(j)
        parent_rot = glob[:, H36M17_PARENTS[j]] if j > 0 else np.broadcast_to(np.eye(3), (T, 3, 3))
        if kids:
            src = np.broadcast_to(offsets[kids], (T, len(kids), 3))
            dst = pose_yup[:, kids] - pose_yup[:, j:j + 1]
            glob[:, j] = _batched_kabsch(src, dst)
        else:
            glob[:, j] = parent_rot
        local[:, j] = np.swapaxes(parent_rot, -1, -2) @ glob[:, j]
    return offsets, local, pose_yup[:, 0].copy()


def fill_gaps(pose3d_m: np.ndarray, fps: float, max_gap_s: float = BVH_MAX_GAP_S) -> np.ndarray:
    """Every joint in every frame, for formats that cannot leave one out (BVH).

    A joint is filled as its offset from its parent (the pelvis as its position), so a filled limb moves
    with the body: gaps of at most `max_gap_s` are interpolated linearly between the known frames around
    them; longer gaps, and gaps at the clip's ends, hold the nearest known offset. A joint never known
    sits on its parent (a bone of length zero).

    Args:
        pose3d_m: (T, 17, 3) metres, NaN where unknown; fps: frames per second.

    Returns:
        (T, 17, 3) without NaN (float64).

    Raises:
        ValueError: the pelvis is unknown in every frame.
    """
    pose = np.asarray(pose3d_m, np.float64)
    T = len(pose)
    known = np.isfinite(pose).all(-1)
    if not known[:, 0].any():
        raise ValueError("the track has no frame with a known pelvis: nothing to export as BVH")
    max_gap = int(np.floor(max_gap_s * fps + 1e-9))
    frames = np.arange(T)
    out = np.empty_like(pose)
    for j in range(17):  # parents come first
        parent = H36M17_PARENTS[j]
        rel = pose[:, j] - (pose[:, parent] if j > 0 else 0.0)
        ok = known[:, j] & (known[:, parent] if j > 0 else True)
        if not ok.any():
            filled = np.zeros((T, 3))
        else:
            idx = np.flatnonzero(ok)
            after = np.clip(np.searchsorted(idx, frames), 0, len(idx) - 1)
            before = np.clip(after - 1 + (idx[after] == frames), 0, len(idx) - 1)
            prev, nxt = idx[before], idx[after]
            inside = (prev < frames) & (frames < nxt)
            short = inside & (nxt - prev - 1 <= max_gap)
            w = np.where(short, (frames - prev) / np.maximum(nxt - prev, 1), 0.0)[:, None]
            nearest = np.where((np.abs(frames - prev) <= np.abs(nxt - frames))[:, None], rel[prev], rel[nxt])
            filled = np.where(short[:, None], (1 - w) * rel[prev] + w * rel[nxt], nearest)
            filled[ok] = rel[ok]
        out[:, j] = filled + (out[:, parent] if j > 0 else 0.0)
    return out


def to_bvh(pose3d_m: np.ndarray, fps: float) -> str:
    """BVH text (centimetres, Y up) of an H36M-17 skeleton that reproduces `pose3d_m` by FK.

    Args:
        pose3d_m: (T, 17, 3) camera-frame metres (root-relative or not); unknown joints (NaN) are filled
            first (`fill_gaps`).
    """
    pose_yup = fill_gaps(pose3d_m, fps) @ CAMERA_TO_YUP.T
    offsets, local, root = solve_bvh(pose_yup)
    cm = 100.0
    lines = ["HIERARCHY"]

    def write(j: int, depth: int) -> None:
        pad = "  " * depth
        name = H36M17_JOINTS[j]
        if j == 0:
            lines.append(f"ROOT {name}")
        else:
            lines.append(f"{pad}JOINT {name}")
        lines.append(pad + "{")
        off = offsets[j] * cm
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        rot_channels = " ".join(f"{axis}rotation" for axis in BVH_ROTATION_ORDER)
        if j == 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot_channels}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {rot_channels}")
        kids = _children(j)
        for c in kids:
            write(c, depth + 1)
        if not kids:
            end = offsets[j] * _END_SITE_FRACTION * cm
            lines.append(f"{pad}  End Site")
            lines.append(pad + "  {")
            lines.append(f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}")
            lines.append(pad + "  }")
        lines.append(pad + "}")

    write(0, 0)
    order = []

    def visit(j: int) -> None:
        order.append(j)
        for c in _children(j):
            visit(c)

    visit(0)
    T = len(pose_yup)
    euler = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_euler(BVH_ROTATION_ORDER, degrees=True).reshape(T, 17, 3)
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / fps:.8f}"]
    for t in range(T):
        values = list(root[t] * cm)
        for j in order:
            values += list(euler[t, j])
        lines.append(" ".join(f"{v:.6f}" for v in values))
    return "\n".join(lines) + "\n"


FORMATS = ("csv", "json", "trc", "bvh")


def export_analysis(analysis: Analysis, out_dir: Path | str, formats=FORMATS, stem: str = "session") -> list[Path]:
    """Write the chosen formats for every track into `out_dir`; returns the written files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export format(s) {sorted(unknown)}; choose from {list(FORMATS)}")
    written = []
    tracks = export_tracks(analysis)
    if "json" in formats:
        path = out_dir / f"{stem}.json"
        atomic_write_text(path, to_json(analysis))
        written.append(path)
    for name, track in tracks.items():
        if "csv" in formats:
            path = out_dir / f"{stem}_{name}.csv"
            atomic_write_text(path, to_csv(track, analysis.times_s))
            written.append(path)
        if "trc" in formats:
            path = out_dir / f"{stem}_{name}.trc"
            atomic_write_text(path, to_trc(track["pose3d"], analysis.fps, path.name))
            written.append(path)
        if "bvh" in formats:
            path = out_dir / f"{stem}_{name}.bvh"
            atomic_write_text(path, to_bvh(track["pose3d"], analysis.fps))
            written.append(path)
    return written
