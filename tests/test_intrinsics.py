"""Lens intrinsics: checkerboard calibration against rendered boards of a known camera, the CAM.json format,
undistortion against OpenCV's projection, phone focal metadata, and the calibrate-intrinsics command."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from mvcapture.cli import main
from mvcapture.errors import InvalidIntrinsicsError, MvcaptureError
from mvcapture.geometry.intrinsics import (
    Intrinsics,
    calibrate_intrinsics,
    default_intrinsics,
    focal_from_metadata,
    focal_from_tags,
    load_intrinsics,
    save_intrinsics,
    undistort_points,
)
from mvcapture.paths import resources_dir
from tests.capture_media import make_video, media  # noqa: F401 (fixture)

TRUE_SIZE = (640, 480)
TRUE_K = np.array([[620.0, 0.0, 326.0], [0.0, 614.0, 236.0], [0.0, 0.0, 1.0]])
TRUE_DIST = np.array([-0.18, 0.06, 0.001, -0.0015, 0.0])
BOARD = (4, 7)      # inner corners
SQUARE_M = 0.03
# board poses: rotation vector (rad) and the board centre in the camera frame (m)
POSES = [((0.0, 0.0, 0.1), (0.0, 0.0, 0.55)), ((0.45, 0.0, 0.0), (-0.08, 0.04, 0.6)),
         ((-0.4, 0.2, 0.0), (0.09, -0.05, 0.6)), ((0.0, 0.5, 0.3), (0.1, 0.06, 0.65)),
         ((0.2, -0.5, -0.2), (-0.1, -0.06, 0.62)), ((0.35, 0.35, 1.4), (0.0, 0.08, 0.58)),
         ((-0.3, -0.35, -0.5), (0.12, 0.0, 0.7)), ((0.1, 0.6, 0.0), (-0.12, 0.02, 0.66))]


def render_board(rvec, centre, size=TRUE_SIZE, K=TRUE_K, dist=TRUE_DIST, board=BOARD, supersample=4) -> np.ndarray:
    """Grey uint8 (h, w) picture of a checkerboard (white margin of one square) seen by camera (K, dist).

    Every square is a filled polygon through 8 projected points per edge (so its edges bend with the lens
    distortion), drawn at `supersample` times the size and averaged down (anti-aliasing)."""
    cols, rows = board[0] + 1, board[1] + 1          # squares
    w, h = size
    big_K = K.copy()
    big_K[:2] *= supersample
    big_K[:2, 2] += (supersample - 1) / 2          # pixel centres of the big image map onto the small one
    image = np.full((h * supersample, w * supersample), 90, np.uint8)
    R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    offset = np.array([cols * SQUARE_M / 2, rows * SQUARE_M / 2, 0.0])
    t = np.asarray(centre, np.float64)

    def polygon(x0, y0, x1, y1):
        s = np.linspace(0, 1, 8, endpoint=False)
        xs, ys = x0 + (x1 - x0) * s, y0 + (y1 - y0) * s
        edge = [np.stack([xs, np.full_like(s, y0)], 1), np.stack([np.full_like(s, x1), ys], 1),
                np.stack([xs[::-1] + (x1 - x0) / 8, np.full_like(s, y1)], 1),
                np.stack([np.full_like(s, x0), ys[::-1] + (y1 - y0) / 8], 1)]
        pts = np.concatenate(edge) * SQUARE_M
        world = np.concatenate([pts, np.zeros((len(pts), 1))], 1) - offset
        px, _ = cv2.projectPoints(world, cv2.Rodrigues(R)[0], t, big_K, dist)
        return np.round(px.reshape(-1, 2) * 16).astype(np.int32)  # 4 fractional bits

    cv2.fillPoly(image, [polygon(-1, -1, cols + 1, rows + 1)], 255, cv2.LINE_AA, shift=4)
    for i in range(cols):
        for j in range(rows):
            if (i + j) % 2 == 0:
                cv2.fillPoly(image, [polygon(i, j, i + 1, j + 1)], 0, cv2.LINE_AA, shift=4)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def board_pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("board")
    paths = []
    for k, (rvec, centre) in enumerate(POSES):
        path = folder / f"board_{k}.png"
        cv2.imwrite(str(path), render_board(rvec, centre))
        paths.append(path)
    (folder / "empty.png").parent.mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "empty.png"), np.full(TRUE_SIZE[::-1], 90, np.uint8))
    return folder, paths


def test_calibration_recovers_the_camera_that_rendered_the_boards(board_pictures):
    folder, paths = board_pictures
    seen = []
    result = calibrate_intrinsics([*paths, folder / "empty.png"], board=BOARD, square_mm=30.0,
                                  progress=lambda f, m: seen.append((f, m)))
    assert result["views_used"] == len(POSES) and result["not_found"] == ["empty.png"]
    assert result["image_size"] == list(TRUE_SIZE) and result["rms_px"] < 0.3
    for key, truth in (("fx", TRUE_K[0, 0]), ("fy", TRUE_K[1, 1]), ("cx", TRUE_K[0, 2]), ("cy", TRUE_K[1, 2])):
        assert result[key] == pytest.approx(truth, rel=0.01), key
    assert result["dist"][0] == pytest.approx(TRUE_DIST[0], abs=0.03)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == 1.0
    assert seen[-1][1] == "empty.png: board not found"


def test_calibration_from_a_video_of_the_board(board_pictures, tmp_path):
    """Frames of a video are searched too (the same boards, each held for two frames, at twice the size so the
    board is searched in a smaller copy of each frame and refined in the frame itself)."""
    from mvcapture.io.video import VideoWriter

    _, paths = board_pictures
    path = tmp_path / "board.mp4"
    size = (2 * TRUE_SIZE[0], 2 * TRUE_SIZE[1])
    with VideoWriter(path, *size, fps=10, crf=12) as writer:
        for p in paths:
            frame = cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_CUBIC)
            for _ in range(2):
                writer.write(frame)
    result = calibrate_intrinsics([path], board=BOARD)
    assert result["pictures_searched"] == 2 * len(paths) and result["views_used"] >= 2 * len(paths) - 2
    assert result["image_size"] == list(size) and result["found_in"][0] == "board.mp4@0.00s"
    for key, truth in (("fx", 2 * TRUE_K[0, 0]), ("fy", 2 * TRUE_K[1, 1]), ("cx", 2 * TRUE_K[0, 2] + 0.5),
                       ("cy", 2 * TRUE_K[1, 2] + 0.5)):
        assert result[key] == pytest.approx(truth, rel=0.01), key


def test_calibration_says_what_is_wrong(board_pictures, tmp_path):
    folder, paths = board_pictures
    with pytest.raises(MvcaptureError, match=r"the 5x5 board was found in 0 of 2 pictures or frames.*6x6 squares"):
        calibrate_intrinsics(paths[:2], board=(5, 5))
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((100, 200), np.uint8))
    with pytest.raises(MvcaptureError, match="big.png is 200x100 px but board_0.png is 640x480"):
        calibrate_intrinsics([paths[0], tmp_path / "big.png"])
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    with pytest.raises(MvcaptureError, match="broken.jpg: not a readable picture"):
        calibrate_intrinsics([tmp_path / "broken.jpg"])


def test_demo_board_pictures_give_the_known_focal_length(shared_data):
    """The Pose2Sim demo's own intrinsic pictures of cam01 (board found in 6 of 7): f ≈ 1671 px."""
    pictures = sorted((shared_data / "video" / "pose2sim_demo" / "intrinsics").glob("cam01_*.jpg"))
    result = calibrate_intrinsics(pictures, board=(4, 7), square_mm=60.0)
    assert result["fx"] == pytest.approx(1671, rel=0.01) and result["fy"] == pytest.approx(1671, rel=0.01)
    assert result["views_used"] == 6 and result["image_size"] == [1088, 1920] and 0.1 < result["rms_px"] < 0.9


