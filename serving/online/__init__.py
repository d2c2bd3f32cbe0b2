"""The online feature API (``python -m serving.online``): vectors read from Cassandra, plus the
definition and feature-service routes. Imports neither PyFlink nor pyiceberg."""
