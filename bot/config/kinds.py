"""The kinds of value a setting holds: how each reads its variable and how it is documented.

A kind's `parse` gets the variable's text (stripped, never empty) and returns the value or
raises `ValueError` saying what is wrong; the loader adds the variable's name. `show` writes
a value the way an operator types it (the defaults in `.env.example` and the README), and
`allowed` says in Markdown what the variable accepts (its bounds, for numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit

MIB = 1024 * 1024
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

T = TypeVar("T")
N = TypeVar("N", int, float)


class ConfigError(Exception):
    """A setting is missing or invalid. The message names the variable, never its value
    when the variable is a secret."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class Secret:
    """A string that does not print itself: safe to log the settings object."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class HostPort:
    """An operator-named output host; `port` None means any port."""

    host: str
    port: int | None = None

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


class Kind(Generic[T]):
    """One kind of value; the subclasses below are all the kinds there are."""

    def parse(self, raw: str) -> T:
        raise NotImplementedError

    def show(self, value: T) -> str:
        return str(value)

    def note(self, value: T) -> str:
        """A reader's gloss after the shown value, such as " (25 MiB)"."""
        return ""

    def allowed(self) -> str:
        raise NotImplementedError


class SecretText(Kind[Secret]):
    def parse(self, raw: str) -> Secret:
        if any(ch.isspace() for ch in raw):
            raise ValueError("contains whitespace; paste the value without spaces")
        return Secret(raw)

    def show(self, value: Secret) -> str:
        return ""  # a secret has no default, and the docs never print one

    def allowed(self) -> str:
        return "text without spaces"


class DatabaseUrl(Kind[Secret]):
    """A PostgreSQL URL, kept as a secret (it may hold a password)."""

    def parse(self, raw: str) -> Secret:
        scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
        if scheme not in ("postgresql", "postgres"):
            raise ValueError(
                "must be a postgresql:// URL (leave it empty for the SQLite file in BOT_DATA_DIR)"
            )
        return Secret(raw)

    def show(self, value: Secret) -> str:
        return ""  # empty: SQLite; the URL itself is never printed

    def allowed(self) -> str:
        return "`postgresql://user:password@host:5432/database`, or empty"


@dataclass(frozen=True)
class Number(Kind[N]):
    """A whole number (`convert=int`) or a finite decimal, between two bounds inclusive."""

    convert: Callable[[str], N]
    unit: str  # as in "must be a number of <unit>"
    minimum: float
    maximum: float

    def parse(self, raw: str) -> N:
        try:
            value = self.convert(raw)
        except ValueError:
            raise ValueError(f"must be {self.what}, got {raw!r}") from None
        if not self.minimum <= value <= self.maximum:
            raise ValueError(
                f"must be between {plain(self.minimum)} and {plain(self.maximum)}, got {raw!r}"
            )
        return value

    @property
    def what(self) -> str:
        return f"{'a whole' if self.convert is int else 'a'} number of {self.unit}"

    def show(self, value: N) -> str:
        return plain(value)

    def note(self, value: float) -> str:
        if self.unit == "bytes" and value >= MIB and value % MIB == 0:
            return f" ({int(value) // MIB} MiB)"
        return ""

    def allowed(self) -> str:
        low, high = self.minimum, self.maximum
        return f"`{plain(low)}`{self.note(low)} to `{plain(high)}`{self.note(high)}"


def decimal(unit: str, minimum: float, maximum: float) -> Number[float]:
    return Number(finite_float, unit, minimum, maximum)


def whole(unit: str, minimum: int, maximum: int) -> Number[int]:
    return Number(int, unit, minimum, maximum)


def limit(unit: str) -> Number[int]:
    """A fair-use limit: 0 switches it off."""
    return whole(f"{unit} (0 = no limit)", 0, 10**9)


def finite_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError
    return value


def plain(bound: float) -> str:
    """A number as an operator types it: 104857600 and 7, not 1.04858e+08 and 7.0."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


class Flag(Kind[bool]):
    def parse(self, raw: str) -> bool:
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise ValueError(f"must be true or false, got {raw!r}")

    def show(self, value: bool) -> str:
        return "true" if value else "false"

    def allowed(self) -> str:
        return "`true` or `false`"


class Ids(Kind[tuple[int, ...]]):
    """Comma-separated Discord ids, duplicates dropped."""

    def parse(self, raw: str) -> tuple[int, ...]:
        found: list[int] = []
        for item in (part.strip() for part in raw.split(",")):
            if item:
                if not item.isdigit():
                    raise ValueError(f"{item!r} is not a numeric id")
                found.append(int(item))
        return tuple(dict.fromkeys(found))

    def show(self, value: tuple[int, ...]) -> str:
        return ",".join(map(str, value))

    def allowed(self) -> str:
        return "comma-separated server ids"


class Hosts(Kind[tuple[HostPort, ...]]):
    _HINT = " (comma-separated host or host:port)"

    def parse(self, raw: str) -> tuple[HostPort, ...]:
        hosts: list[HostPort] = []
        for item in raw.split(","):
            entry = item.strip().lower()
            if not entry:
                continue
            if "/" in entry or "@" in entry or entry.startswith("["):
                raise ValueError(f"'{entry}' is not a host or host:port" + self._HINT)
            host, sep, port_text = entry.partition(":")
            port: int | None = None
            if sep:
                if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                    raise ValueError(f"'{entry}' has an invalid port" + self._HINT)
                port = int(port_text)
            if not host:
                raise ValueError(f"'{entry}' has no host" + self._HINT)
            hosts.append(HostPort(host, port))
        return tuple(hosts)

    def show(self, value: tuple[HostPort, ...]) -> str:
        return ",".join(map(str, value))

    def allowed(self) -> str:
        return "comma-separated `host` or `host:port`"


class HttpUrl(Kind[str]):
    def parse(self, raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return raw

    def allowed(self) -> str:
        return "an `http` or `https` URL"


@dataclass(frozen=True)
class Choice(Kind[str]):
    """One of a few words, in any case; the value is upper case (lower with `lower`)."""

    options: tuple[str, ...]
    lower: bool = False

    def parse(self, raw: str) -> str:
        value = raw.lower() if self.lower else raw.upper()
        if value not in self.options:
            raise ValueError(f"must be one of {', '.join(self.options)}")
        return value

    def allowed(self) -> str:
        words = [f"`{option}`" for option in self.options]
        return f"{', '.join(words[:-1])} or {words[-1]}"


class Languages(Kind[tuple[str, ...]]):
    def parse(self, raw: str) -> tuple[str, ...]:
        codes = tuple(dict.fromkeys(x.strip().lower() for x in raw.split(",") if x.strip()))
        if not codes or any(not c.replace("-", "").isalpha() or len(c) > 10 for c in codes):
            raise ValueError("must be comma-separated language codes like en,hi,fr")
        return codes

    def show(self, value: tuple[str, ...]) -> str:
        return ",".join(value)

    def allowed(self) -> str:
        return "comma-separated language codes"


class Directory(Kind[Path]):
    def parse(self, raw: str) -> Path:
        return Path(raw)

    def show(self, value: Path) -> str:
        return str(value) if value.is_absolute() else f"./{value}"

    def allowed(self) -> str:
        return "a directory path"


class Host(Kind[str]):
    """An IP address or a host name to listen on: no scheme, port or path."""

    def parse(self, raw: str) -> str:
        if any(c in raw for c in "/@ []") or raw.count(":") == 1:
            raise ValueError(f"must be an IP address or host name, got {raw!r}")
        return raw

    def allowed(self) -> str:
        return "an IP address or host name"