def _valid() -> dict:
    return {"fx": 1500.0, "fy": 1490.0, "cx": 540.0, "cy": 960.0, "dist": [0.1, -0.02, 0.0, 0.0, 0.01],
            "image_size": [1080, 1920], "rms_px": 0.4, "board": [4, 7]}


def test_json_round_trip_keeps_every_key(tmp_path):
    path = save_intrinsics(tmp_path / "cam.json", _valid())
    lens = load_intrinsics(path)
    assert lens.to_dict() == _valid() and json.loads(path.read_text()) == _valid()
    np.testing.assert_array_equal(lens.K, [[1500, 0, 540], [0, 1490, 960], [0, 0, 1]])
    assert lens.dist.shape == (5,) and lens.image_size == (1080, 1920) and lens.extra == {"board": [4, 7]}
    assert load_intrinsics(save_intrinsics(tmp_path / "again.json", lens)).to_dict() == _valid()
    assert not list(tmp_path.glob(".*.tmp")), "atomic write leaves no temporary file"


@pytest.mark.parametrize("change, message", [
    ({"fx": None}, "missing key 'fx'"),
    ({"fy": -3.0}, "key 'fy' .*must be > 0"),
    ({"cx": float("nan")}, "key 'cx' is nan"),
    ({"dist": [0.1, 0.2]}, "key 'dist' must be 5 numbers"),
    ({"image_size": [1080]}, "key 'image_size' must be \\[width, height\\]"),
    ({"cy": 1950.0}, "key 'cy' = 1950.0 lies outside the 1080x1920 image"),
    ({"fx": "1500"}, "key 'fx' must be a number"),
])
def test_invalid_intrinsics_name_the_file_and_key(tmp_path, change, message):
    data = {k: v for k, v in {**_valid(), **change}.items() if v is not None}
    path = tmp_path / "CAM.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidIntrinsicsError, match=f"CAM.json: {message}"):
        load_intrinsics(path)
    with pytest.raises(InvalidIntrinsicsError, match="CAM.json"):
        save_intrinsics(path, data)


