"""The ``riskgate`` command line: the entry point (``main``; ``python -m consumers.cli``)
and one module per command group: ``commands`` (the gate, live controls, the SDK),
``db_commands`` (PostgreSQL schema and consumers), ``phase_commands``,
``market_commands`` (prices, correlations), ``security_commands`` (ACL) and
``ops_commands`` (demo, servers, metrics); ``pg_options`` holds what the PostgreSQL
commands share and ``status_text`` prints reports.

May import: everything. Nothing imports it.
"""
