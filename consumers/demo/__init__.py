"""``riskgate demo``: the whole system on one machine (``run``), with simulated agents
and an executor (``agents``), a process tree (``procs``), a live view (``view``), what it
reads back to prove the run (``checks``) and an HTML report (``report``, its charts drawn
as inline SVG by ``svg``).

May import: ``consumers.phase``, ``consumers.market`` and below. Not the CLI nor the
benchmarks.
"""
