"""`python -m bot`: load settings, set up logging, run the bot until a signal stops it.
`python -m bot check`: check the setup without running the bot (bot/doctor)."""

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
    commands = parser.add_subparsers(dest="command", metavar="{check}")
    commands.add_parser(
        "check",
        help="check the settings, the Discord token and permissions, the Segmind key and "
        "the data directory, spending nothing; exit 0 when nothing failed",
        description="Check the setup without running the bot or spending anything.",
    )
    args = parser.parse_args(argv)
    if args.command == "check" and args.sync:
        parser.error("--sync runs the bot; it does not go with check")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"voiceclone: configuration error: {exc}", file=sys.stderr)
        return 2

    if args.command == "check":
        from .doctor import run_doctor  # imported late, like run_bot

        return run_doctor(settings)

    from .lifecycle import run_bot  # imported late: a config error needs no discord import

    return run_bot(settings, force_sync=args.sync)


if __name__ == "__main__":
    sys.exit(main())