def test_unreadable_intrinsics_files(tmp_path):
    made_by_hand = Intrinsics(-5.0, 10.0, 5.0, 5.0, np.zeros(5), (10, 10))
    with pytest.raises(InvalidIntrinsicsError, match="hand.json: key 'fx' \\(focal length\\) must be > 0 px"):
        save_intrinsics(tmp_path / "hand.json", made_by_hand)
    with pytest.raises(InvalidIntrinsicsError, match="nope.json: lens intrinsics file not found"):
        load_intrinsics(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{fx: 1")
    with pytest.raises(InvalidIntrinsicsError, match="bad.json: not a readable JSON file"):
        load_intrinsics(tmp_path / "bad.json")


def test_scaled_to_other_decode_sizes():
    lens = load_intrinsics(_valid())
    half = lens.scaled_to((540, 960))
    assert (half.fx, half.fy, half.cx, half.cy) == (750.0, 745.0, 270.0, 480.0) and half.image_size == (540, 960)
    np.testing.assert_array_equal(half.dist, lens.dist)
    assert lens.scaled_to((1080, 1920)) is lens
    padded = lens.scaled_to((1088, 1920))  # codec padding: same pixels, K kept
    np.testing.assert_array_equal(padded.K, lens.K)
    assert padded.image_size == (1088, 1920) and padded.extra["scaled_from"] == [1080, 1920]
    with pytest.raises(InvalidIntrinsicsError, match=r"for portrait frames \(1080x1920 px\) but the video is 1920x"):
        lens.scaled_to((1920, 1080))
    with pytest.raises(InvalidIntrinsicsError, match="another aspect ratio"):
        lens.scaled_to((1080, 1440))


def test_undistort_points_inverts_opencv_projection():
    """Points projected through the lens with distortion come back where the ideal pinhole puts them."""
    lens = Intrinsics(TRUE_K[0, 0], TRUE_K[1, 1], TRUE_K[0, 2], TRUE_K[1, 2], TRUE_DIST, TRUE_SIZE, 0.2)
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.55, 0.55, (60, 2)) * np.array([1.0, 0.75])   # up to the image corners
    points = np.concatenate([xy * 3.0, np.full((60, 1), 3.0)], 1)
    distorted, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), TRUE_K, TRUE_DIST)
    ideal, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), TRUE_K, np.zeros(5))
    kp = distorted.reshape(3, 20, 2).copy()
    kp[1, 4] = np.nan  # a missing keypoint stays missing
    out = undistort_points(kp, lens)
    assert out.shape == (3, 20, 2) and np.isnan(out[1, 4]).all()
    keep = np.isfinite(out.reshape(-1, 2)).all(1)
    err = np.abs(out.reshape(-1, 2)[keep] - ideal.reshape(-1, 2)[keep]).max()
    assert err < 1e-4
    assert np.abs(distorted - ideal).max() > 10, "the test lens distorts visibly"
    with pytest.raises(ValueError, match="shape"):
        undistort_points(np.zeros((4, 3)), lens)


