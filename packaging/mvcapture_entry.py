"""Entry point of the frozen (PyInstaller) app: the same as the `mvcapture` command."""

import multiprocessing

from mvcapture.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    raise SystemExit(main())
