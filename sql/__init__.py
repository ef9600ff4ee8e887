"""riskgate's PostgreSQL migrations, packaged as ``riskgate_sql``.

``riskgate migrate`` applies the ``NNN_name.sql`` files here, in order.
"""
