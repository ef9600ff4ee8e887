"""The Redis Streams bus: every stream, group and key name (``keys``), reading, writing
and trimming streams (``streams``), connections and process plumbing (``runtime``),
message signatures (``signing``) and TLS options (``tls``).

May import: ``consumers.servers`` (a Redis URL when none is set), ``consumers.errors``,
``schemas`` and ``gate``. Every other package of ``consumers`` builds on this one.
"""
