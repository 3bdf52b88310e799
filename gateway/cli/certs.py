"""``gateway certs example``: a throw-away demo PKI (never for production)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import emit

__all__ = ["add_certs_parser"]


def cmd_certs(args: argparse.Namespace) -> int:
    from gateway.certs import generate_example_pki

    existed = (Path(args.out) / "ca.pem").is_file() and not args.force
    pki = generate_example_pki(Path(args.out), force=args.force)
    data = {
        "generated": not existed,
        "directory": str(pki.directory),
        "ca": str(pki.ca_cert),
        "server": str(pki.server.cert),
        "clients": {name: ident.hsa_id for name, ident in pki.clients.items()},
    }
    done = "already in" if existed else "generated in"
    emit(args, data, f"example certificates {done} {pki.directory}")
    return 0


def add_certs_parser(sub: Any) -> None:
    p = sub.add_parser("certs", help="demo certificates")
    p.add_argument("certs_command", choices=["example"], help="example: generate the demo PKI")
    p.add_argument("--out", default="certs-example/out", help="output directory (default certs-example/out)")
    p.add_argument("--force", action="store_true", help="regenerate even if the directory has certificates")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_certs)
