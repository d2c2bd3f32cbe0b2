"""Reading features: the online HTTP API (``serving.online``, Cassandra) and the offline tools
(``serving.offline``: point-in-time training sets, batch scoring, promotion over Iceberg).

The serving process imports neither PyFlink nor pyiceberg: ``serving.offline`` is imported only by
training code and its CLIs.
"""
