"""PyInstaller smoke tests (slow): build packaging/mvcapture.spec once and start the built app.

Run them with `python -m pytest -m slow tests/test_packaging.py` (needs the `package` extra: pyinstaller).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from mvcapture import __version__

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    """The built one-folder app's executable (built once for this module)."""
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("pyinstaller is not installed (pip install -e '.[package]')")
    root = tmp_path_factory.mktemp("pyinstaller")
    build = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(root / "dist"),
         "--workpath", str(root / "build"), str(REPO / "packaging" / "mvcapture.spec")],
        cwd=REPO, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-5000:]
    path = root / "dist" / "mvcapture" / ("mvcapture.exe" if sys.platform == "win32" else "mvcapture")
    assert path.is_file()
    return path


def test_built_app_reports_its_version_and_bundles_the_resources(app):
    version = subprocess.run([str(app), "--version"], capture_output=True, text=True, timeout=300)
    assert version.returncode == 0, version.stderr[-5000:]
    assert version.stdout.strip() == f"mvcapture {__version__}"
    internal = app.parent / "_internal"
    assert (internal / "resources" / "demo").is_dir()
    if (REPO / "resources" / "lifter" / "default.pt").exists():
        assert (internal / "resources" / "lifter" / "default.pt").is_file()


def test_built_app_exports_a_session(app, tmp_path):
    """The frozen app's PyAV (encoder), OpenCV drawing and SciPy (BVH): every format, MP4 included."""
    from tests.test_export import _session_with_videos

    session, analysis = _session_with_videos(tmp_path)
    analysis.save(session.path_for("analysis"))
    export = subprocess.run([str(app), "export", str(session.path), "--format", "csv,json,trc,bvh,mp4",
                             "--height", "120"], capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr[-5000:]
    assert (session.path / "exports" / f"{session.id}.mp4").is_file()
    assert len(list((session.path / "exports").iterdir())) == 11


def test_built_app_runs_the_headless_demo(app, tmp_path):
    out = tmp_path / "demo"
    demo = subprocess.run([str(app), "demo", "--no-gui", "--out", str(out)], capture_output=True, text=True,
                          timeout=1200)
    assert demo.returncode == 0, (demo.stdout[-3000:], demo.stderr[-5000:])
    assert out.is_dir() and any(out.iterdir())
