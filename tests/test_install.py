"""The installed package: console script, version, and the two cv2 wheels agreeing."""

import subprocess
import sys
from importlib import metadata

import mvcapture


def test_cv2_imports_and_both_opencv_wheels_match():
    import cv2

    versions = {name: metadata.version(name) for name in ("opencv-python", "opencv-contrib-python")}
    assert len(set(versions.values())) == 1, f"opencv wheels differ: {versions}"
    assert cv2.__version__ == versions["opencv-python"].rsplit(".", 1)[0]
    # a function from the core module and one from rtmlib's needs work
    assert cv2.resize(__import__("numpy").zeros((4, 4), "uint8"), (2, 2)).shape == (2, 2)
    import rtmlib  # noqa: F401  (imports cv2 itself)


def test_cli_version_and_help():
    out = subprocess.run([sys.executable, "-m", "mvcapture", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and mvcapture.__version__ in out.stdout
    out = subprocess.run([sys.executable, "-m", "mvcapture", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "bench" in out.stdout


def test_cli_module_runs_as_script():
    """`python -m mvcapture.cli` is the command too (it printed nothing and exited 0 before)."""
    out = subprocess.run([sys.executable, "-m", "mvcapture.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and mvcapture.__version__ in out.stdout


def test_cli_error_shows_message_not_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mvcapture", "data", "synth", str(tmp_path / "missing"),
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "error:" in out.stderr and "Traceback" not in out.stderr


def test_frozen_entry_runs_modules_like_an_interpreter(tmp_path):
    """The frozen app's entry (`cli.frozen_main`): the app starts its workers as `sys.executable -m MODULE`,
    and in a PyInstaller build `sys.executable` is the app; before, `app -m mvcapture.train.worker ...` was
    an argparse error, so processing and fine-tuning failed in the packaged app."""
    entry = "from mvcapture.cli import frozen_main; raise SystemExit(frozen_main())"

    def run(*args):
        return subprocess.run([sys.executable, "-c", entry, *args], capture_output=True, text=True)

    out = run("-u", "-m", "mvcapture", "--version")
    assert out.returncode == 0 and out.stdout.strip() == f"mvcapture {mvcapture.__version__}"
    out = run("-m", "mvcapture.train.worker")  # the worker's own usage error, not the app's argparse
    assert out.returncode == 2 and "usage: python -m mvcapture.train.worker JOB_DIR" in out.stderr
    out = run("-m", "mvcapture", "data", "synth", str(tmp_path / "missing"), str(tmp_path / "out"))
    assert out.returncode == 2 and "error:" in out.stderr
    out = run("--version")  # no -m: the mvcapture command line
    assert out.returncode == 0 and mvcapture.__version__ in out.stdout
