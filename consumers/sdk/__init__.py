"""The agents' SDK: :class:`consumers.sdk.client.GateClient` publishes intents and
portfolio events (signed when keys are set) and waits for decisions.

May import: ``consumers.bus`` and below, ``schemas``. An agent author needs nothing
else of riskgate: not the gate, the state codec nor the database.
"""
