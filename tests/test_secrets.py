"""Secret references (``env:NAME``, ``file:PATH``), the value that hides itself, and ``redact``.

Direct tests of ``faas_deployment.core.secrets``: every way a reference resolves or fails,
and that no message, ``repr``, ``str`` or f-string ever holds the secret value.
"""

from __future__ import annotations

import os

import pytest

from faas_deployment.core.errors import UserError
from faas_deployment.core.secrets import SecretValue, redact, resolve_secret

SECRET = "s3cr3t-Pa55 word"  # a space inside is part of the secret
FLAG = "--password"


def _refused(reference: str, match: str) -> str:
    """Resolve ``reference``, expect a UserError naming the flag and matching ``match``; return its text."""
    with pytest.raises(UserError, match=match) as caught:
        resolve_secret(reference, flag=FLAG)
    text = str(caught.value)
    assert text.startswith(f"{FLAG}: "), text
    assert SECRET not in text and SECRET.strip() not in text
    return text


def _file(tmp_path, data: bytes):
    path = tmp_path / "secret"
    path.write_bytes(data)
    return path


# --- file: references -----------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    SECRET.encode(), (SECRET + "\n").encode(), (SECRET + "\r\n").encode(), (SECRET + "\n\n").encode(),
    b"\xef\xbb\xbf" + (SECRET + "\r\n").encode(),  # a UTF-8 byte order mark, as Notepad writes
], ids=["bare", "newline", "crlf", "two-newlines", "bom-crlf"])
def test_a_file_secret_loses_only_its_trailing_line_ends(tmp_path, data):
    path = _file(tmp_path, data)
    value = resolve_secret(f"file:{path}", flag=FLAG)
    assert value.reveal() == SECRET
    assert value.source == f"file:{path}"


def test_a_file_secret_keeps_inner_and_leading_whitespace(tmp_path):
    path = _file(tmp_path, b"  two\nlines \n")
    assert resolve_secret(f"file:{path}", flag=FLAG).reveal() == "  two\nlines "


def test_a_missing_file_is_named(tmp_path):
    text = _refused(f"file:{tmp_path / 'absent'}", "cannot read secret file")
    assert str(tmp_path / "absent") in text and "No such file" in text


def test_a_dangling_symlink_is_a_missing_file(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "absent")
    _refused(f"file:{tmp_path / 'link'}", "cannot read secret file .*No such file")


def test_a_directory_is_refused(tmp_path):
    _refused(f"file:{tmp_path}", "cannot read secret file .*Is a directory")


def test_a_path_through_a_file_is_refused(tmp_path):
    path = _file(tmp_path, SECRET.encode())
    _refused(f"file:{path}/inner", "cannot read secret file .*Not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_file_is_refused(tmp_path):
    path = _file(tmp_path, SECRET.encode())
    path.chmod(0)
    _refused(f"file:{path}", "cannot read secret file .*Permission denied")


def test_a_file_too_large_for_a_secret_is_refused_unread(tmp_path):
    path = tmp_path / "big"
    with path.open("wb") as handle:  # sparse: 2 MiB of zeros on disk costs nothing
        handle.truncate(2 * 1024 * 1024)
    _refused(f"file:{path}", f"secret file {path} holds more than 1048576 bytes")
    _refused("file:/dev/zero", "holds more than 1048576 bytes")  # a device never ends: bounded read


def test_a_path_with_a_nul_byte_is_a_clear_error():
    _refused("file:/tmp/a\x00b", "the path holds a NUL byte")


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n", b"\n\n", b"   ", b" \t \n", b"\xef\xbb\xbf\n"],
                         ids=["empty", "newline", "crlf", "two-newlines", "spaces", "blank-line", "bom-only"])
def test_an_empty_or_blank_file_is_refused(tmp_path, data):
    path = _file(tmp_path, data)
    text = _refused(f"file:{path}", "is empty or only whitespace")
    assert str(path) in text


def test_a_file_not_in_utf8_is_refused_without_its_bytes(tmp_path):
    path = _file(tmp_path, SECRET.encode() + b"\xff\xfe")
    text = _refused(f"file:{path}", "is not UTF-8 text")
    assert "\\xff" not in text and "0xff" not in text  # the decoder's own text names the bytes


# --- env: references ------------------------------------------------------------------------

