"""The README and .env.example stay true: every setting the code reads is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def settings_read_by_code() -> set[str]:
    names = {f.name.upper() for f in dataclasses.fields(Settings)}
    assert len(names) >= 28, names
    return names


def test_every_setting_in_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert settings_read_by_code() == listed


def test_every_setting_in_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in settings_read_by_code() if f"`{name}`" not in readme}
    assert not missing


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "`make run`" in readme
    assert "`make test`" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make lint" in ci
