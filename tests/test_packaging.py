"""PyInstaller smoke tests (slow): build packaging/mvcapture.spec once and start the built app.

Run them with `python -m pytest -m slow tests/test_packaging.py` (needs the `package` extra: pyinstaller).
"""

import importlib.util
import json
import os
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


@pytest.fixture(scope="module")
def demo_out(app, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    demo = subprocess.run([str(app), "demo", "--no-gui", "--out", str(out)], capture_output=True, text=True,
                          timeout=1200)
    assert demo.returncode == 0, (demo.stdout[-3000:], demo.stderr[-5000:])
    return out


def test_built_app_runs_the_headless_demo(demo_out):
    assert (demo_out / "analysis.npz").is_file() and (demo_out / "demo.png").is_file()
    assert json.loads((demo_out / "results.json").read_text())["calibration_check"]["estimated"]["optical_axis_angle_deg"] > 0


def test_built_app_runs_modules_as_python_would(app):
    """The app starts its processing and fine-tuning workers as `sys.executable -m MODULE`; in the frozen
    app `sys.executable` is the app itself, which must then behave like an interpreter."""
    version = subprocess.run([str(app), "-u", "-m", "mvcapture", "--version"], capture_output=True, text=True,
                             timeout=300)
    assert version.returncode == 0, version.stderr[-5000:]
    assert version.stdout.strip() == f"mvcapture {__version__}"
    # fine-tuning on several GPUs: `app -m torch.distributed.run ... -m mvcapture.train.worker JOB`
    torchrun = subprocess.run([str(app), "-m", "torch.distributed.run", "--help"], capture_output=True, text=True,
                              timeout=300)
    assert torchrun.returncode == 0 and "nproc" in torchrun.stdout, torchrun.stderr[-5000:]


def test_built_app_fine_tunes_in_its_worker_process(app, demo_out, tmp_path):
    """`finetune` runs the training in a child process started as `sys.executable -m ...worker`."""
    env = dict(os.environ, MVCAPTURE_HOME=str(tmp_path / "home"))
    result = tmp_path / "finetune.json"
    run = subprocess.run([str(app), "finetune", str(demo_out / "analysis.npz"), "--epochs", "2",
                          "--json", str(result)], capture_output=True, text=True, timeout=1200, env=env)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-5000:])
    assert json.loads(result.read_text())["status"] == "done"


def test_built_app_opens_its_window_with_the_3d_view(app, tmp_path):
    """The frozen Qt plugins and OpenGL: the app's screenshot tool (each tab, the Review tab's 3D view with
    both skeletons) run by the built app on the virtual screen."""
    from tests.test_gui_review import color_pixels

    from mvcapture.gui.theme import view_color

    out = tmp_path / "shots"
    shots = subprocess.run([str(app), "-m", "mvcapture.gui.screenshots", str(out)], capture_output=True,
                           text=True, timeout=900)
    assert shots.returncode == 0, (shots.stdout[-3000:], shots.stderr[-5000:])
    import cv2

    review = cv2.cvtColor(cv2.imread(str(out / "review.png")), cv2.COLOR_BGR2RGB)
    assert review.shape[:2] == (800, 1280)
    for v in range(2):
        assert color_pixels(review, view_color(v)) > 50, f"view {v}'s skeleton is not in the frozen app's 3D view"
    assert {p.name for p in out.iterdir()} >= {"capture.png", "review.png", "finetune.png", "library.png"}
