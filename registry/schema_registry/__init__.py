"""The Avro schema registry server (Confluent's REST API): ``python -m registry.schema_registry``.

``api`` is the HTTP layer, ``store`` the SQLite-backed subjects, versions and ids, ``avro_parse``
the schema parser (Avro Java's rules), ``avro_compat`` the compatibility rules.
"""
