"""``linegate-office``: run the office, or check its config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import sys
from pathlib import Path

from office.access import hash_password
from office.app import run_office
from office.config import ConfigError, load_config

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linegate-office", description="the office: every line's events, kept once"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the store, the HTTP end and the MQTT end")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument(
        "--data-dir", type=Path, default=Path("office-data"), help="where the SQLite store is"
    )
    check = sub.add_parser("check-config", help="check office.toml and its secret files")
    check.add_argument("config", type=Path)
    sub.add_parser(
        "hash-password",
        help="read a password (typed, or one line on stdin) and print its argon2id hash "
        "for a [[users]] password_file",
    )
    return parser


def _hash_password() -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            sys.stderr.write("the two differ\n")
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        # As on the gateway: length does the work (NIST SP 800-63B), twelve at least.
        sys.stderr.write("a password needs 12 characters at least\n")
        return 2
    sys.stdout.write(hash_password(password) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "hash-password":
        return _hash_password()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    if args.command == "check-config":
        url = config.store.url or "sqlite"
        store = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        mqtt = "on" if config.mqtt.url else "off"
        sys.stdout.write(f"{args.config}: OK ({len(config.lines)} lines, {store}, MQTT {mqtt})\n")
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        secrets = config.read_secrets(args.data_dir)
    except (ConfigError, OSError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_office(config, secrets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
