"""The ``riskgate`` command line: the entry point (``main``; ``python -m consumers.cli``)
and one module per command group: ``commands`` (the gate, live controls, the SDK),
``db_commands`` (PostgreSQL schema and consumers), ``phase_commands``,
``market_commands`` (prices, correlations), ``security_commands`` (ACL) and
``ops_commands`` (demo, servers, metrics), ``contract_commands`` (the JSON Schemas and
AsyncAPI document); ``pg_options`` holds what the PostgreSQL commands share,
``status_text`` and ``render`` print reports. What every command inherits: ``parser``
(global options before or after the command, one-line errors with suggestions) and
``which_server`` (which server a command uses, said; operator writes refused on an
embedded server unless ``--embedded``).

May import: everything. Nothing imports it.
"""
