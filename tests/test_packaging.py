"""PyInstaller smoke test (slow): build packaging/mvcapture.spec and start the built app.

Run it with `python -m pytest -m slow tests/test_packaging.py` (needs the `package` extra: pyinstaller).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from mvcapture import __version__
from mvcapture.cli import build_parser

REPO = Path(__file__).resolve().parent.parent


def _has_command(name: str) -> bool:
    return name in build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_pyinstaller_build_starts(tmp_path):
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("pyinstaller is not installed (pip install -e '.[package]')")
    build = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(tmp_path / "dist"),
         "--workpath", str(tmp_path / "build"), str(REPO / "packaging" / "mvcapture.spec")],
        cwd=REPO, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-5000:]
    app = tmp_path / "dist" / "mvcapture" / ("mvcapture.exe" if sys.platform == "win32" else "mvcapture")
    assert app.is_file()

    version = subprocess.run([str(app), "--version"], capture_output=True, text=True, timeout=300)
    assert version.returncode == 0, version.stderr[-5000:]
    assert version.stdout.strip() == f"mvcapture {__version__}"

    internal = app.parent / "_internal"
    assert (internal / "resources" / "demo").is_dir()
    if (REPO / "resources" / "lifter" / "default.pt").exists():
        assert (internal / "resources" / "lifter" / "default.pt").is_file()

    # the frozen app's PyAV (encoder), OpenCV drawing and SciPy (BVH): export a small session, MP4 included
    from tests.test_export import _session_with_videos

    session, analysis = _session_with_videos(tmp_path)
    analysis.save(session.path_for("analysis"))
    export = subprocess.run([str(app), "export", str(session.path), "--format", "csv,json,trc,bvh,mp4",
                             "--height", "120"], capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr[-5000:]
    assert (session.path / "exports" / f"{session.id}.mp4").is_file()
    assert len(list((session.path / "exports").iterdir())) == 11

    if not _has_command("demo"):
        pytest.skip("the built app starts; no `mvcapture demo` command yet for the headless run")
    out = tmp_path / "demo"
    demo = subprocess.run([str(app), "demo", "--no-gui", "--out", str(out)], capture_output=True, text=True,
                          timeout=1200)
    assert demo.returncode == 0, (demo.stdout[-3000:], demo.stderr[-5000:])
    assert out.is_dir() and any(out.iterdir())
