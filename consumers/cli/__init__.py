"""The ``riskgate`` command line: the entry point (``main``; ``python -m consumers.cli``)
and one module per command group (``commands``: the gate, live controls and the SDK;
``db_commands``: PostgreSQL; ``security_commands``; ``ops_commands``: demo, servers,
metrics), with ``status_text`` printing reports.

May import: everything. Nothing imports it.
"""