def test_default_intrinsics_is_a_centred_pinhole():
    lens = default_intrinsics((1080, 1920), vfov_deg=60.0)
    assert lens.fx == lens.fy == pytest.approx(960 / math.tan(math.radians(30)))
    assert (lens.cx, lens.cy) == (540.0, 960.0) and lens.rms_px is None and not lens.dist.any()
    assert load_intrinsics(lens.to_dict()).to_dict() == lens.to_dict()


def test_focal_from_phone_metadata(tmp_path):
    """An MP4 carrying Apple's 35-mm-equivalent focal tag (written here with PyAV) gives f in pixels."""
    import av

    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w", options={"movflags": "use_metadata_tags"}) as container:
        container.metadata["com.apple.quicktime.camera.focal_length.35mm_equivalent"] = "26"
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert focal_from_metadata(path) == pytest.approx(26 / 43.2666 * 80.0, rel=1e-4)   # diagonal of 64x48 = 80
    plain = tmp_path / "plain.mp4"
    make_video(plain, seconds=0.2)
    assert focal_from_metadata(plain) is None
    assert focal_from_tags({"FocalLengthIn35mmFilm": "28 mm"}, (3000, 4000)) == pytest.approx(28 / 43.2666 * 5000,
                                                                                              rel=1e-4)
    assert focal_from_tags({"focal_length_35mm": "0"}, (3000, 4000)) is None
    with pytest.raises(MvcaptureError, match="missing.mp4: file not found"):
        focal_from_metadata(tmp_path / "missing.mp4")


def test_calibrate_intrinsics_command(board_pictures, tmp_path, capsys):
    folder, _ = board_pictures
    out, report = tmp_path / "cam.json", tmp_path / "report.json"
    assert main(["calibrate-intrinsics", str(folder), "--board", "4x7", "--square-mm", "30", "--out", str(out),
                 "--json", str(report)]) == 0
    printed = capsys.readouterr()
    assert f"board found in {len(POSES)} of {len(POSES) + 1}" in printed.out
    assert "board not found in: empty.png" in printed.out
    assert "searching" in printed.err, "progress goes to stderr"
    lens = load_intrinsics(out)
    assert lens.fx == pytest.approx(TRUE_K[0, 0], rel=0.01) and lens.extra["square_mm"] == 30.0
    assert json.loads(report.read_text())["out"] == str(out)
    assert main(["calibrate-intrinsics", str(tmp_path / "none.jpg"), "--out", str(out)]) == 2
    assert "none.jpg: file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["calibrate-intrinsics", str(folder), "--board", "four", "--out", str(out)])


# -- sessions, the import command, webcams, the demo -----------------------------------------------------------
def _lens(size=(160, 120), f=150.0) -> dict:
    w, h = size
    return {"fx": f, "fy": f, "cx": w / 2, "cy": h / 2, "dist": [0.01, 0.0, 0.0, 0.0, 0.0], "image_size": [w, h],
            "rms_px": 0.3}


