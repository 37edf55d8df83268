"""What the bot may show back of what others wrote: a member's text, language or block
reason, or the voice service's error detail.

An echo is one line (every Unicode line break becomes a space), without bidi controls
(which could reorder the bot's own words around it) or other control characters,
shortened to a cap, with its markdown escaped and every mention broken. So pasted text
can neither ping anyone (even if a message's allowed_mentions were lost), nor forge a
line under the bot's own text (a `-#` footer, a heading, a quote), nor push a message
past Discord's 2,000 characters. Pure functions, no Discord state.
"""

from __future__ import annotations

import re
import unicodedata

import discord

ZERO_WIDTH_SPACE = "\u200b"
ELLIPSIS = "…"
ECHO_CHARS = 300  # the default cap of one echo, before escaping (at most doubles it)

# Every code point that ends a line for Unicode or for Python's str.splitlines().
LINE_BREAKS = "\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029"
# Explicit bidi embeddings, overrides and isolates, and the implicit marks.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Format characters that render as nothing (zero-width space, joiners, word joiner, BOM,
# soft hyphen, Mongolian vowel separator).
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"
# Letters and symbols that render as nothing: they do not make a text non-empty.
BLANK_GLYPHS = "\u115f\u1160\u3164\uffa0\u2800"

# Bidi controls dropped; C0 and C1 controls (which include most line breaks) and the two
# Unicode separators become spaces, which `str.split` then collapses.
_SPACED = (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
_FLATTEN = dict.fromkeys(map(ord, BIDI_CONTROLS)) | dict.fromkeys(_SPACED, " ")
_NUMBERED = re.compile(r"^(\d+)\.")


def has_visible(text: str) -> bool:
    """Whether `text` has something to see or say: a letter, digit, punctuation mark or
    symbol. Whitespace, control and format characters (zero-width spaces and joiners,
    U+2060, U+FEFF, bidi controls), combining marks alone and blank glyphs do not count."""
    return any(unicodedata.category(ch)[0] in "LNPS" and ch not in BLANK_GLYPHS for ch in text)


def one_line(text: str) -> str:
    """`text` on one line: bidi controls removed, every line break, control character
    and run of whitespace made one space, no space or zero-width character at either end
    (where it could hide a line-start marker such as "-#" from escaping)."""
    return " ".join(text.translate(_FLATTEN).split()).strip(ZERO_WIDTH + " ")


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters; a cut ends in "…"."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + ELLIPSIS


def neutralise(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` safe to show inside the bot's own line: flattened to one line, shortened
    to `limit` characters, markdown escaped, and a zero-width space after every "@"
    and "<" (which breaks @everyone, @here, <@id>, <@!id>, <@&id>, <#id>, </command:id>
    and <id:…>). The result is at most 2 × `limit` characters long."""
    short = shorten(one_line(text), limit)
    # escape_markdown covers headings, "-#", quotes, bullets and inline markers; a
    # numbered list ("1. ") it leaves alone.
    escaped = _NUMBERED.sub(r"\1\\.", discord.utils.escape_markdown(short))
    return escaped.replace("@", "@" + ZERO_WIDTH_SPACE).replace("<", "<" + ZERO_WIDTH_SPACE)


def inline_code(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` as inline code that cannot be broken out of (one line, no backticks)."""
    return "`" + (shorten(one_line(text), limit).replace("`", "'") or "-") + "`"
