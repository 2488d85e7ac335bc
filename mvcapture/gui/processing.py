"""Process a session from the GUI: `mvcapture process SESSION` in a child process, its progress bar read
from the output, cancellable, crash-isolated. The CLI command is the pipeline's stable interface.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from PySide6 import QtCore

log = logging.getLogger(__name__)

# tqdm's bar: "detect view 0:  42%|████▏     | 42/100 [...]"
_PROGRESS = re.compile(r"(?:(?P<label>[^\r\n|%]*?):\s*)?(?P<percent>\d{1,3})%\|")


def parse_progress(text: str) -> tuple[int, str] | None:
    """The last progress report in a chunk of a tqdm-style output: (percent, label), or None."""
    found = None
    for match in _PROGRESS.finditer(text):
        found = (min(100, int(match.group("percent"))), (match.group("label") or "").strip())
    return found


def process_command(session: Path | str) -> list[str]:
    return [sys.executable, "-m", "mvcapture", "process", str(session)]


class SessionProcessor(QtCore.QObject):
    """Runs one processing job at a time.

    Signals: `progress(percent, label)`, `finished(session_path, ok, message)` where message is the last
    error line on failure (what the CLI printed for the user).
    """

    progress = QtCore.Signal(int, str)
    finished = QtCore.Signal(object, bool, str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.process: QtCore.QProcess | None = None
        self.session: Path | None = None
        self._output = ""
        self._cancelled = False

    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self, session: Path | str, command: list[str] | None = None) -> None:
        """Start processing `session` (`command` replaces `mvcapture process SESSION`, for tests)."""
        if self.running:
            raise RuntimeError("a session is being processed already")
        command = command or process_command(session)
        self.session, self._output, self._cancelled = Path(session), "", False
        self.process = QtCore.QProcess(self)
        self.process.setProcessChannelMode(QtCore.QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._done)
        self.process.errorOccurred.connect(self._error)
        self.process.start(command[0], command[1:])

    def cancel(self) -> None:
        if self.process is not None:
            self._cancelled = True
            self.process.terminate()
            if not self.process.waitForFinished(3000):
                self.process.kill()

    def _read(self) -> None:
        chunk = bytes(self.process.readAllStandardOutput()).decode(errors="replace")
        self._output = (self._output + chunk)[-20000:]
        found = parse_progress(chunk)
        if found is not None:
            self.progress.emit(*found)

    def _done(self, code: int, status) -> None:
        if self.process is None:
            return
        self._read()
        session, self.process = self.session, None
        if self._cancelled:
            self.finished.emit(session, False, "processing cancelled; what was done is kept and resumes next time")
        elif code == 0:
            self.finished.emit(session, True, "")
        else:
            lines = [ln.strip() for ln in self._output.replace("\r", "\n").splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("error:")]
            if any("invalid choice: 'process'" in ln for ln in lines):
                message = "session processing is not installed yet (no `mvcapture process` command)"
            else:
                last = lines[-1] if lines else f"exit code {code}"
                message = errors[-1][len("error:"):].strip() if errors else last
            log.warning("processing %s failed (%s): %s", session, code, self._output[-2000:])
            self.finished.emit(session, False, message)

    def _error(self, error) -> None:
        if error == QtCore.QProcess.ProcessError.FailedToStart and self.process is not None:
            session, self.process = self.session, None
            self.finished.emit(session, False, "could not start the processing command")