def test_session_stores_a_checked_copy_of_each_views_intrinsics(media, tmp_path):
    from mvcapture.session import Session

    session = Session.create(name="lenses")
    session.import_videos([media["a30"], media["portrait"]])
    assert session.intrinsics(0) is None and session.intrinsics(1) is None
    source = save_intrinsics(tmp_path / "cam.json", _lens((320, 240), f=300.0))  # calibrated at twice the size
    stored = session.set_intrinsics(0, source)
    assert stored == session.path / "intrinsics/view0.json"
    source.unlink()  # the session keeps its own copy
    reopened = Session.open(session.path)
    lens = reopened.intrinsics(0)
    assert (lens["fx"], lens["cx"], lens["image_size"]) == (150.0, 80.0, [160, 120]), "scaled to the video"
    assert lens["scaled_from"] == [320, 240] and reopened.problems == []
    entry = reopened.meta["views"][0]["intrinsics"]
    assert entry["file"] == "intrinsics/view0.json" and entry["source"] == str(source)
    assert reopened.summary()["views"][0]["intrinsics"]["file"] == "intrinsics/view0.json"
    with pytest.raises(InvalidIntrinsicsError, match="view 1 of session .*for landscape frames .* video is 120x160"):
        session.set_intrinsics(1, _lens((160, 120)))                  # view 1 is portrait
    with pytest.raises(InvalidIntrinsicsError, match="bad.json: missing key 'fy'"):
        (tmp_path / "bad.json").write_text(json.dumps({k: v for k, v in _lens().items() if k != "fy"}))
        session.set_intrinsics(1, tmp_path / "bad.json")
    with pytest.raises(MvcaptureError, match="has 2 view\\(s\\); there is no view 2"):
        session.set_intrinsics(2, _lens())
    assert Session.open(session.path).intrinsics(1) is None
    (session.path / "intrinsics/view0.json").write_text("{")
    damaged = Session.open(session.path)
    assert any("view 0: lens intrinsics are unusable" in p for p in damaged.problems)


def test_import_command_takes_one_intrinsics_file_per_video(media, tmp_path, capsys):
    from mvcapture.session import Catalog, Session

    a = save_intrinsics(tmp_path / "A.json", _lens((160, 120)))
    b = save_intrinsics(tmp_path / "B.json", _lens((128, 96), f=120.0))
    out = tmp_path / "import.json"
    assert main(["import", str(media["a30"]), str(media["b25"]), "--name", "lenses", "--intrinsics", str(a), str(b),
                 "--json", str(out)]) == 0
    assert "lens intrinsics from B.json: fx 120.0 px" in capsys.readouterr().out
    session = Session.open("lenses")
    assert session.intrinsics(0)["fx"] == 150.0 and session.intrinsics(1)["fx"] == 120.0
    assert json.loads(out.read_text())["views"][1]["intrinsics"]["source"] == str(b)
    assert main(["sessions", "lenses"]) == 0
    assert f"lens intrinsics from {b}" in capsys.readouterr().out
    assert main(["import", str(media["a30"]), str(media["b25"]), "--intrinsics", str(a)]) == 2
    assert "--intrinsics needs one file per video" in capsys.readouterr().err
    (tmp_path / "C.json").write_text(json.dumps({**_lens(), "fx": 0}))
    assert main(["import", str(media["a30"]), "--intrinsics", str(tmp_path / "C.json")]) == 2
    assert "C.json: key 'fx' (focal length) must be > 0 px" in capsys.readouterr().err
    assert main(["import", str(media["portrait"]), "--intrinsics", str(a)]) == 2   # a landscape lens
    err = capsys.readouterr().err
    assert "the lens intrinsics are for landscape frames (160x120 px) but the video is 120x160" in err
    assert len(Catalog().list()) == 1, "failed imports leave no session behind"


