"""Echoes of others' words (cogs/echo.py, and the replies built on it): one line, bounded,
no mentions, no markdown structure, no bidi controls; empty when nothing visible is left."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import languages
from bot.config import DEFAULT_LANGUAGES
from bot.segmind import errors
from cogs.echo import (
    BIDI_CONTROLS,
    LINE_BREAKS,
    has_visible,
    inline_code,
    neutralise,
    one_line,
    shorten,
)
from cogs.wording import failure_text, quote, result_text

MENTIONS = ("@everyone", "@here", "<@123>", "<@!123>", "<@&456>", "<#789>", "</speak:1>")
# What Discord's markdown, or a reader, would take for the start of a line of its own.
LINE_STARTS = ("-#", "#", ">", "-", "*", "1.", "```")


def lines_after_quote(text: str) -> list[str]:
    return [line.removeprefix("> ") for line in text.split("\n")]


@pytest.mark.parametrize("brk", list(LINE_BREAKS))
def test_every_line_break_becomes_a_space(brk: str) -> None:
    assert one_line(f"hello{brk}-# forged") == "hello -# forged"
    assert brk not in neutralise(f"hello{brk}-# forged")


def test_one_line_drops_bidi_and_controls_and_collapses_spaces() -> None:
    assert one_line("\u202eevil\u202c \u2066x\u2069\u200e\u200f\u061c") == "evil x"
    assert one_line("a\x00b\x07c\x1bd\x7fe\x9ff") == "a b c d e f"
    assert one_line("  a \t\r\n  b  ") == "a b"
    assert one_line("\u200b \ufeff-# x\u200d") == "-# x"


def test_shorten_caps_with_an_ellipsis() -> None:
    assert shorten("abc", 3) == "abc"
    assert shorten("abcd", 3) == "ab…"
    assert shorten("ab   cd", 4) == "ab…"


@pytest.mark.parametrize("mention", MENTIONS)
def test_neutralise_breaks_every_mention(mention: str) -> None:
    shown = neutralise(f"hi {mention} there")
    assert mention not in shown
    assert mention.replace("\\", "") not in shown.replace("\\", "")


@pytest.mark.parametrize("start", LINE_STARTS)
def test_neutralise_escapes_markdown_that_starts_a_line(start: str) -> None:
    shown = neutralise(f"\u200b{start} forged")
    assert not shown.startswith(start)
    assert shown.replace("\\", "") == f"{start} forged"


def test_neutralise_escapes_inline_markdown() -> None:
    assert neutralise("**b** __u__ ||s|| `c` [x](https://e.com)") == (
        "\\*\\*b\\*\\* \\_\\_u\\_\\_ \\|\\|s\\|\\| \\`c\\` \\[x](https://e.com)"
    )


@given(st.text(), st.integers(min_value=1, max_value=400))
def test_neutralise_is_one_bounded_line_without_mentions_or_bidi(text: str, limit: int) -> None:
    shown = neutralise(text, limit)
    assert len(shown) <= 2 * limit
    assert shown.splitlines() in ([], [shown])
    assert not any(ch in shown for ch in LINE_BREAKS + BIDI_CONTROLS)
    assert "@everyone" not in shown
    assert "@here" not in shown
    assert "<@" not in shown
    assert "<#" not in shown
    assert not shown.startswith(("-#", "#", "> ", ">>> "))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \t ",
        "\u200b\u200c\u200d\u2060\ufeff",
        "\u200b \u2028 \x1c\x85",
        "\u202e\u2066\u200e\u061c",
        "\x00\x07\x7f",
        "\u0301\u0308",  # combining marks with nothing to combine with
        "\u3164\u115f\u2800",  # blank glyphs
    ],
)
def test_nothing_visible_is_empty(text: str) -> None:
    assert not has_visible(text)


@pytest.mark.parametrize("text", ["a", "1", "?", "😀", "नमस्ते", "\u200bhi\u200b", "é"])
def test_something_visible_is_not_empty(text: str) -> None:
    assert has_visible(text)


def test_inline_code_cannot_be_broken_out_of() -> None:
    assert inline_code("a`b\n-# c") == "`a'b -# c`"
    assert inline_code("") == "`-`"
    assert len(inline_code("x" * 500, 80)) == 82


def test_quote_is_one_neutral_line() -> None:
    text = "first\u2028-# forged\x85> fake quote\x1c# heading @everyone <@123> \u202eevil"
    shown = quote(text)
    assert shown.startswith("> ")
    assert "\n" not in shown
    assert "@everyone" not in shown
    assert "<@123>" not in shown
    assert "\u202e" not in shown
    assert len(quote("x" * 5000)) <= 2 + 200


def test_result_text_has_one_footer_line_only() -> None:
    text = "hi" + "".join(f"{brk}-# forged" for brk in LINE_BREAKS)
    lines = lines_after_quote(result_text(text, "hi", 42))
    assert [line for line in lines if line.startswith("-#")] == [lines[-1]]
    assert lines[-1].startswith("-# 🌐 Hindi (hi)")
    assert len(lines) == 2


def test_failure_detail_is_neutralised() -> None:
    detail = "@everyone <@123> **bold**\n-# forged\u2028-# again " + "x" * 3000
    shown = failure_text(errors.JobFailedError(detail, request_id="r`1\n-# x"))
    assert "@everyone" not in shown
    assert "<@123>" not in shown
    assert "**" not in shown
    assert "\n" not in shown
    assert "(ref `r'1 -# x`)" in shown
    assert len(shown) < 900


def test_language_input_is_capped() -> None:
    assert languages.resolve("Hindi (hi)", DEFAULT_LANGUAGES) == "hi"
    assert languages.resolve("   hindi   ", DEFAULT_LANGUAGES) == "hi"
    assert languages.resolve("hi" + " " * 5000, DEFAULT_LANGUAGES) is None
    assert languages.resolve("x" * (languages.MAX_INPUT_CHARS + 1), DEFAULT_LANGUAGES) is None
    longest = max((languages.label(c) for c in DEFAULT_LANGUAGES), key=len)
    assert len(longest) <= languages.MAX_INPUT_CHARS
