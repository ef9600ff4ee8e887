"""The data-source adapters, one module per provider, behind one interface
(:mod:`consumers.market.sources.base`); every request through :mod:`.gateway` and
the shared :mod:`.limiter`; the catalog of adapters is :mod:`.catalog`.

==================  ==================  ============================================
registry name       module              serves
==================  ==================  ============================================
``ccxt_binance``    ``ccxt_binance``    crypto bars, latest (ccxt; extra ``feeds``)
``polygon_io``      ``polygon``         stock/ETF bars, latest
``alpha_vantage``   ``alpha_vantage``   stock/ETF/forex bars, latest; earnings
``oanda_api``       ``oanda``           forex and commodity bars, latest
``fred_api``        ``fred``            macro calendar; macro indicators
``eia_api``         ``eia``             energy calendar; energy indicators
``reddit_api``      ``reddit``          sentiment
``unusual_whales``  ``unusual_whales``  unusual options flow
``sim``             ``sim``             everything, simulated (demo, tests)
==================  ==================  ============================================

Registry sources without an adapter (``glassnode``, ``etherscan``, ``coinmetrics``,
``defillama``, ``twitter_api``) are reported as such by ``riskgate sources status``.
"""
