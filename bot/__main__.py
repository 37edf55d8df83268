"""`python -m bot`: load settings, set up logging, run the bot until a signal stops it."""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Run the VoiceClone bot.")
    parser.add_argument(
        "--sync",
        action="store_true",
        help="push the slash commands to Discord now, even if they did not change",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"voiceclone: configuration error: {exc}", file=sys.stderr)
        return 2

    from .lifecycle import run_bot  # imported late: a config error needs no discord import

    return run_bot(settings, force_sync=args.sync)


if __name__ == "__main__":
    sys.exit(main())
