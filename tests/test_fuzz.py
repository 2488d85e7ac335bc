"""Malformed input over the commands: generated broken clips, BVH files, videos, checkpoints, session folders
and command-line arguments (200+ cases). Each must end with a non-zero exit and one line that says what is
wrong: no traceback, no hang, no raw Python message, and no model version or output file from bad input.

Most cases call the CLI's entry function in-process (`mvcapture.cli.main`, fast); a few run the real
`python -m mvcapture` to prove the exit path of the installed command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mvcapture.cli import main
from tests.conftest import REPO, SHARED_DATA
from tests.train_helpers import make_clip, tiny_weights

# Python's own wording, which must never reach the user in place of a message naming the file and key
RAW_PYTHON = ("Traceback", "invalid literal for int()", "could not convert string to float", "contains NaN or inf",
              "[Errno", "object has no attribute", "index out of range", "unsupported operand", "KeyError")
CASE_TIMEOUT_S = 60


def check_rejected(code: int, out: str, err: str) -> str:
    """The common assertions; returns the error message."""
    assert code not in (0, None), f"exit {code}; stdout: {out[-500:]}"
    for raw in RAW_PYTHON:
        assert raw not in out + err, f"{raw!r} in the output:\n{err[-2000:]}"
    errors = [line[line.index("error:"):] for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, f"expected one error line, got:\n{err[-2000:]}"
    message = errors[0][len("error:"):].strip()
    assert message, err
    return message


def run_main(argv: list[str], capsys) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return check_rejected(code, out, err)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


# --------------------------------------------------------------------------------------------- clips

def _valid_arrays() -> dict:
    clip = make_clip(T=30, size=(640, 480))
    return {"kp2d": clip.kp2d, "conf": clip.conf, "image_size": clip.image_size, "fps": np.float64(30.0),
            "gt3d": clip.gt3d}


def _with(**changes):
    def build(path: Path) -> None:
        arrays = _valid_arrays()
        for key, value in changes.items():
            if value is None:
                arrays.pop(key)
            else:
                arrays[key] = value(arrays[key]) if callable(value) else value
        np.savez(path, **arrays)
    return build


def _nan_where_seen(a):
    a = a.copy()
    a[0, 3, 5] = np.nan
    return a


def _set(index, value):
    def change(a):
        a = np.array(a, dtype=np.float64 if np.asarray(a).dtype.kind in "iu" and not float(value).is_integer()
                     else np.asarray(a).dtype, copy=True)
        a[index] = value
        return a
    return change


def _view_zero(a):
    a = a.copy()
    a[1] = 0.0
    return a


def _text(text: str, mode: str = "w"):
    def build(path: Path) -> None:
        if mode == "w":
            path.write_text(text)
        else:
            path.write_bytes(text)
    return build


def _truncated(path: Path) -> None:
    _with()(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pickled(path: Path) -> None:
    arrays = _valid_arrays()
    arrays["kp2d"] = np.array([{"x": 1}], dtype=object)
    np.savez(path, **arrays)


def _directory(path: Path) -> None:
    path.mkdir()


def _zip_without_arrays(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "not arrays")


# name -> (builder, commands it is malformed for: lift / finetune / eval)
ALL = ("lift", "finetune", "eval")
TRAINING = ("finetune", "eval")
CLIP_CASES = {
    **{f"missing_{k}": (_with(**{k: None}), ALL) for k in ("kp2d", "conf", "image_size", "fps")},
    "kp2d_16_joints": (_with(kp2d=np.zeros((2, 30, 16, 2), np.float32)), ALL),
    "kp2d_xyz": (_with(kp2d=np.zeros((2, 30, 17, 3), np.float32)), ALL),
    "kp2d_no_views": (_with(kp2d=np.zeros((30, 17, 2), np.float32)), ALL),
    "kp2d_scalar": (_with(kp2d=np.float32(1.0)), ALL),
    "conf_16_joints": (_with(conf=np.ones((2, 30, 16), np.float32)), ALL),
    "conf_short": (_with(conf=np.ones((2, 29, 17), np.float32)), ALL),
    "image_size_flat": (_with(image_size=np.array([640, 480])), ALL),
    "image_size_3_views": (_with(image_size=np.array([[640, 480]] * 3)), ALL),
    "image_size_3_values": (_with(image_size=np.array([[640, 480, 3]] * 2)), ALL),
    "gt3d_2d": (_with(gt3d=lambda g: g[..., :2]), ALL),
    "gt3d_short": (_with(gt3d=lambda g: g[:, 1:]), ALL),
    **{f"{k}_text": (_with(**{k: np.full(np.shape(v), "x")}), ALL)
       for k, v in _valid_arrays().items()},
    "fps_text": (_with(fps=np.array("thirty")), ALL),
    "kp2d_nan_seen": (_with(kp2d=_nan_where_seen), ALL),
    "kp2d_inf_seen": (_with(kp2d=_set((1, 0, 0, 0), np.inf)), ALL),
    "conf_nan": (_with(conf=_set((0, 0, 0), np.nan)), ALL),
    "conf_above_1": (_with(conf=_set((0, 0, 0), 1.5)), ALL),
    "conf_negative": (_with(conf=_set((1, 2, 3), -0.1)), ALL),
    "conf_all_zero": (_with(conf=lambda c: np.zeros_like(c)), ALL),
    "conf_view_zero": (_with(conf=_view_zero), ALL),
    "fps_nan": (_with(fps=np.float64(np.nan)), ALL),
    "fps_inf": (_with(fps=np.float64(np.inf)), ALL),
    "fps_zero": (_with(fps=np.float64(0.0)), ALL),
    "fps_negative": (_with(fps=np.float64(-30.0)), ALL),
    "fps_two": (_with(fps=np.array([30.0, 30.0])), ALL),
    "image_size_zero": (_with(image_size=np.zeros((2, 2), np.int32)), ALL),
    "image_size_negative": (_with(image_size=np.array([[-640, 480], [640, 480]])), ALL),
    "image_size_huge": (_with(image_size=np.array([[10**9, 480], [640, 480]])), ALL),
    "image_size_fraction": (_with(image_size=np.array([[640.5, 480.0], [640, 480]])), ALL),
    "image_size_nan": (_with(image_size=np.array([[np.nan, 480.0], [640, 480]])), ALL),
    "kp2d_1e30": (_with(kp2d=lambda k: np.full_like(k, 1e30)), ALL),
    "kp2d_minus_1e30": (_with(kp2d=_set((0, 4, 2, 1), -1e30)), ALL),
    "kp2d_beyond_100_images": (_with(kp2d=_set((1, 7, 9, 0), 1e6)), ALL),
    "gt3d_nan": (_with(gt3d=_set((0, 1, 2, 0), np.nan)), ALL),
    "gt3d_inf": (_with(gt3d=_set((1, 1, 2, 2), -np.inf)), ALL),
    "gt3d_km": (_with(gt3d=lambda g: g * 1e6), ALL),
    "no_frames": (_with(kp2d=lambda k: k[:, :0], conf=lambda c: c[:, :0], gt3d=lambda g: g[:, :0]), ALL),
    "one_view": (_with(kp2d=lambda k: k[:1], conf=lambda c: c[:1], image_size=lambda s: s[:1],
                       gt3d=lambda g: g[:1]), ("finetune",)),
    "gt3d_behind_camera": (_with(gt3d=lambda g: g * np.array([1, 1, -1], np.float32)), ("eval",)),
    "empty_file": (_text(""), ALL),
    "random_bytes": (_text(np.random.default_rng(0).bytes(4096), "b"), ALL),
    "text_file": (_text("kp2d,conf\n1,2\n"), ALL),
    "truncated": (_truncated, ALL),
    "pickled_object": (_pickled, ALL),
    "zip_without_arrays": (_zip_without_arrays, ALL),
    "directory": (_directory, ("lift",)),
    "nonexistent": (lambda path: None, ALL),
}
CLIP_RUNS = [(name, cmd) for name, (_, cmds) in CLIP_CASES.items() for cmd in cmds]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("name, command", CLIP_RUNS, ids=[f"{c}-{n}" for n, c in CLIP_RUNS])
def test_malformed_clip(name, command, tmp_path, weights, capsys, _isolated_home):
    folder = tmp_path / "clips"
    folder.mkdir()
    clip = folder / "clip.npz"
    CLIP_CASES[name][0](clip)
    before = files_under(tmp_path) | files_under(_isolated_home)
    out = tmp_path / "out.npz"
    if command == "lift":
        argv = ["lift", clip, "--model", weights, "--out", out]
    elif command == "finetune":
        argv = ["finetune", clip, "--model", weights, "--epochs", "1", "--variant", "l3d"]
    else:
        good = tmp_path / "good"
        good.mkdir()
        np.savez(good / "good.npz", **_valid_arrays())
        before |= files_under(good)
        train, test = (folder, good) if name == "one_view" else (good, folder)
        if name == "nonexistent":
            test = tmp_path / "missing"
        argv = ["eval", "--train", train, "--test", test, "--out", out, "--model", weights, "--variants",
                "baseline", "l3d", "--epochs", "1"]
    message = run_main(argv, capsys)
    if name != "nonexistent" and name != "directory" and command != "eval":
        assert "clip.npz" in message, message  # names the file
    assert files_under(tmp_path) | files_under(_isolated_home) <= before | files_under(_isolated_home / "logs")
    assert not out.exists()
    assert not list(_isolated_home.rglob("*.pt"))  # no model version


# ----------------------------------------------------------------------------------------------- BVH

def _base_bvh() -> str:
    files = sorted((SHARED_DATA / "mocap" / "cmu").glob("*.bvh"))
    if not files:
        pytest.skip("no CMU BVH files in the shared data")
    text = files[0].read_text()
    head, motion = text.split("MOTION", 1)
    lines = motion.strip().splitlines()
    frames = lines[2:42]
    return head + "MOTION\nFrames: 40\n" + lines[1] + "\n" + "\n".join(frames) + "\n"


BVH_CASES = {
    "empty": lambda t: "",
    "binary": lambda t: "\x00\x01\x02garbage\xff",
    "no_hierarchy": lambda t: t.replace("HIERARCHY", "HIERARCHX", 1),
    "no_motion": lambda t: t.split("MOTION")[0],
    "frames_text": lambda t: t.replace("Frames: 40", "Frames: forty"),
    "frames_negative": lambda t: t.replace("Frames: 40", "Frames: -3"),
    "frames_more_than_given": lambda t: t.replace("Frames: 40", "Frames: 4000"),
    "frames_missing": lambda t: t.replace("Frames: 40\n", ""),
    "frame_time_text": lambda t: t.replace("Frame Time:", "Frame Time: fast #"),
    "frame_time_zero": lambda t: _frame_time(t, "0"),
    "frame_time_negative": lambda t: _frame_time(t, "-0.016"),
    "frame_time_nan": lambda t: _frame_time(t, "nan"),
    "frame_time_inf": lambda t: _frame_time(t, "inf"),
    "value_text": lambda t: _last_values(t, lambda v: ["abc"] + v[1:]),
    "value_nan": lambda t: _last_values(t, lambda v: ["nan"] + v[1:]),
    "value_inf": lambda t: _last_values(t, lambda v: v[:-1] + ["inf"]),
    "too_few_values": lambda t: _last_values(t, lambda v: v[:-3]),
    "too_many_values": lambda t: _last_values(t, lambda v: v + ["0.0", "1.0"]),
    "channels_text": lambda t: t.replace("CHANNELS 6", "CHANNELS six", 1),
    "channels_too_many": lambda t: t.replace("CHANNELS 6", "CHANNELS 9", 1),
    "offset_text": lambda t: t.replace("OFFSET", "OFFSET x", 1),
    "offset_short": lambda t: _first_offset(t, "OFFSET 1.0"),
    "unbalanced_braces": lambda t: t.replace("}", "", 3),
    "truncated_hierarchy": lambda t: t[: len(t.split("MOTION")[0]) // 2],
    "unknown_channel": lambda t: t.replace("Xrotation", "Wrotation", 1),
    "no_root": lambda t: t.replace("ROOT", "JOINT", 1),
    "huge_offsets": lambda t: _first_offset(t, "OFFSET 1e300 1e300 1e300"),
    "latin1": lambda t: t.encode("utf-8").decode("utf-8") + "\xe9\xff",
}


def _frame_time(text: str, value: str) -> str:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("Frame Time"))
    lines[i] = f"Frame Time: {value}"
    return "\n".join(lines) + "\n"


def _last_values(text: str, edit) -> str:
    lines = text.rstrip("\n").splitlines()
    lines[-5] = " ".join(edit(lines[-5].split()))
    return "\n".join(lines) + "\n"


def _first_offset(text: str, replacement: str) -> str:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.strip().startswith("OFFSET"))
    lines[i] = replacement
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("name", list(BVH_CASES))
def test_malformed_bvh(name, tmp_path, capsys):
    src = tmp_path / "bvh"
    src.mkdir()
    text = BVH_CASES[name](_base_bvh())
    (src / "take.bvh").write_bytes(text.encode("utf-8", "surrogateescape") if name != "latin1"
                                   else text.encode("latin-1"))
    out = tmp_path / "clips"
    message = run_main(["data", "synth", src, out], capsys)
    assert "take.bvh" in message, message
    assert not list(out.glob("*.npz")) if out.exists() else True


# -------------------------------------------------------------------------------------------- videos

def _demo_video() -> Path:
    return REPO / "resources" / "demo" / "cam01.mp4"


VIDEO_CASES = {
    "empty": lambda p: p.write_bytes(b""),
    "random_bytes": lambda p: p.write_bytes(np.random.default_rng(1).bytes(50_000)),
    "text": lambda p: p.write_text("this is not a video\n"),
    "truncated_head": lambda p: p.write_bytes(_demo_video().read_bytes()[:2000]),
    "npz_renamed": lambda p: np.savez(p.with_suffix(".npz"), a=np.zeros(3)) or p.with_suffix(".npz").rename(p),
    "png_renamed": lambda p: p.write_bytes((REPO / "resources" / "icons" / "mvcapture.png").read_bytes()),
    "nonexistent": lambda p: None,
    "directory": lambda p: p.mkdir(),
}


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("name", list(VIDEO_CASES))
@pytest.mark.parametrize("order", ["second", "first"])
def test_malformed_video(name, order, tmp_path, capsys, _isolated_home):
    video = tmp_path / "take.mp4"
    VIDEO_CASES[name](video)
    videos = [_demo_video(), video] if order == "second" else [video, _demo_video()]
    message = run_main(["import", *videos, "--name", "fuzz"], capsys)
    assert "take.mp4" in message, message
    sessions = _isolated_home / "sessions"
    assert not sessions.exists() or not any(p.is_dir() for p in sessions.iterdir())


# ---------------------------------------------------------------------------------------- checkpoints

def _torch_save(obj):
    def build(path: Path) -> None:
        import torch

        torch.save(obj() if callable(obj) else obj, path)
    return build


def _state(change):
    def make():
        import torch

        state = torch.load(tiny_weights(Path(os.environ["MVCAPTURE_HOME"]) / "src.pt"), weights_only=True)
        sd = state["state_dict"]
        change(sd)
        return state
    return make


def _first_tensor(fn):
    def change(sd):
        key = next(k for k, v in sd.items() if hasattr(v, "dtype") and v.dtype.is_floating_point and v.numel() > 4)
        sd[key] = fn(sd[key])
    return change


def _drop_one(sd):
    sd.pop(next(iter(sd)))


CHECKPOINT_CASES = {
    "empty": lambda p: p.write_bytes(b""),
    "random_bytes": lambda p: p.write_bytes(np.random.default_rng(2).bytes(10_000)),
    "text": lambda p: p.write_text("weights"),
    "json": lambda p: p.write_text('{"model": 1}'),
    "zip_not_torch": _zip_without_arrays,
    "list": _torch_save([1, 2, 3]),
    "int": _torch_save(3),
    "dict_of_numbers": _torch_save({"a": 1, "b": 2}),
    "empty_dict": _torch_save({}),
    "truncated": lambda p: p.write_bytes(tiny_weights(p.with_name("ok.pt")).read_bytes()[:3000]),
    "missing_tensor": _torch_save(_state(_drop_one)),
    "wrong_shape": _torch_save(_state(_first_tensor(lambda t: t[..., :1].clone()))),
    "nan_weights": _torch_save(_state(_first_tensor(lambda t: t * float("nan")))),
    "inf_weights": _torch_save(_state(_first_tensor(lambda t: t + float("inf")))),
    "nonexistent": lambda p: None,
    "directory": lambda p: p.mkdir(),
    "bad_card": lambda p: (tiny_weights(p), p.with_suffix(".json").write_text("{not json")),
}


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("name", list(CHECKPOINT_CASES))
@pytest.mark.parametrize("command", ["lift", "finetune"])
def test_malformed_checkpoint(name, command, tmp_path, capsys, _isolated_home):
    clip = tmp_path / "clip.npz"
    np.savez(clip, **_valid_arrays())
    weights = tmp_path / "bad.pt"
    CHECKPOINT_CASES[name](weights)
    out = tmp_path / "out.npz"
    argv = (["lift", clip, "--model", weights, "--out", out] if command == "lift"
            else ["finetune", clip, "--model", weights, "--epochs", "1"])
    message = run_main(argv, capsys)
    assert "bad" in message, message
    assert not out.exists()
    assert not (_isolated_home / "models").exists() or not list((_isolated_home / "models").rglob("v*"))


# ----------------------------------------------------------------------------------- session folders

def _session(meta: str | None, files: dict | None = None):
    def build(path: Path) -> None:
        path.mkdir()
        if meta is not None:
            (path / "session.json").write_text(meta)
        for name, data in (files or {}).items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
    return build


SESSION_CASES = {
    "empty_folder": _session(None),
    "json_garbage": _session("{not json"),
    "json_list": _session("[1, 2]"),
    "views_not_list": _session('{"views": 3}'),
    "view_missing_video": _session('{"views": [{"media": "views/0.mp4"}, {"media": "views/1.mp4"}]}'),
    "one_view": _session('{"views": [{"media": "views/0.mp4"}]}', {"views/0.mp4": b"not a video"}),
    "videos_garbage": _session('{"views": [{"media": "views/0.mp4"}, {"media": "views/1.mp4"}]}',
                               {"views/0.mp4": b"x" * 100, "views/1.mp4": b""}),
    "media_escapes": _session('{"views": [{"media": "../../etc/passwd"}, {"media": "/dev/null"}]}'),
    "views_of_numbers": _session('{"views": [1, 2]}'),
}


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("name", list(SESSION_CASES))
@pytest.mark.parametrize("command", ["process", "sync", "export"])
def test_malformed_session_folder(name, command, tmp_path, capsys):
    folder = tmp_path / "session"
    SESSION_CASES[name](folder)
    before = files_under(folder)
    run_main([command, folder], capsys)
    written = {p for p in files_under(folder) - before if p.name != "session.json"}
    assert not {p for p in written if p.suffix in (".npz", ".csv", ".trc", ".bvh", ".mp4")}, written


# --------------------------------------------------------------------------------------- CLI arguments

LONG = "n" * 300
ARG_CASES = [
    ["finetune"],
    ["finetune", "{clip}", "--epochs", "0"],
    ["finetune", "{clip}", "--epochs", "-3"],
    ["finetune", "{clip}", "--epochs", "many"],
    ["finetune", "{clip}", "--batch-size", "0"],
    ["finetune", "{clip}", "--batch-size", "1.5"],
    ["finetune", "{clip}", "--lambda-con", "nan"],
    ["finetune", "{clip}", "--lambda-con", "-1"],
    ["finetune", "{clip}", "--nproc", "0"],
    ["finetune", "{clip}", "--variant", "l9d"],
    ["finetune", "{clip}", "--model", "v9999"],
    ["finetune", "{clip}", "--resume", "{tmp}/nojob"],
    ["finetune", "{tmp}/none.npz"],
    ["finetune", "{clip}", "--held-out", "{tmp}/none.npz"],
    ["train", "pretrain", "--data", "{tmp}", "--lr", "0"],
    ["train", "pretrain", "--data", "{tmp}", "--time-budget", "0"],
    ["train", "pretrain", "--data", "{tmp}", "--time-budget", "nan"],
    ["train", "pretrain", "--data", "{tmp}", "--epoch-steps", "-1"],
    ["train", "pretrain", "--data", "{tmp}", "--lr-schedule", "linear"],
    ["eval", "--train", "{tmp}", "--test", "{tmp}", "--out", "{tmp}/r.json", "--epochs", "0"],
    ["eval", "--train", "{tmp}", "--test", "{tmp}", "--out", "{tmp}/r.json", "--variants", "l4d"],
    ["eval", "--train", "{tmp}/x", "--test", "{tmp}/y", "--out", "{tmp}/r.json"],
    ["eval", "--test", "{tmp}", "--out", "{tmp}/r.json"],
    ["lift", "{clip}", "--height-m", "0"],
    ["lift", "{clip}", "--height-m", "-1.8"],
    ["lift", "{clip}", "--height-m", "nan"],
    ["lift", "{clip}", "--device", "tpu"],
    ["lift", "{clip}", "--model", "v0042"],
    ["lift", "{clip}", "--precision", "fp8"],
    ["lift", "{clip}", "--out", "{tmp}/" + LONG + ".npz"],
    ["lift", "{clip}", "--device", "cuda:x"],
    ["data", "synth", "{tmp}/nobvh", "{tmp}/o"],
    ["data", "synth", "{tmp}", "{tmp}/o", "--views", "0"],
    ["data", "synth", "{tmp}", "{tmp}/o", "--fps", "0"],
    ["data", "synth", "{tmp}", "{tmp}/o", "--angle", "nan"],
    ["data", "synth", "{tmp}", "{tmp}/o", "--noise", "-1"],
    ["models", "activate", "v0404"],
    ["models", "show", "nothing"],
    ["models", "export", "v0404", "{tmp}/x.pt"],
    ["process", "nosuchsession"],
    ["process", LONG],
    ["process", ""],
    ["process", "a\x01b"],
    ["sync", LONG],
    ["sync", "nosuchsession", "--manual-offset", "nan"],
    ["export", LONG],
    ["export", "nosuchsession", "--format", "xls"],
    ["sessions", LONG],
    ["import", "--name", LONG, "{tmp}/a.mp4", "{tmp}/b.mp4"],
    ["import", "--name", "x\x00y", "{tmp}/a.mp4", "{tmp}/b.mp4"],
    ["import", "{tmp}/a.mp4"],
    ["experiment", "--quick", "--bvh", "{tmp}/none", "--out", "{tmp}/e"],
    ["experiment", "--quick", "--split", "nosplit"],
    ["train", "pretrain"],
    ["train", "pretrain", "--data", "{tmp}/none", "--epochs", "0"],
    ["bench", "finetune", "--configs", "huge"],
    ["nosuchcommand"],
    ["--no-such-option"],
]


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("argv", ARG_CASES, ids=[" ".join(a)[:60] for a in ARG_CASES])
def test_bad_arguments(argv, tmp_path, capsys, _isolated_home):
    clip = tmp_path / "clip.npz"
    np.savez(clip, **_valid_arrays())
    argv = [a.replace("{clip}", str(clip)).replace("{tmp}", str(tmp_path)) for a in argv]
    before = files_under(tmp_path)
    try:
        code, parse_error = main(argv), False
    except SystemExit as exc:  # argparse's own exit
        code, parse_error = exc.code, True
    out, err = capsys.readouterr()
    check_rejected(code, out, err)
    if parse_error:  # the error alone: no usage text
        assert len(err.strip().splitlines()) == 1 and "--help" in err, err
    assert files_under(tmp_path) <= before
    assert not (_isolated_home / "models").exists() or not list((_isolated_home / "models").rglob("v*"))


# ---------------------------------------------------------------------------------- the real command

SUBPROCESS_CASES = [
    ["process", LONG],
    ["lift", "{tmp}/clip.npz"],
    ["finetune", "{tmp}/clip.npz", "--epochs", "1"],
    ["data", "synth", "{tmp}/bvh", "{tmp}/out"],
    ["finetune", "{clip}", "--epochs", "nope"],
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv", SUBPROCESS_CASES, ids=[" ".join(a)[:40] for a in SUBPROCESS_CASES])
def test_real_command_exits_with_one_line(argv, tmp_path):
    np.savez(tmp_path / "clip.npz", **{**_valid_arrays(), "conf": np.zeros((2, 30, 17), np.float32)})
    (tmp_path / "bvh").mkdir()
    (tmp_path / "bvh" / "take.bvh").write_text("HIERARCHY\nROOT hips\n{\n")
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{clip}", str(tmp_path / "clip.npz")) for a in argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "mvcapture", *argv], capture_output=True, text=True,
                          timeout=100, env=env, cwd=tmp_path)
    check_rejected(proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == 2


def test_at_least_200_cases():
    n = (len(CLIP_RUNS) + len(BVH_CASES) + 2 * len(VIDEO_CASES) + 2 * len(CHECKPOINT_CASES)
         + 3 * len(SESSION_CASES) + len(ARG_CASES) + len(SUBPROCESS_CASES))
    assert n >= 200, n
