"""Session folders, damaged-session reporting, the SQLite catalog, and the import/sessions/sync commands."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from mvcapture.cli import main
from mvcapture.errors import MvcaptureError
from mvcapture.paths import data_dir
from mvcapture.session import Catalog, Session, read_timestamps
from tests.capture_media import media  # noqa: F401 (fixture)


def test_import_copies_videos_and_records_what_they_are(media):
    session = Session.create(name="phones", athlete="Ann", tags=["sprint"])
    views = session.import_videos([media["portrait"], media["vfr"], media["audio"]])
    assert [v.index for v in views] == [0, 1, 2]
    assert views[0].media == session.path / "media/view0.mp4" and views[0].media.exists()
    assert (views[0].probe["width"], views[0].probe["height"], views[0].probe["rotation_deg"]) == (120, 160, 90)
    assert views[1].probe["variable_frame_rate"] and len(views[1].frame_times()) == 45
    assert views[2].has_audio and not views[0].has_audio
    samples, rate = session.load_audio(2)
    assert rate == 16000 and len(samples) > rate
    reopened = Session.open(session.id)  # by id
    assert reopened.problems == [] and len(reopened.views) == 3 and reopened.athlete == "Ann"
    np.testing.assert_allclose(reopened.views[1].frame_times(), views[1].frame_times())
    for v, name in enumerate(("portrait", "vfr", "audio")):       # byte-exact copies
        assert views[v].media.read_bytes() == media[name].read_bytes()


def test_import_reports_progress_over_all_files(media, monkeypatch):
    """Progress rises monotonically from the first copied chunk to 1.0 and names the file at work; chunked
    copies (forced small here) stay byte-exact."""
    from mvcapture.session import store

    monkeypatch.setattr(store, "COPY_CHUNK_BYTES", 4096)
    calls = []
    session = Session.create(name="progress")
    files = [media["portrait"], media["audio"]]
    views = session.import_videos(files, progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0) and 0 < fractions[0] < 0.5
    sizes = [p.stat().st_size for p in files]
    assert sum("copying" in m for _, m in calls) == sum(-(-s // 4096) for s in sizes)
    assert any(media["audio"].name in m for _, m in calls) and calls[-1][1] == f"imported {media['audio'].name}"
    assert [v.media.read_bytes() for v in views] == [p.read_bytes() for p in files]


def test_import_stops_when_cancelled_and_leaves_no_partial_copy(media, monkeypatch):
    """Cancel in the second file's copy: the first file stays imported, the second's partial copy is gone."""
    from mvcapture.session import ImportCancelled, store

    monkeypatch.setattr(store, "COPY_CHUNK_BYTES", 4096)
    session = Session.create(name="cancelled")
    seen = []

    def cancel() -> bool:
        return any(media["audio"].name in m and "copying" in m for _, m in seen)

    with pytest.raises(ImportCancelled, match="import cancelled while copying"):
        session.import_videos([media["portrait"], media["audio"]], progress=lambda f, m: seen.append((f, m)),
                              cancel=cancel)
    assert len(session.views) == 1 and session.views[0].media.read_bytes() == media["portrait"].read_bytes()
    assert [p.name for p in (session.path / "media").iterdir() if "view1" in p.name] == [], "no partial copy left"
    assert Session.open(session.id).problems == []


def test_import_by_reference_and_bad_files(media, tmp_path):
    session = Session.create(name="ref")
    (view,) = session.import_videos([media["a30"]], copy=False)
    assert view.media == media["a30"].resolve() and not (session.path / "media/view0.mp4").exists()
    bad = tmp_path / "clip.mov"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(MvcaptureError, match="clip.mov"):
        session.import_videos([media["b25"], bad])
    assert len(Session.open(session.path).views) == 1  # nothing half-added


def test_stage_files_are_generic_and_atomic(media):
    session = Session.create(name="stages")
    session.import_videos([media["a30"], media["b25"]])
    assert session.stage_status() == {"media": [True, True], "timestamps": [True, True], "sync": False,
                                      "detections": [False, False], "lift": [False, False],
                                      "analysis": False, "metrics": False}
    det = session.path_for("detections", view=1)
    assert det == session.path / "detections/view1.npz"
    session.save_array("detections/view1", kp2d=np.zeros((50, 17, 2), np.float32), conf=np.ones((50, 17)))
    session.save_array("analysis", residual_mm=np.arange(3.0))
    assert session.load_array("detections/view1")["kp2d"].shape == (50, 17, 2)
    np.testing.assert_array_equal(session.load_array("analysis")["residual_mm"], [0, 1, 2])
    session.save_json("metrics", {"consistency_mm": 41.5})
    assert session.load_json("metrics") == {"consistency_mm": 41.5}
    assert session.load_sync() is None
    session.save_sync({"offset_s": 0.125, "drift_ppm": 3.0, "confidence": 0.9, "low_confidence": False})
    assert session.load_sync()["offset_s"] == 0.125
    status = session.stage_status()
    assert status["detections"] == [False, True] and status["analysis"] and status["metrics"] and status["sync"]
    with pytest.raises(ValueError, match="unknown session stage"):
        session.path_for("nonsense")
    with pytest.raises(ValueError, match="per view"):
        session.path_for("lift")
    with pytest.raises(MvcaptureError, match="no lift/view0.npz yet"):
        session.load_array("lift/view0")
    # a failing write leaves the previous file intact and no temporary file behind
    with pytest.raises(TypeError):
        session.save_json("metrics", {"bad": object()})
    assert session.load_json("metrics") == {"consistency_mm": 41.5}
    assert not [p for p in session.path.rglob("*") if p.name.endswith(".tmp")]


def test_a_damaged_session_opens_and_says_what_is_missing(media):
    session = Session.create(name="damaged")
    session.import_videos([media["a30"], media["b25"]])
    session.save_json("metrics", {"ok": 1})
    session.save_array("analysis", x=np.zeros(3))
    (session.path / "media/view1.mp4").unlink()
    (session.path / "media/view0_timestamps.csv").unlink()
    (session.path / "metrics.json").write_text("{not json")
    (session.path / "analysis.npz").write_bytes(b"garbage")
    opened = Session.open(session.path)
    text = "\n".join(opened.problems)
    assert "view 1: video" in text and "view1.mp4 is missing" in text
    assert "view 0: timestamp table view0_timestamps.csv is missing" in text
    assert "metrics.json is unreadable" in text and "analysis.npz is unreadable" in text
    assert len(opened.views) == 2 and len(opened.views[0].frame_times()) == 60  # falls back to the video
    with pytest.raises(MvcaptureError, match="analysis.npz is damaged"):
        opened.load_array("analysis")

    (session.path / "session.json").write_text("{\"views\": [")
    rebuilt = Session.open(session.path)
    assert any("session.json is unreadable" in p for p in rebuilt.problems)
    assert len(rebuilt.views) == 1 and rebuilt.views[0].probe["frame_count"] == 60  # view0.mp4 survived
    (session.path / "session.json").unlink()
    assert any("session.json is missing" in p for p in Session.open(session.path).problems)
    with pytest.raises(MvcaptureError, match="no session 'nope'"):
        Session.open("nope")


def test_catalog_lists_searches_and_tags(media):
    a = Session.create(name="Monday sprint", athlete="Ann", tags=["sprint"])
    b = Session.create(name="Tuesday jumps", athlete="Bob")
    c = Session.create(name="Wednesday sprint", athlete="Ann")
    catalog = Catalog()
    assert {r["id"] for r in catalog.list()} == {a.id, b.id, c.id}
    assert {r["id"] for r in catalog.list(athlete="Ann")} == {a.id, c.id}
    assert {r["id"] for r in catalog.search("sprint")} == {a.id, c.id}
    assert {r["id"] for r in catalog.search("bob")} == {b.id}
    b.tag("jumps", "indoor")
    catalog.tag(c.id, "sprint")
    assert {r["id"] for r in catalog.list(tag="sprint")} == {a.id, c.id}
    assert catalog.get(b.id)["tags"] == ["indoor", "jumps"]
    assert catalog.get("Tuesday jumps")["id"] == b.id
    catalog.untag(c.id, "sprint")
    assert {r["id"] for r in catalog.search("indoor")} == {b.id}
    assert catalog.athletes() == ["Ann", "Bob"]
    a.record_model("lift", "dstformer-lite", "3")
    assert [(m["stage"], m["model"], m["version"]) for m in catalog.models(a.id)] == [("lift", "dstformer-lite", "3")]
    assert catalog.sessions_using("dstformer-lite") == [a.id]
    # the folders are the truth: a lost catalog is rebuilt from them
    catalog.path.unlink()
    fresh = Catalog()
    assert fresh.list() == [] and fresh.rebuild() == 3
    assert {r["id"] for r in fresh.list(tag="jumps")} == {b.id}
    assert fresh.models(a.id)[0]["model"] == "dstformer-lite"
    with sqlite3.connect(data_dir() / "catalog.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 3


def test_commands_import_sessions_sync_record(media, tmp_path, capsys):
    out = tmp_path / "import.json"
    assert main(["import", str(media["portrait"]), str(media["b25"]), "--name", "phones", "--athlete", "Cy",
                 "--tag", "test", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert [(v["width"], v["height"]) for v in summary["views"]] == [(120, 160), (128, 96)]
    assert main(["sessions", "--search", "cy", "--json", str(out)]) == 0
    assert [r["name"] for r in json.loads(out.read_text())["sessions"]] == ["phones"]
    assert main(["sync", "phones", "--manual-offset", "0.2", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["views"]["1"]["offset_s"] == 0.2
    assert Session.open("phones").load_sync()["method"] == "manual"
    capsys.readouterr()
    assert main(["sync", "phones"]) == 2  # no sound, no detections: says what to do
    assert "no sound and there are no 2D detections" in capsys.readouterr().err
    assert main(["sessions", "phones", "--add-tag", "synced"]) == 0
    assert "synced" in Catalog().get("phones")["tags"]
    capsys.readouterr()
    assert main(["import", str(media["a30"]), str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4: file not found" in capsys.readouterr().err
    assert len(Catalog().list()) == 1  # the failed import left no session behind
    assert main(["record", "--files", str(media["a30"]), str(media["b25"]), "--seconds", "0.6",
                 "--json", str(out)]) == 0
    recorded = json.loads(out.read_text())
    assert recorded["state"] == "complete" and len(recorded["views"]) == 2
    for st in recorded["recording"]:
        assert st["frames_captured"] == st["frames_written"] + st["frames_dropped"] > 0
    table = read_timestamps(Session.open(recorded["id"]).views[0].timestamps)
    assert table["t_s"][-1] < 1.0
    assert main(["sync", recorded["id"], "--json", str(out)]) == 0  # one clock for both cameras
    assert json.loads(out.read_text())["views"]["1"]["method"] == "clock"


def test_import_the_real_four_camera_recording(shared_data):
    folder = shared_data / "video" / "pose2sim_demo"
    session = Session.create(name="pose2sim", athlete="demo")
    views = session.import_videos([folder / "cam01.mp4", folder / "cam04.mp4"], copy=False)
    assert [(v.probe["width"], v.probe["height"]) for v in views] == [(1080, 1920), (1088, 1920)]
    for view in views:
        assert view.probe["frame_count"] == 100 and view.probe["fps"] == pytest.approx(60.0, abs=0.01)
        np.testing.assert_allclose(view.frame_times(), np.arange(100) / 60, atol=1e-3)
    assert Session.open(session.path).problems == []


def _scene_audio(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Room noise with claps: what two phones filming the same scene both hear."""
    rng = np.random.default_rng(seed)
    audio = 0.02 * rng.standard_normal(int(seconds * rate)).astype(np.float32)
    for t in rng.uniform(0.2, seconds - 0.2, size=8):
        k = int(t * rate)
        audio[k:k + 400] += 0.6 * rng.standard_normal(400).astype(np.float32) * np.exp(-np.arange(400) / 80)
    return audio


