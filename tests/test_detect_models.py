"""Model resolution order: given path → given folder → rtmlib's cache → rtmlib's download → clear error."""

from __future__ import annotations

import time
import zipfile

import numpy as np
import pytest

from mvcapture.detect import create_detector, model_specs, resolve_model, rtmlib_cache_dir
from mvcapture.detect import models
from mvcapture.detect.testing import make_rtmpose, make_yolox_constant
from mvcapture.errors import ModelNotFoundError, MvcaptureError

SPEC = model_specs("balanced")["pose"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty rtmlib cache (rtmlib honours TORCH_HOME) and a network that must not be used."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    def no_download(url, *args, **kwargs):
        raise AssertionError(f"no download expected, got {url}")

    monkeypatch.setattr("rtmlib.tools.file.download_url_to_file", no_download)
    folder = rtmlib_cache_dir()
    assert folder == tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def test_mode_table_comes_from_rtmlib():
    from rtmlib import Body

    assert model_specs("balanced")["pose"].url == Body.MODE["balanced"]["pose"]
    assert model_specs("performance")["det"].input_size == (640, 640)
    assert model_specs("lightweight")["pose"].input_size == (192, 256)
    assert set(model_specs("rtmo")) == {"pose"} and "rtmo-m" in model_specs("rtmo")["pose"].url
    assert SPEC.onnx_name == "rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.onnx"
    with pytest.raises(ValueError, match="unknown detector mode"):
        model_specs("huge")


def test_given_path_wins_over_folder_and_cache(tmp_path, cache):
    (cache / SPEC.onnx_name).write_bytes(b"cached")
    given = tmp_path / "mine.onnx"
    given.write_bytes(b"mine")
    assert resolve_model(SPEC, model_path=given, model_dir=cache) == given
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(SPEC, model_path=tmp_path / "missing.onnx")


def test_given_folder_wins_over_cache(tmp_path, cache):
    (cache / SPEC.onnx_name).write_bytes(b"cached")
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / SPEC.onnx_name).write_bytes(b"mine")
    assert resolve_model(SPEC, model_dir=folder) == folder / SPEC.onnx_name


def test_cache_is_found_without_network(tmp_path, cache):
    (cache / SPEC.onnx_name).write_bytes(b"cached")
    assert resolve_model(SPEC, model_dir=tmp_path / "empty") == cache / SPEC.onnx_name


def test_rtmlib_zip_in_the_cache_is_extracted(cache):
    with zipfile.ZipFile(cache / SPEC.archive_name, "w") as z:
        z.writestr("rtmpose-m/end2end.onnx", b"onnx bytes")
    found = resolve_model(SPEC)
    assert found == cache / SPEC.onnx_name and found.read_bytes() == b"onnx bytes"


def test_download_is_tried_last_through_rtmlib(cache, monkeypatch):
    calls = []

    def fake_download(url, dst, *args, **kwargs):      # stands in for the network transfer of the zip
        calls.append(url)
        with zipfile.ZipFile(dst, "w") as z:
            z.writestr("model/end2end.onnx", b"downloaded")

    monkeypatch.setattr("rtmlib.tools.file.download_url_to_file", fake_download)
    monkeypatch.setattr(models, "_network_reachable", lambda url, timeout_s=0: True)
    found = resolve_model(SPEC)
    assert found == cache / SPEC.onnx_name and found.read_bytes() == b"downloaded"
    assert calls == [SPEC.url]
    assert resolve_model(SPEC) == found                  # now cached: no second download
    assert calls == [SPEC.url]


def test_offline_without_cache_or_path_names_file_place_and_url(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(models, "_network_reachable", lambda url, timeout_s=0: False)
    with pytest.raises(ModelNotFoundError) as info:
        create_detector("balanced")
    message = str(info.value)
    det = model_specs("balanced")["det"]
    for spec in (SPEC, det):
        assert spec.onnx_name in message and spec.url in message
    assert str(cache) in message and "--model-dir" in message
    assert isinstance(info.value, MvcaptureError)


def test_offline_switch_skips_the_download(cache, monkeypatch):
    monkeypatch.setenv(models.OFFLINE_ENV, "1")
    monkeypatch.setattr(models, "_network_reachable", lambda *a, **k: pytest.fail("probed the network"))
    with pytest.raises(ModelNotFoundError, match="rtmo-m"):
        create_detector("rtmo")


def test_network_probe_gives_up_quickly_on_a_silent_server():
    import socket

    with socket.socket() as server:                      # accepts connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        start = time.perf_counter()
        assert not models._network_reachable(f"http://127.0.0.1:{server.getsockname()[1]}/x.zip", timeout_s=0.5)
        assert time.perf_counter() - start < 2.0


def test_create_detector_from_a_model_folder(tmp_path, cache):
    folder = tmp_path / "models"
    specs = model_specs("lightweight")
    make_rtmpose(folder / specs["pose"].onnx_name, np.zeros(17, int), np.zeros(17, int))
    make_yolox_constant(folder / specs["det"].onnx_name, [[1, 1, 9, 9, 0.9]])
    detector = create_detector("lightweight", model_dir=folder, device="cpu")
    assert detector.provider == "cpu"
    assert "rtmpose-s" in detector.model_id and "yolox_tiny" in detector.model_id


def test_cpu_sessions_do_not_spin(tmp_path):
    """The detector's CPU sessions let their threads sleep between frames (the lifter runs next)."""
    from mvcapture.detect.backends import RTMPoseDetector
    from mvcapture.detect.testing import make_rtmpose, make_yolox_rectangles

    pose = make_rtmpose(tmp_path / "pose.onnx", np.arange(17), np.arange(17), (48, 64))
    det = make_yolox_rectangles(tmp_path / "det.onnx", (64, 64))
    detector = RTMPoseDetector(pose, det, device="cpu")
    for tool in (detector.pose, detector.det):
        options = tool.session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
