"""The gate process, in the intent's order: ``intake`` (read and validate entries),
``batch`` (apply events, decide intents with :mod:`gate.decide`), ``commit`` (one Lua
call: check, write, ack) and ``worker`` (the loop: read, reclaim, trim, retry).

May import: ``consumers.ops`` and below, ``gate``, ``schemas``.
"""
