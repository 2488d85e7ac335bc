"""Exceptions whose message a coach can act on; the CLI and GUI show the message, not a traceback."""


class MvcaptureError(Exception):
    """An error with a message meant for the user (what went wrong and what to do)."""


class InvalidClipError(MvcaptureError, ValueError):
    """A multi-view clip file that does not follow FORMATS.md (names the file and the key)."""


class ModelNotFoundError(MvcaptureError, FileNotFoundError):
    """Weights that are neither at a given path, nor cached, nor downloadable."""


class InvalidIntrinsicsError(MvcaptureError, ValueError):
    """Lens intrinsics (FORMATS.md, `CAM.json`) that are missing, unreadable or impossible (names file and key)."""
