"""Everything around the pure core: the processes, stores, tools and the command line.

Subpackages by role, lowest first (``[tool.importlinter]`` in ``pyproject.toml`` holds
the layers; a package may import only those below it):

* ``errors``      the errors every layer may raise (``UsageError``: exit 2)
* ``servers``     embedded Redis and PostgreSQL, for machines with neither
* ``bus``         the Redis Streams layer: key names, streams, connection, signing, TLS
* ``state`` / ``sdk``  the portfolio state in Redis (codec, store, live controls) /
  the agents' client
* ``ops``         telemetry (metrics, health) and Redis ACL users
* ``gate_worker`` the gate process: intake, batch, commit, worker
* ``db``          PostgreSQL: connection, migrations, registries, stream-to-PG, audit
* ``market`` / ``phase``  prices and correlations / the phase monitor and track record
* ``demo`` / ``bench``  the demo and the benchmarks
* ``cli``         the ``riskgate`` command line

``gate`` and ``schemas`` (the pure core and the message and config models) never import
``consumers``.
"""
