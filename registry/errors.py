"""The one exception tree of the feature store.

FeatureStoreError
├── DefinitionError          a feature definition is invalid, unknown or conflicts
│   └── UnknownFeatureError  a name that no registered definition has
├── SchemaError              an Avro schema is invalid or a schema registry call failed
│   └── DecodeError          a record cannot be decoded (its ``reason`` goes to the dead-letter topic)
└── StoreUnavailableError    a backing service (Cassandra, Kafka, Iceberg catalog) is down or timed out

HTTP status codes are chosen in ``serving/`` only; nothing here knows about HTTP.
"""

from __future__ import annotations


class FeatureStoreError(Exception):
    """Root of every error this project raises on purpose."""


class DefinitionError(FeatureStoreError):
    """A feature definition is invalid, unknown, or conflicts with another."""


class UnknownFeatureError(DefinitionError):
    """One or more feature names are not registered for the entity type."""

    def __init__(self, entity_type: str, names: list[str]) -> None:
        self.entity_type = entity_type
        self.names = sorted(names)
        super().__init__(f"unknown feature(s) for entity type {entity_type!r}: {', '.join(self.names)}")


class SchemaError(FeatureStoreError):
    """An Avro schema is invalid, or the schema registry refused or failed a call."""


class DecodeError(SchemaError):
    """A Kafka record could not be decoded into an event; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class StoreUnavailableError(FeatureStoreError):
    """A backing service did not answer within its budget."""