def test_camera_identity_is_the_name_and_serial(tmp_path, monkeypatch):
    from mvcapture.capture import sources as sources_mod
    from mvcapture.capture.sources import CameraSource, camera_identity

    usb = tmp_path / "devices" / "usb1" / "1-2"
    (usb / "1-2:1.0").mkdir(parents=True)
    (usb / "serial").write_text("A1B2C3\n")
    for index, device in ((0, usb / "1-2:1.0"), (2, tmp_path / "devices" / "platform")):
        node = tmp_path / "video4linux" / f"video{index}"
        node.mkdir(parents=True)
        (node / "name").write_text("HD Pro Webcam C920\n")
        device.mkdir(parents=True, exist_ok=True)
        (node / "device").symlink_to(device)
    monkeypatch.setattr(sources_mod, "V4L_SYSFS", tmp_path / "video4linux")
    assert CameraSource(0).identity == "HD Pro Webcam C920 (serial A1B2C3)"
    assert camera_identity(2) == "HD Pro Webcam C920"       # no serial number: the name
    assert camera_identity(5) == "camera 5"                  # not listed


def test_webcam_intrinsics_are_remembered_for_its_next_recordings(media):
    from mvcapture.capture.recorder import Recorder
    from mvcapture.capture.sources import FileSource
    from mvcapture.paths import config_dir
    from mvcapture.session import Session
    from mvcapture.session.lenses import remembered_lens

    class DeskCam(FileSource):  # a webcam stand-in: a file played live, with a camera identity
        identity = "Desk cam (serial 42)"

    def record() -> Session:
        session = Session.create(name="webcams", kind="recording")
        Recorder(session, [DeskCam(media["a30"], loop=True), FileSource(media["b25"], loop=True)]).record(0.4)
        return Session.open(session.path)

    first = record()
    assert first.meta["views"][0]["camera_id"] == "Desk cam (serial 42)" and "camera_id" not in first.meta["views"][1]
    assert first.intrinsics(0) is None and remembered_lens("Desk cam (serial 42)") is None
    first.set_intrinsics(0, _lens((320, 240), f=300.0))
    assert remembered_lens("Desk cam (serial 42)")["fx"] == 150.0
    assert (config_dir() / "lenses.json").is_file()
    first.set_intrinsics(1, _lens((128, 96)))  # a file source: nothing to remember it by
    assert list(json.loads((config_dir() / "lenses.json").read_text())["cameras"]) == ["Desk cam (serial 42)"]
    second = record()
    assert second.intrinsics(0)["fx"] == 150.0 and second.intrinsics(1) is None
    assert second.meta["views"][0]["intrinsics"]["source"] == "remembered for camera Desk cam (serial 42)"
    (config_dir() / "lenses.json").write_text("[")  # a damaged memory costs the lens, not the recording
    assert record().intrinsics(0) is None


def test_demo_session_carries_its_cameras_intrinsics(tmp_path):
    from mvcapture.pipeline.demo import demo_session

    session = demo_session(root=tmp_path)
    shipped = [load_intrinsics(resources_dir() / "demo" / "intrinsics" / f"{cam}.json") for cam in ("cam01", "cam04")]
    for view, (lens, fx, size) in enumerate(zip(shipped, (1671, 1691), ([1080, 1920], [1088, 1920]))):
        stored = session.intrinsics(view)
        assert stored["fx"] == pytest.approx(fx, abs=1) and stored["fx"] == lens.fx and stored["cx"] == lens.cx
        assert stored["image_size"] == size and session.views[view].probe["width"] == size[0]
        assert 0.1 < stored["rms_px"] < 0.95 and stored["views_used"] == 6
    for cam, fx in zip(("cam01", "cam02", "cam03", "cam04"), (1671, 1675, 1679, 1691)):
        assert load_intrinsics(resources_dir() / "demo" / "intrinsics" / f"{cam}.json").fx == pytest.approx(fx, abs=1)


def test_the_session_modules_import_no_circle():
    """store imports the catalog, layout, repair and lenses; none of them imports store back (not even
    inside a function), so the session package has no import cycle."""
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "mvcapture" / "session"
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
        graph[path.stem] = {node.module.rsplit(".", 1)[1] for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and id(node) not in typing_only and node.module
                            and node.module.startswith("mvcapture.session.")}
    graph.pop("__init__")

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert {"catalog", "layout"} <= graph["store"]
    assert [m for m in graph if reaches(m, m, set())] == []
