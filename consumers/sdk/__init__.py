"""The agents' SDK: :class:`consumers.sdk.client.GateClient` publishes intents and
portfolio events (signed when keys are set) and waits for decisions; its asyncio twin
:class:`consumers.sdk.aio.AsyncGateClient` does the same on ``redis.asyncio``. Both
build every message with ``payloads`` and refuse a bad value with ``InvalidField``.

May import: ``consumers.bus`` and below, ``schemas``. An agent author needs nothing
else of riskgate: not the gate, the state codec nor the database.
"""