def test_an_env_secret_is_taken_as_is(monkeypatch):
    monkeypatch.setenv("FAAS_TEST_SECRET", SECRET + "\n")
    value = resolve_secret("env:FAAS_TEST_SECRET", flag=FLAG)
    assert value.reveal() == SECRET + "\n" and value.source == "env:FAAS_TEST_SECRET"


def test_an_unset_variable_is_named(monkeypatch):
    monkeypatch.delenv("FAAS_TEST_SECRET", raising=False)
    text = _refused("env:FAAS_TEST_SECRET", "environment variable FAAS_TEST_SECRET is not set")
    assert "export it" in text


@pytest.mark.parametrize("blank", ["", " ", "\t\n"], ids=["empty", "space", "blank"])
def test_an_empty_or_blank_variable_is_refused(monkeypatch, blank):
    monkeypatch.setenv("FAAS_TEST_SECRET", blank)
    _refused("env:FAAS_TEST_SECRET", "FAAS_TEST_SECRET is not set, empty or only whitespace")


# --- other forms ----------------------------------------------------------------------------

@pytest.mark.parametrize(("reference", "what"), [("env:", "variable"), ("file:", "file")])
def test_a_form_without_its_name_says_so(reference, what):
    _refused(reference, f"^--password: {reference} names no {what} \\(expected env:NAME or file:PATH\\)$")


def test_an_empty_flag_is_refused_as_empty():
    _refused("", "^--password: empty; expected env:NAME or file:PATH \\(or leave the flag out\\)$")


def test_an_empty_cli_flag_is_refused_not_ignored(capsys):
    from faas_deployment.cli import main

    code = main(["publish", "--env", "dev", "--component", "operator", "--registry", "oci://127.0.0.1:1/charts",
                 "--username", "u", "--password", ""])
    assert code == 1 and "--password: empty" in capsys.readouterr().err


@pytest.mark.parametrize("reference", [
    SECRET, f"vault:{SECRET}", f"ENV:{SECRET}", f" env:{SECRET}", f"{SECRET}:x",
])
def test_other_forms_are_refused_without_echoing_them(reference):
    text = _refused(reference, "expected env:NAME or file:PATH")
    assert "never inline" in text  # _refused checked that the secret is not echoed


# --- the value hides itself -----------------------------------------------------------------

def test_the_value_never_prints_itself():
    value = SecretValue(SECRET, "env:FAAS_TEST_SECRET")
    shown = [repr(value), str(value), f"{value}", f"{value!r}", f"{value!s}", f"{value:>40}", "%s" % value,
             "{}".format(value), repr([value]), repr({"password": value}), str(UserError(value))]
    for text in shown:
        assert SECRET not in text, text
        assert "env:FAAS_TEST_SECRET" in text and "***" in text, text
    assert value.reveal() == SECRET


def test_the_value_has_no_attribute_holding_it_in_the_open():
    value = SecretValue(SECRET, "env:X")
    assert not hasattr(value, "__dict__")  # no vars() dump
    with pytest.raises(AttributeError):
        value.extra = SECRET  # slots: nothing else can be hung on it


# --- redact ---------------------------------------------------------------------------------

def test_redact_replaces_every_occurrence():
    text = f"401 for token {SECRET}; retry with {SECRET}"
    assert redact(text, SecretValue(SECRET, "env:T")) == "401 for token ***; retry with ***"


def test_redact_takes_plain_strings_and_skips_none_and_empty():
    assert redact("a-b-c", None, "", "b") == "a-***-c"
    assert redact("unchanged", None, "") == "unchanged"


def test_redact_hides_a_secret_that_holds_another_one_whole():
    # the short secret first would leave the rest of the long one shown ("***def")
    assert redact("token abcdef", "abc", SecretValue("abcdef", "env:T")) == "token ***"
    assert redact("token abcdef and abc", SecretValue("abcdef", "env:T"), "abc") == "token *** and ***"


def test_a_short_secret_held_by_one_test():
    from faas_deployment.core.secrets import SecretValue, sanitize

    SecretValue("alse", "env:SHORT")
    assert sanitize("Released=False") != "Released=False"


def test_is_not_held_by_the_next():
    """The secrets a test resolved are forgotten after it (conftest): no mask on a later test's words."""
    from faas_deployment.core.secrets import known, sanitize

    assert "alse" not in known() and sanitize("Released=False") == "Released=False"
