"""Writers of window results to the online (Cassandra) and offline (Iceberg) stores.

Each store's layout is derived from the feature definitions in one module (``online_layout``,
``offline_layout``); writers take already-built clients (a Cassandra session, an Iceberg catalog)
and follow one lifecycle: ``add`` per result, ``flush`` at a commit point, ``close`` at the end.
"""
