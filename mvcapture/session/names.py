"""Session names and keys given by the user: checked before any file is touched, with a message a coach can
act on (a name the file system cannot hold ended in "OSError: File name too long" tracebacks)."""

from __future__ import annotations

import os

from mvcapture.errors import MvcaptureError

NAME_MAX_BYTES = 200        # a new session's name (its folder uses a 40-character slug of it)
FS_NAME_MAX_BYTES = 255     # one file or folder name on common file systems (ext4, APFS, NTFS)
FS_PATH_MAX_BYTES = 4096


class InvalidSessionNameError(MvcaptureError, ValueError):
    """A session name or key that no session folder can have (names it and says what is allowed)."""


def _shown(text: str) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return repr(clean if len(clean) <= 40 else clean[:37] + "...")


def _check_characters(text: str, what: str) -> None:
    if not text.strip():
        raise InvalidSessionNameError(f"{what} is empty; give a name, or an id or folder from `mvcapture sessions`")
    odd = next((c for c in text if not c.isprintable()), None)
    if odd is not None:
        raise InvalidSessionNameError(f"{what} {_shown(text)} contains a control character (code {ord(odd)}); "
                                      f"use letters, digits, spaces, '-' and '_'")


def check_session_name(name: str) -> str:
    """A name for a new session (`import --name`, `record --name`): printable, at most NAME_MAX_BYTES."""
    what = "session name"
    _check_characters(name, what)
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > NAME_MAX_BYTES:
        raise InvalidSessionNameError(f"{what} {_shown(name)} is {size} bytes long; at most {NAME_MAX_BYTES} "
                                      f"(letters count 1 byte, most accented ones 2)")
    return name


def check_session_key(key: str) -> str:
    """A session folder, id or name given to `process`, `sync`, `export`, `sessions`: printable, and short
    enough for the file system (each part of a folder path at most FS_NAME_MAX_BYTES)."""
    what = "session"
    _check_characters(key, what)
    data = os.fsencode(key)
    longest = max((len(part) for part in data.split(os.fsencode(os.sep))), default=0)
    if longest > FS_NAME_MAX_BYTES or len(data) > FS_PATH_MAX_BYTES:
        raise InvalidSessionNameError(
            f"{what} {_shown(key)} is longer than the file system allows for a name ({longest} bytes, at most "
            f"{FS_NAME_MAX_BYTES}); give the session's id or folder from `mvcapture sessions`")
    return key
