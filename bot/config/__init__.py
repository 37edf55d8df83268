"""Settings from the environment and `.env`, validated once at start-up.

Every problem becomes a `ConfigError` naming the variable and what is wrong, so
`python -m bot` can print one line and exit 2. Secrets are wrapped in `Secret`,
whose repr and str never show the value.

- `settings.py`: the declaration (each setting once: name, type, default, bounds, help)
  and `load_settings`, which reads it;
- `kinds.py`: how each kind of value is parsed and documented;
- `docs.py`: `.env.example` and the README's settings table, generated from the
  declaration (`python -m bot.config --write`, or `make docs`).
"""

from .kinds import MIB, ConfigError, HostPort, Secret
from .settings import (
    DEFAULT_LANGUAGES,
    DEFAULT_WORKFLOW_URL,
    LOG_LEVELS,
    MAX_OUTPUT_BYTES,
    Settings,
    load_settings,
)

__all__ = [
    "DEFAULT_LANGUAGES",
    "DEFAULT_WORKFLOW_URL",
    "LOG_LEVELS",
    "MAX_OUTPUT_BYTES",
    "MIB",
    "ConfigError",
    "HostPort",
    "Secret",
    "Settings",
    "load_settings",
]