def test_sync_command_aligns_imported_phone_videos_by_sound(tmp_path):
    from tests.capture_media import make_video

    rate, offset_s = 16000, -0.3125  # B started 0.3125 s after A: t_B = t_A - 0.3125
    scene = _scene_audio(4.0, rate, seed=1)
    cut = int(-offset_s * rate)
    a = make_video(tmp_path / "a.mp4", seconds=3.0, fps=30, audio_rate=rate, audio=scene[: 3 * rate])
    b = make_video(tmp_path / "b.mp4", seconds=3.0, fps=25, audio_rate=rate, audio=scene[cut: cut + 3 * rate])
    assert main(["import", str(a), str(b), "--name", "claps"]) == 0
    out = tmp_path / "sync.json"
    assert main(["sync", "claps", "--json", str(out)]) == 0
    result = json.loads(out.read_text())["views"]["1"]
    assert result["method"].startswith("audio") and not result["low_confidence"]
    assert abs(result["offset_s"] - offset_s) < 1e-3
    assert Session.open("claps").load_sync()["offset_s"] == result["offset_s"]


def test_sync_command_uses_detections_without_sound_and_flags_doubt(tmp_path, capsys):
    from tests.capture_media import make_video

    offset_s = 0.137  # t_B = t_A + 0.137
    rng = np.random.default_rng(3)
    knots = rng.standard_normal((40, 17, 2)).cumsum(axis=0) * 20 + 300

    def scene(t):  # smooth, non-periodic 2D motion of 17 joints
        x = np.clip(t / 12.0 * 39, 0, 39)
        i = np.minimum(x.astype(int), 38)
        w = (x - i)[:, None, None]
        return knots[i] * (1 - w) + knots[i + 1] * w

    session = Session.create(name="silent")
    session.import_videos([make_video(tmp_path / f"{n}.mp4", seconds=0.2) for n in "ab"])
    t_a, t_b = np.arange(0, 10, 1 / 30), np.arange(0, 10, 1 / 25)
    for view, times, shift in ((0, t_a, 0.0), (1, t_b, offset_s)):
        session.save_array(f"detections/view{view}", kp2d_px=scene(times + 1.0 - shift).astype(np.float32),
                           conf=np.ones((len(times), 17), np.float32), frame_times_s=times)
    out = tmp_path / "sync.json"
    assert main(["sync", session.id, "--json", str(out)]) == 0
    result = json.loads(out.read_text())["views"]["1"]
    assert result["method"].startswith("motion") and not result["low_confidence"]
    assert abs(result["offset_s"] - offset_s) < 0.25 / 30

    noise = Session.create(name="unrelated sound")  # two recordings of different scenes
    noise.import_videos([make_video(tmp_path / f"n{s}.mp4", seconds=2.0, audio_rate=16000,
                                    audio=0.3 * np.random.default_rng(s).standard_normal(32000).astype(np.float32))
                         for s in (5, 6)])
    capsys.readouterr()
    assert main(["sync", noise.id]) == 1
    assert "is uncertain" in capsys.readouterr().err
    assert noise.load_sync()["low_confidence"] is True
