"""The portfolio's state in Redis: its encoding (``codec``), the snapshot a worker
decides on (``store``) and the live controls operators change (``control``: halt,
resume, enable, flags, status).

May import: ``consumers.bus`` and below, ``gate``, ``schemas``.
"""
