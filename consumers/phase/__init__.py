"""The phase monitor: applies executors' events to the track record (``monitor``,
``track_store``), measures it (``metrics``), and logs and publishes phase activations
(``log``, ``admin``).

May import: ``consumers.db`` and below, ``gate``, ``schemas``. Not ``consumers.market``.
"""
