"""Commit one decided batch: a single Lua script call that is either whole or absent.

Redis runs a script atomically, but a runtime error after a write keeps the writes
before it. So the script goes in three phases:

1. **Check, write nothing.** Every argument (the counts, and that they account for
   every KEYS and ARGV entry; the expected version; the marker TTLs; every stream id
   to ack; the dead letters' sources; no state field named ``version``) and every key
   it will write (the state is a hash, each stream it adds to or acks on is a stream,
   each marker a string, or absent; no output stream has used up its ids; the state's
   version is an integer). A problem is answered ``invalid`` naming it (:class:`CommitError`)
   with nothing written. The batch is refused (``conflict``: re-read, re-decide) when
   the portfolio version moved since it was decided, or (``duplicate``: drop those,
   re-decide the rest) when an intent or event in it was already decided/applied.
   Past this phase no command can fail (OOM is checked at the first write only).
2. **The state first:** its fields set and deleted, the version bumped.
3. **Then the outputs,** each from the state that carries it: decisions and orders,
   dead letters, reuse notices, then the decided and applied markers, and the acks
   last. Nothing is acked before its output exists.

The decided marker ``decided:<intent_id>`` holds ``<decision stream id> <digest>
<version>``: the digest of what the intent said (:func:`schemas.messages.intent_digest`;
``-`` when unchecked) and the portfolio version the commit produced. The applied
marker ``applied:<event_id>`` holds that version alone. A marker is proof that its
intent was decided (its event applied) only when the state's version is at least the
one it records: the state carries what that commit produced. One that records a later
version than the state's (a commit that set it never wrote its state) proves nothing:
the intent is decided again, the event applied again, and the marker overwritten (the
reply counts them: :attr:`Outcome.unproven_intents`). Markers written before versions
(``<sid>``, ``<sid> <digest>``, and applied ``1``, which reads as version 1) are proof as
before. An intent marked with the same digest (or with none) is a duplicate; with a
different digest it is *reused*: the reply names it and the original decision's stream
id, and the worker answers it with a dead letter and a reuse notice instead of a
decision (docs/PROTOCOL.md).

**Fencing.** A gate that holds the portfolio's lease (consumers/bus/lease.py) names the
lease key and its value last: the script refuses the batch (``fenced``, nothing written)
unless the lease still holds that value, and :meth:`Committer.commit` raises
:class:`LeaseLost`. An owner that stalled past its lease's TTL therefore commits nothing
once a standby took over; exactly-once never depended on it (the markers and the version
check give that), but one owner at a time now holds for commits too.

**Sent now, answered later** (:meth:`Committer.send`): the same EVALSHA, written to a
connection of its own whose reply is read when the worker asks for it, so the worker
decides the next batch while Redis reads and runs this one (handle.py, "pipelined
commits"). A reply never read (the worker stopped or gave up) closes that connection:
the commit happened or it did not, and the markers and the version check make either
safe.

The script is in ``commit_lua.py``, the plan and the outcome in ``commit_plan.py``.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError, ResponseError

from consumers.bus.keys import Keys
from consumers.bus.lease import Lease, LeaseLost
from consumers.bus.nodes import Sent
from consumers.gate_worker.commit_lua import COMMIT_LUA
from consumers.gate_worker.commit_plan import (
    AppliedEntry,
    CommitPlan,
    DeadEntry,
    DecidedEntry,
    Outcome,
)
from consumers.state.changelog import CHANGES_KEEP

__all__ = [
    "COMMIT_LUA",
    "AppliedEntry",
    "CommitError",
    "CommitPlan",
    "Committer",
    "DeadEntry",
    "DecidedEntry",
    "InFlight",
    "LeaseLost",
    "Outcome",
]


class CommitError(RuntimeError):
    """The commit script refused a batch it could not write whole; nothing was written."""


class Committer:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        group: str,
        marker_ttl_s: int,
        *,
        outbox: bool = False,
        lease: Lease | None = None,
        event_marker_ttl_s: int | None = None,
    ) -> None:
        for name, ttl in (
            ("marker_ttl_s", marker_ttl_s),
            ("event_marker_ttl_s", event_marker_ttl_s),
        ):
            if ttl is None and name == "event_marker_ttl_s":
                continue
            if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
                raise ValueError(f"{name} must be a positive whole number, not {ttl!r}")
        self.redis = redis
        self.keys = keys
        self.group = group
        # decided markers live marker_ttl_s (each entry may ask for longer), applied
        # markers event_marker_ttl_s (the script's ARGV[8]); None: the same
        self.marker_ttl_s = marker_ttl_s
        self.event_marker_ttl_s = event_marker_ttl_s or marker_ttl_s
        # durable (consumers/state/outbox.py): decisions and orders go to the outbox, and are
        # published from there once replicas hold the commit
        self.outbox = outbox
        self.lease = lease  # fenced: only commit while this lease is ours
        self.script = redis.register_script(COMMIT_LUA)

    def encode(self, plan: CommitPlan) -> tuple[list[str], list[Any]]:
        """The script's KEYS and ARGV for ``plan`` (the layout is in COMMIT_LUA)."""
        k = self.keys
        outputs = [k.outbox, k.outbox] if self.outbox else [k.decisions, k.orders]
        keys = [k.state, k.intents, k.events, *outputs, k.deadletter, k.changes]
        keys += [k.decided(d.intent_id) for d in plan.decided]
        keys += [k.applied(a.event_id) for a in plan.applied]
        args: list[Any] = [
            plan.expected_version,
            self.group,
            len(plan.decided),
            len(plan.applied),
            len(plan.dead),
            len(plan.hset),
            len(plan.hdel),
            self.event_marker_ttl_s,
            len(plan.ack_intents),
            len(plan.ack_events),
            len(plan.notices),
            1 if self.outbox else 0,
            CHANGES_KEEP,
        ]
        for d in plan.decided:
            args += (d.msg_id, d.decision, d.order, d.digest, d.ttl_s or self.marker_ttl_s)
        args += [a.msg_id for a in plan.applied]
        for x in plan.dead:
            args += (x.source, x.msg_id, x.payload)
        args += plan.notices
        for name, value in plan.hset.items():
            args += (name, value)
        args += plan.hdel
        args += plan.ack_intents
        args += plan.ack_events
        if self.lease is not None:
            if self.lease.value is None:
                raise LeaseLost(f"no longer holding the lease of {k.portfolio}: not committing")
            keys.append(k.lease)
            args.append(self.lease.value)
        return keys, args

    def commit(self, plan: CommitPlan) -> Outcome:
        keys, args = self.encode(plan)
        return self.outcome(plan, self.script(keys=keys, args=args))

    def send(self, plan: CommitPlan, then: tuple[tuple[Any, ...], ...] = ()) -> InFlight:
        """Send ``plan``'s commit on a connection of its own and return at once; the
        outcome is :meth:`InFlight.outcome`'s (which raises what :meth:`commit` would).
        (A loopback or LAN socket's send buffer, autotuned to megabytes, takes a whole
        batch without waiting for Redis to read it.)

        ``then``: commands sent behind the commit on the same connection, run by Redis
        once the commit script is done (keys on the portfolio's node); their replies are
        :attr:`InFlight.replies`, read with the commit's."""
        keys, args = self.encode(plan)
        commit = ("EVALSHA", self.script.sha, len(keys), *keys, *args)
        sent = Sent(self.redis, self.keys.state, (commit, *then))  # the portfolio's primary
        return InFlight(self, plan, sent)

    def outcome(self, plan: CommitPlan, reply: Any) -> Outcome:
        """What the script's ``reply`` says of ``plan`` (raises CommitError, LeaseLost)."""
        kind = _text(reply[0])
        if kind == "invalid":
            raise CommitError(f"commit refused, nothing written: {_text(reply[1])}")
        if kind == "fenced":
            if self.lease is not None:
                self.lease.forget()
            holder = _text(reply[1]) or None
            raise LeaseLost(
                f"commit fenced, nothing written: the lease of {self.keys.portfolio} is held "
                f"by {holder or 'nobody'}",
                holder,
            )
        version = int(_text(reply[1]))
        n = len(plan.decided)
        if kind == "ok":
            marks = [int(_text(x)) for x in reply[2]]
            return Outcome(
                "ok",
                version,
                unproven_intents=tuple(plan.decided[m - 1].intent_id for m in marks if m <= n),
                unproven_events=tuple(plan.applied[m - n - 1].event_id for m in marks if m > n),
            )
        if kind == "conflict":
            return Outcome("conflict", version)
        marks = [int(_text(x)) for x in reply[2]]
        pairs = reply[3]
        return Outcome(
            "duplicate",
            version,
            tuple(plan.decided[m - 1].intent_id for m in marks if m <= n),
            tuple(plan.applied[m - n - 1].event_id for m in marks if m > n),
            tuple(
                (plan.decided[int(_text(pairs[j])) - 1].intent_id, _text(pairs[j + 1]))
                for j in range(0, len(pairs), 2)
            ),
        )


class InFlight:
    """A commit sent and not yet answered (:meth:`Committer.send`); :meth:`outcome` is
    called once. A connection that fails while the reply is read is closed (the commit
    ran or it did not: the markers and the version check make either safe)."""

    def __init__(self, committer: Committer, plan: CommitPlan, sent: Sent) -> None:
        self.committer = committer
        self.plan = plan
        self.sent = sent
        # the replies of the commands sent behind the commit (an error reply as the
        # ResponseError it is), once :meth:`outcome` has read them
        self.replies: list[Any] = []

    def outcome(self) -> Outcome:
        """Wait for the reply (and those of the commands sent behind it). A server that
        lost the script (restarted, flushed) ran nothing: the commit is made again the
        ordinary way, which loads it."""
        reply, *self.replies = self.sent.replies()
        if isinstance(reply, NoScriptError):
            return self.committer.commit(self.plan)
        if isinstance(reply, ResponseError):
            raise reply
        return self.committer.outcome(self.plan, reply)


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
