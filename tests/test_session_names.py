"""Session names and keys from the command line: a clear one-line error instead of an OSError traceback."""

from __future__ import annotations

import errno

import pytest

from mvcapture.cli import main, one_line
from mvcapture.session.names import InvalidSessionNameError, check_session_key, check_session_name

LONG = "x" * 300


@pytest.mark.parametrize("argv", [["process", LONG], ["sync", LONG], ["export", LONG], ["sessions", LONG]])
def test_over_long_session_keys_get_a_clear_error(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: session 'xxx") and "longer than the file system allows" in err[0]
    assert "(300 bytes, at most 255)" in err[0] and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("key, match", [("", "is empty"), ("   ", "is empty"), ("a\x00b", "control character \\(code 0\\)"),
                                        ("tab\there", "control character \\(code 9\\)")])
def test_odd_session_keys_are_named(key, match):
    with pytest.raises(InvalidSessionNameError, match=match):
        check_session_key(key)


def test_new_session_names_are_bounded(tmp_path, capsys):
    assert check_session_name("Anna – 100 m, take 2") == "Anna – 100 m, take 2"
    with pytest.raises(InvalidSessionNameError, match="is 402 bytes long; at most 200"):
        check_session_name("é" * 201)
    assert main(["import", "--name", LONG, str(tmp_path / "a.mp4")]) == 2
    assert "session name 'xxx" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_file_system_errors_are_one_line_with_the_file():
    exc = OSError(errno.ENAMETOOLONG, "File name too long", "/tmp/" + "y" * 300)
    text = one_line(exc)
    assert text.startswith("/tmp/yyy") and text.endswith("...: file name too long") and "Errno" not in text
    assert one_line(ValueError("two\nlines")) == "two lines"
