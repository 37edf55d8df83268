"""The README and .env.example stay true: both are what the settings' declaration writes."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.config.docs import (
    TABLE_BEGIN,
    TABLE_END,
    env_example,
    markdown_table,
    readme_with_table,
)
from bot.config.settings import spec, variable

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "out of date: run `make docs` (python -m bot.config --write) and commit the result"


def declared_variables() -> set[str]:
    names = {variable(f) for f in dataclasses.fields(Settings)}
    assert len(names) >= 28, names
    return names


def test_env_example_is_generated_from_the_declaration() -> None:
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == env_example(), REGENERATE


def test_readme_settings_table_is_generated_from_the_declaration() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(TABLE_BEGIN) == 1
    assert readme.count(TABLE_END) == 1
    assert readme_with_table(readme) == readme, REGENERATE


def test_a_changed_declaration_shows_as_a_stale_readme() -> None:
    """The check above compares the table itself, not only the names in it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = readme.replace("| `SEGMIND_RPM` | `50` |", "| `SEGMIND_RPM` | `60` |")
    assert stale != readme
    assert readme_with_table(stale) == readme
    with pytest.raises(ValueError, match="markers"):
        readme_with_table(readme.replace(TABLE_BEGIN, ""))


def test_every_setting_in_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    listed = re.findall(r"^([A-Z_]+)=", example, re.MULTILINE)
    assert listed == [variable(f) for f in dataclasses.fields(Settings)]
    assert set(listed) == declared_variables()


def test_every_setting_in_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    table = markdown_table()
    assert table in readme
    assert {name for name in declared_variables() if f"| `{name}` |" not in table} == set()


def test_every_setting_has_help_and_a_default_its_own_kind_accepts() -> None:
    """What the docs show as a default reads back as that default: copying `.env.example`
    to `.env` changes nothing, and no default lies outside its own bounds."""
    for declared in dataclasses.fields(Settings):
        about = spec(declared)
        assert about.help, declared.name
        assert not about.help.endswith("."), declared.name  # a table cell, then a sentence
        if declared.default is not dataclasses.MISSING:
            shown = about.kind.show(declared.default)
            if shown:
                assert about.kind.parse(shown) == declared.default, declared.name


def test_env_example_as_dotenv_gives_the_defaults(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        env_example()
        .replace("DISCORD_TOKEN=\n", "DISCORD_TOKEN=tok\n")
        .replace("SEGMIND_API_KEY=\n", "SEGMIND_API_KEY=key\n")
    )
    from_file = load_settings({}, dotenv_path=env_file)
    defaults = load_settings({"DISCORD_TOKEN": "tok", "SEGMIND_API_KEY": "key"}, dotenv_path=None)
    assert from_file == defaults


@pytest.mark.parametrize(
    ("flag", "expected"), [("--markdown", markdown_table), ("--env-example", env_example)]
)
def test_cli_prints_the_generated_text(flag: str, expected: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot.config", flag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert callable(expected)
    assert proc.stdout == expected()


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "`make run`" in readme
    assert "`make test`" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make lint" in ci
