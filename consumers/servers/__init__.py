"""Embedded servers: a real Redis and PostgreSQL under the data directory, used only
when ``REDIS_URL`` / ``DATABASE_URL`` is unset.

``embedded`` is the public face (start or join, leases, status, pin, stop); below it
``layout`` (the data directory, its paths and lock, the URLs), ``binaries`` (the
packaged server binaries), ``processes`` (leases and process helpers), and one module
per server: ``redis_server``, ``postgres_server``.

May import: ``consumers.errors`` (and ``redis``, ``psycopg``, the stdlib). Nothing else
of ours: the bus and the database layer resolve their URLs through it.
"""
