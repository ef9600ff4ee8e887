"""How the command line is parsed, for every command alike (new ones inherit it):

* the global options (``--config``, ``--data-dir``, ``--embedded``) are accepted before
  or after the command: ``riskgate demo --data-dir X`` is ``riskgate --data-dir X demo``;
* a bad argument is one line on stderr naming the problem and the expected form, with a
  suggestion where one exists (``did you mean 'status'?``), and exit status 2.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import NoReturn

_CHOICES = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)$")
_QUOTED = re.compile(r"'([^']*)'")


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` was probably meant to be: same letters in another case,
    else the closest spelling; None when nothing is close."""
    pool = list(candidates)
    for c in pool:
        if c.lower() == word.lower():
            return c
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not close:
        upper = {c.upper(): c for c in pool}
        close = [upper[m] for m in difflib.get_close_matches(word.upper(), upper, n=1)]
    return close[0] if close else None


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage is in ``--help``, not in every mistake)."""

    def error(self, message: str) -> NoReturn:
        m = _CHOICES.search(message)
        if m is not None:
            choices = _QUOTED.findall(m.group(2))
            guess = did_you_mean(m.group(1), choices)
            head = message[: m.start()]
            message = f"{head}{m.group(1)!r} is not one of {', '.join(choices)}" + (
                f"; did you mean {guess!r}?" if guess else ""
            )
        self.exit(2, f"{self.prog}: {message}\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Unrecognized arguments are reported by the command they were given to, with
        the option nearest each one (``--portfolo``: did you mean --portfolio?)."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            target = self._command_parser(ns)
            options = list(target._option_string_actions)
            hints = [
                f"{x} -> {guess}"
                for x in extras
                if x.startswith("-") and (guess := did_you_mean(x.split("=")[0], options))
            ]
            hint = f"; did you mean {', '.join(hints)}?" if hints else ""
            target.error(
                f"unrecognized arguments: {' '.join(extras)}{hint} (the options are in "
                f"`{target.prog} --help`)"
            )
        return ns

    def _command_parser(self, ns: argparse.Namespace) -> argparse.ArgumentParser:
        """The (sub)parser of the command ``ns`` was parsed for."""
        parser: argparse.ArgumentParser = self
        while True:
            found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            name = getattr(ns, found[0].dest, None) if found else None
            if not found or name not in found[0].choices:
                return parser
            parser = found[0].choices[name]

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message if message.endswith("\n") else message + "\n")
        raise SystemExit(status)


def global_options(p: argparse.ArgumentParser, *, default: object = None) -> None:
    """The options every command takes, before or after its name."""
    p.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="asset config file (default: $RISKGATE_CONFIG or the packaged one)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default,
        help="embedded servers' directory when no URL is set (default: $RISKGATE_DATA_DIR "
        "or .riskgate)",
    )
    p.add_argument(
        "--embedded",
        action="store_true",
        default=default if default is not None else False,
        help="allow operator writes (deposit, halt, submit, ...) to the embedded servers "
        "when REDIS_URL/DATABASE_URL is not set (also: RISKGATE_EMBEDDED=1)",
    )


def _subparsers(p: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield child
                yield from _subparsers(child)


def spread_global_options(parser: argparse.ArgumentParser) -> None:
    """Every command (at any depth) also accepts the global options after its name. Their
    default there is SUPPRESS, so one given before the command is not overwritten."""
    for child in _subparsers(parser):
        taken = set(child._option_string_actions)
        if not {"--config", "--data-dir", "--embedded"} & taken:
            global_options(child, default=argparse.SUPPRESS)
