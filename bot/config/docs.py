"""`.env.example` and the README's settings table, written from the declaration.

`python -m bot.config --write` (`make docs`) rewrites both; `--markdown` and
`--env-example` print them. tests/test_docs.py fails when the files in the repository
differ from what this module writes.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

from .settings import Settings, spec, variable

ROOT = Path(__file__).resolve().parents[2]
TABLE_BEGIN = (
    "<!-- settings table: generated from bot/config/settings.py by `make docs`; edit there -->"
)
TABLE_END = "<!-- end of settings table -->"
ENV_HEADER = """\
# VoiceClone settings. Copy to .env and fill in the two required values.
# Real environment variables override this file; an empty value means the default.
# Generated from bot/config/settings.py by `make docs`: edit the declarations there.
"""
WIDTH = 88


def declared() -> Iterator[Field[Any]]:
    return iter(fields(Settings))


def shown_default(declared: Field[Any]) -> str:
    """The default as Markdown: `7`, `26214400` (25 MiB), (empty) or (required)."""
    if declared.default is MISSING:
        return "(required)"
    kind = spec(declared).kind
    text = kind.show(declared.default)
    return f"`{text}`{kind.note(declared.default)}" if text else "(empty)"


def markdown_table() -> str:
    rows = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for item in declared():
        about = spec(item)
        cells = (f"`{variable(item)}`", shown_default(item), about.kind.allowed(), about.help)
        rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows) + "\n"


def plain_text(markdown: str) -> str:
    """A help text as a comment: no backticks, bold or angle brackets around links."""
    text = re.sub(r"<(https?://[^>]+)>", r"\1", markdown)
    return text.replace("**", "").replace("`", "")


def sentence(markdown: str) -> str:
    text = plain_text(markdown)
    return f"{text[:1].upper()}{text[1:]}."


def comment(text: str) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent="# ",
        subsequent_indent="# ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def env_example() -> str:
    lines = ENV_HEADER.splitlines()
    for item in declared():
        about = spec(item)
        if about.section is not None:
            lines += ["", f"# --- {about.section.title} ".ljust(WIDTH, "-")]
            if about.section.note:
                lines += comment(about.section.note)
        lines += comment(f"{sentence(about.help)} Accepts {plain_text(about.kind.allowed())}.")
        value = "" if item.default is MISSING else about.kind.show(item.default)
        lines.append(f"{variable(item)}={value}")
    return "\n".join(lines) + "\n"


def readme_with_table(readme: str) -> str:
    """`readme` with the text between the table's markers replaced by `markdown_table()`."""
    begin, end = readme.find(TABLE_BEGIN), readme.find(TABLE_END)
    if begin < 0 or end < begin:
        raise ValueError(f"README.md has no settings table markers: {TABLE_BEGIN} ... {TABLE_END}")
    start = begin + len(TABLE_BEGIN)
    return f"{readme[:start]}\n\n{markdown_table()}\n{readme[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.config", description="Write the settings' documentation."
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="print the README's table")
    what.add_argument("--env-example", action="store_true", help="print .env.example")
    what.add_argument(
        "--write", action="store_true", help="rewrite README.md's table and .env.example"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
    elif args.env_example:
        sys.stdout.write(env_example())
    else:
        readme = ROOT / "README.md"
        readme.write_text(readme_with_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
        (ROOT / ".env.example").write_text(env_example(), encoding="utf-8")
        print(f"wrote {readme} and {ROOT / '.env.example'}")
    return 0
