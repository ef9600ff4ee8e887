"""``riskgate contract``: the wire protocol's JSON Schemas and AsyncAPI document,
generated from the models (``--write docs/``) or compared with what is checked in
(``--check docs/``, exit 1 on drift). See :mod:`consumers.bus.contract`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from consumers.bus import contract

if TYPE_CHECKING:
    from consumers.cli.options import Sub


def cmd_contract(args: argparse.Namespace) -> int:
    if args.write:
        docs = Path(args.write)
        changed = contract.write(docs)
        total = len(contract.rendered())
        print(f"{docs}: {total} files generated, {len(changed)} changed")
        for path in changed:
            print(f"  wrote {path}")
        return 0
    stale = contract.drift(Path(args.check))
    if stale:
        print(
            f"riskgate: {args.check}: {len(stale)} files differ from the models: "
            f"{', '.join(stale)} (regenerate with riskgate contract --write {args.check})",
            file=sys.stderr,
        )
        return 1
    print(f"{args.check}: the schemas and the AsyncAPI document match the models")
    return 0


def register(sub: Sub) -> None:
    p = sub.add_parser(
        "contract", help="JSON Schemas and the AsyncAPI document of the wire protocol"
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--write", metavar="DIR", help="generate them into DIR (docs/)")
    what.add_argument("--check", metavar="DIR", help="exit 1 if DIR's copies differ")
    p.set_defaults(handler=cmd_contract)
