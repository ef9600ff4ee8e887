"""The portfolio's state in Redis: its fields encoded one at a time (``codec``), the
whole hash decoded into a snapshot (``snapshot_codec``), what a batch writes back
(``changes``), the snapshot a worker decides on (``store``) and the live controls
operators change (``control``: halt, resume, enable, flags, status), and a durable
gate's outbox (``outbox``: decisions and orders held until replicas hold their commit).

May import: ``consumers.bus`` and below, ``gate``, ``schemas``.
"""
