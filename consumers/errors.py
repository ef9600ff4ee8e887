"""Errors every layer may raise: the bottom of ``consumers`` (imports nothing of ours).

``UsageError`` is what an operator asked for and cannot have (a bad argument, a port in
use, a missing embedded-server package): the CLI reports it as one line and exit 2.
It lives here, not in the CLI, so that a server or an exporter can raise it without
importing the command line above it.
"""

from __future__ import annotations


class UsageError(Exception):
    """A bad argument: reported as one line and exit status 2."""
