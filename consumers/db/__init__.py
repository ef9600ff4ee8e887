"""PostgreSQL: connections (``connection``), migrations (``migrate``), the asset and
phase registries (``registry``), the stream-to-PostgreSQL loop every PG consumer runs
(``stream_to_pg``), the audit writer (``audit``) and running them (``services``).

May import: ``consumers.gate_worker`` and below, ``gate``, ``schemas``.
"""
