"""Benchmarks: ``riskgate bench`` (``run``), its worker pools and load (``kit``), and the
flood benchmark (``flood``, ``python -m consumers.bench.flood``).

May import: ``consumers.phase``, ``consumers.market`` and below. Not the CLI nor the
demo.
"""
