"""Market data: price bars into PostgreSQL (``prices``) and the correlations the gate
reads (``correlations``); the feed and exchange adapters belong here too.

May import: ``consumers.db`` and below, ``gate``, ``schemas``. Not ``consumers.phase``.
"""
