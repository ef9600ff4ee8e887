"""Embedded servers: a real Redis and PostgreSQL under the data directory, used only
when ``REDIS_URL`` / ``DATABASE_URL`` is unset.

May import: ``consumers.errors`` (and ``redis``, the stdlib). Nothing else of ours: the
bus and the database layer resolve their URLs through it.
"""
