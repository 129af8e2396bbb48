"""Text hygiene: names and titles, message content, descriptions."""

from __future__ import annotations

import pytest

from parley.server.text import check_content, check_description, check_name


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Ann  ", "Ann"),
        ("Zoë Łukasz", "Zoë Łukasz"),
        ("日本語", "日本語"),
        ("a" * 64, "a" * 64),
        ("🙂 team", "🙂 team"),
    ],
)
def test_names_are_trimmed(raw: str, clean: str) -> None:
    assert check_name(raw) == clean


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "a" * 65,
        "nul\x00byte",
        "bell\x07",
        "new\nline",
        "tab\tbed",
        "evil\u202egnp.exe",
        "isolate\u2066x",
        "zero\u200bwidth",
        "joiner\u200dx",
        "bom\ufeffx",
        "soft\u00adhyphen",
        "line\u2028sep",
        "private\ue000use",
        "unassigned\u0378",
        "lone\ud800surrogate",
    ],
)
def test_names_refuse_invisible_or_control_characters(bad: str) -> None:
    with pytest.raises(ValueError):
        check_name(bad)


def test_name_length_counts_after_trimming() -> None:
    assert check_name(" " * 10 + "a" * 64 + " " * 10) == "a" * 64


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  hi  ", "hi"),
        ("a\r\nb", "a\nb"),
        ("\tindented\n\nparagraph ", "indented\n\nparagraph"),
        ("<b>html</b> & stays", "<b>html</b> & stays"),
        ("x" * 4000, "x" * 4000),
        ("  " + "x" * 4000 + "\n", "x" * 4000),
        ("שלום עולם", "שלום עולם"),
        ("emoji 👍🏽 and zwj 👩‍💻", "emoji 👍🏽 and zwj 👩‍💻"),
    ],
)
def test_content_is_trimmed_and_kept(raw: str, clean: str) -> None:
    assert check_content(raw) == clean


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " \n\t ",
        "x" * 4001,
        "nul\x00",
        "esc\x1b[31m",
        "evil\u202eoverride",
        "mark\u200f",
        "lone\udc00",
    ],
)
def test_content_refuses_empty_oversized_and_hidden_controls(bad: str) -> None:
    with pytest.raises(ValueError):
        check_content(bad)


def test_descriptions_may_be_empty_and_multiline() -> None:
    assert check_description("  ") == ""
    assert check_description(" line one\nline two ") == "line one\nline two"
    for bad in ("nul\x00", "evil\u202e"):
        with pytest.raises(ValueError):
            check_description(bad)
