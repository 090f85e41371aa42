"""``linegate certs make``: TLS for a lab's station API, a lab CA and the gateway's
certificate (gateway/cli/lab_certs.py), and what to do with them.

This module is imported by every ``linegate`` command: cryptography is imported when the
command runs.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.cli.lab_certs import LabCerts

COMMANDS: frozenset[str] = frozenset({"certs"})

EX_REFUSED = 1  # files are there already, or cannot be written
EX_USAGE = 2  # argparse's own exit for a bad command line
_DEFAULT_DAYS = 825


def add_parsers(sub: Any, default_config: Path) -> None:
    """Add ``certs make`` to ``sub`` (argparse's subparsers)."""
    certs = sub.add_parser(
        "certs", help="TLS certificates for the station API in a lab"
    ).add_subparsers(dest="action", required=True)
    make = certs.add_parser(
        "make",
        help="make a lab CA and the gateway's certificate signed by it, for the names and "
        "addresses terminals reach the gateway by",
    )
    make.add_argument("--out", type=Path, required=True, help="folder for the four files")
    make.add_argument(
        "--host", action="append", default=[], metavar="NAME", help="a DNS name (repeatable)"
    )
    make.add_argument(
        "--ip", action="append", default=[], metavar="ADDR", help="an IP address (repeatable)"
    )
    make.add_argument(
        "--days",
        type=int,
        default=_DEFAULT_DAYS,
        help=f"validity of the gateway's certificate (default and most: {_DEFAULT_DAYS})",
    )
    make.add_argument("--force", action="store_true", help="replace files already there")


def run(args: argparse.Namespace) -> int:
    if args.command != "certs" or args.action != "make":
        raise AssertionError(f"no command {args.command} {args.action} here")
    from gateway.cli.lab_certs import make_lab_certs, parse_names

    try:
        names, addresses = parse_names(args.host, args.ip)
        made = make_lab_certs(
            args.out, names, addresses, args.days, datetime.now(UTC), force=args.force
        )
    except ValueError as exc:
        sys.stderr.write(f"linegate certs make: {exc}\n")
        return EX_USAGE
    except FileExistsError as exc:
        sys.stderr.write(
            f"linegate certs make: not replacing what is there ({exc}): choose another "
            "--out, or --force (terminals that trust the old lab CA must then trust the new)\n"
        )
        return EX_REFUSED
    except OSError as exc:
        sys.stderr.write(
            f"linegate certs make: cannot write in {args.out}: {exc.strerror or exc}\n"
        )
        return EX_REFUSED
    sys.stdout.write(_guide(made) + "\n")
    return 0


def _guide(made: LabCerts) -> str:
    """What was made, the lines for line.toml, and how a terminal comes to trust it."""
    folder = made.folder.resolve()
    names = ", ".join(made.names)
    url = made.names[0] if ":" not in made.names[0] else f"[{made.names[0]}]"
    return f"""\
made in {folder}:
  lab-ca.crt        the lab CA: install it on every terminal (below); it signs for {names} only
  lab-ca.key        its key (mode 0600): needed only to sign again; keep it off the gateway
  station-api.crt   the gateway's certificate for {names}, valid until {made.not_after:%Y-%m-%d}
  station-api.key   its key (mode 0600): readable by the user the gateway runs as, nobody else

line.toml:
  [http]
  host = "0.0.0.0"
  port = 8443
  redirect_port = 8080    # optional: http:// bookmarks are sent on to https://
  [http.tls]
  cert_file = "{folder / made.server_cert.name}"
  key_file = "{folder / made.server_key.name}"

Then: linegate check-config <config folder>, and restart the gateway.

On each terminal (Android, Chrome): copy lab-ca.crt to it; Settings > Security >
Encryption & credentials > Install a certificate > CA certificate (the menu's place varies
by maker), confirm, restart Chrome; https://{url}:8443/api/health then opens without a
warning. A desktop browser: import lab-ca.crt as an authority trusted for websites."""
