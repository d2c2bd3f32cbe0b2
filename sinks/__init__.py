"""The two stores: each one's layout, writer and reader together (``sinks.cassandra``, ``sinks.iceberg``).

Each store's layout is derived from the feature definitions in one module (``sinks.cassandra.layout``,
``sinks.iceberg.layout``); writers take already-built clients (a Cassandra session, an Iceberg catalog)
and follow one lifecycle: ``add`` per result, ``flush`` at a commit point, ``close`` at the end.
"""
