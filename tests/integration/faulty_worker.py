"""A gate worker with one injected fault, for the fault suite (test code only).

    python -m tests.integration.faulty_worker MODE [riskgate gate arguments ...]

MODE:
- ``kill-around-commit``: with some probability the process SIGKILLs itself just
  before a commit, or just after one (the commit done, the worker gone before it
  could do anything else); for a pipelined commit also just after sending it (its
  reply never read, the next batch planned on top of it) and just after its reply;
- ``poison``: the process SIGKILLs itself whenever it is about to decide an intent
  whose id starts with ``poison`` (a message that crashes every worker that takes it).
"""

from __future__ import annotations

import os
import random
import signal
import sys
from typing import Any

from consumers.cli import main as cli
from consumers.gate_worker import batch, commit


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_around_commit() -> None:
    real = commit.Committer.commit

    def faulty(self: commit.Committer, plan: commit.CommitPlan) -> commit.Outcome:
        roll = random.random()
        if roll < 0.08:
            _die()
        outcome = real(self, plan)
        if roll > 0.92:
            _die()
        return outcome

    commit.Committer.commit = faulty  # type: ignore[method-assign]
    real_send = commit.Committer.send
    real_outcome = commit.InFlight.outcome

    def faulty_send(
        self: commit.Committer, plan: commit.CommitPlan, then: tuple[tuple[Any, ...], ...] = ()
    ) -> commit.InFlight:
        roll = random.random()
        if roll < 0.08:
            _die()
        inflight = real_send(self, plan, then)
        if roll > 0.92:
            _die()  # sent: Redis runs it (or not), nobody reads the reply
        return inflight

    def faulty_outcome(self: commit.InFlight) -> commit.Outcome:
        outcome = real_outcome(self)
        if random.random() < 0.04:
            _die()
        return outcome

    commit.Committer.send = faulty_send  # type: ignore[method-assign]
    commit.InFlight.outcome = faulty_outcome  # type: ignore[method-assign]


def _poison() -> None:
    real = batch.decide_batch

    def faulty(intents: Any, *args: Any, **kwargs: Any) -> Any:
        intents = list(intents)
        if any(i.intent_id.startswith("poison") for i in intents):
            _die()
        return real(intents, *args, **kwargs)

    batch.decide_batch = faulty  # type: ignore[assignment]


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    {"kill-around-commit": _kill_around_commit, "poison": _poison}[mode]()
    sys.exit(cli.main(["gate", *rest]))
