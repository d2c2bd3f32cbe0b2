"""Reading features: the online HTTP API (Cassandra) and point-in-time training sets (Iceberg).

The serving process imports neither PyFlink nor pyiceberg: ``serving.historical`` is the offline
path and is imported only by training code and its CLI.
"""
