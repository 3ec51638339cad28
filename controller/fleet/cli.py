"""``depotctl token add``: add a bearer token for the HTTP API to the tokens file.

Prints the new token once on stdout (a note on stderr says it will not be shown again); the file
keeps only its SHA-256. A bad argument or tokens file: one message per problem, exit status 2,
nothing written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controller.config.problems import ConfigError
from controller.fleet.tokens import ROLES, add_token

EXIT_USAGE = 2


def _vehicle_list(text: str) -> list[str]:
    ids = [v.strip() for v in text.split(",")]
    if not any(ids) or not all(ids):
        raise argparse.ArgumentTypeError(f"expected vehicle ids separated by commas, e.g. bus-12,bus-14; got {text!r}")
    return ids


def _cmd_token_add(args: argparse.Namespace) -> int:
    try:
        token = add_token(args.file, args.name, args.role, tenant=args.tenant, vehicles=args.vehicles)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(exc.filename), file=sys.stderr)
        n = len(exc.errors)
        print(f"{exc.filename}: {n} error{'s' if n != 1 else ''}, nothing written", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"depotctl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"depotctl: cannot write {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(token)
    scope = (
        f", tenant {args.tenant}" if args.tenant else f", vehicles {','.join(args.vehicles)}" if args.vehicles else ""
    )
    print(
        f"depotctl: token {args.name!r} ({args.role}{scope}) added to {args.file}; "
        "copy it now, it will not be shown again",
        file=sys.stderr,
    )
    return 0


def register(sub: Any) -> None:
    token = sub.add_parser("token", help="manage the HTTP API's bearer tokens")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="add a token to the tokens file and print it once")
    add.add_argument("name", metavar="NAME", help="who the token is for (unique in the file)")
    add.add_argument("--role", required=True, choices=ROLES, help="viewer: read; fleet: departures; admin: all")
    scope = add.add_mutually_exclusive_group()
    scope.add_argument("--tenant", metavar="T", help="fleet only: limit to the vehicles with `tenant: T`")
    scope.add_argument("--vehicles", metavar="A,B", type=_vehicle_list, help="fleet only: limit to these vehicles")
    add.add_argument("--file", required=True, metavar="PATH", help="tokens file (api.tokens_file); created if missing")
    add.set_defaults(func=_cmd_token_add)
