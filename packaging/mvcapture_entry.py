"""Entry point of the frozen (PyInstaller) app: the `mvcapture` command, and `-m MODULE ARGS` as a Python
interpreter would run it (how the app starts its processing and fine-tuning worker processes)."""

import multiprocessing

from mvcapture.cli import frozen_main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    raise SystemExit(frozen_main())
