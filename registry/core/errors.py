"""The one exception tree of the feature store.

FeatureStoreError
├── DefinitionError          a feature definition is invalid, unknown or conflicts
│   ├── UnknownFeatureError  a name that no registered definition has
│   └── UnknownFeatureServiceError  a feature service (name or version) that is not registered
├── SchemaError              an Avro schema is invalid or a schema registry call failed
│   └── DecodeError          a record cannot be decoded (its ``reason`` goes to the dead-letter topic)
├── DatasetError             a training set or export cannot be built or reproduced as asked
├── RequestFeatureError      a request-time feature's function cannot run, failed, or returned bad values
├── StoreUnavailableError    a backing service (Cassandra, Kafka, Iceberg catalog) is down or timed out
│   └── OverloadedError      the feature API shed the request (503 ``overloaded``): retry after ``retry_after_s``
├── AccessError              a caller is not who it must be, or may not do what it asked
│   ├── UnauthenticatedError no token, or one that is malformed, unknown or revoked
│   └── ForbiddenError       a valid caller without the owning team's role or a read grant
├── RequestError             the feature API refused a client's request (``code`` says why)
└── SettingsError            an ``FS_*`` setting is malformed or out of its range (at start-up)

HTTP status codes are chosen in ``serving/`` only; nothing here knows about HTTP.
"""

from __future__ import annotations

from registry.core.shown import shown


class FeatureStoreError(Exception):
    """Root of every error this project raises on purpose."""


class DefinitionError(FeatureStoreError):
    """A feature definition is invalid, unknown, or conflicts with another."""


class UnknownFeatureError(DefinitionError):
    """One or more feature names are not registered for the entity type."""

    def __init__(self, entity_type: str, names: list[str]) -> None:
        self.entity_type = entity_type
        self.names = sorted(set(names))  # a name given twice (a batch keeps duplicates) is named once
        shown_names = ", ".join(shown(name) for name in self.names)  # a name holding a line break cannot forge a line
        super().__init__(f"unknown feature(s) for entity type {entity_type!r}: {shown_names}")


class UnknownFeatureServiceError(DefinitionError):
    """A feature service name, or a version of it, that is not registered."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"unknown feature service {ref!r}")


class SchemaError(FeatureStoreError):
    """An Avro schema is invalid, or the schema registry refused or failed a call."""


class DecodeError(SchemaError):
    """A Kafka record could not be decoded into an event; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class EventsTableError(SchemaError):
    """A table of events (Parquet files, an Iceberg table) cannot be read as a source's events: the
    location does not exist or cannot be read, a field of the event schema has no column, or a column's
    type cannot hold the field's."""


class DatasetError(FeatureStoreError):
    """A training set, its manifest or an export request cannot be honoured (unknown snapshot, bad
    ``as_of``, labels or rebuilt content that differ from the manifest)."""


class RequestFeatureError(FeatureStoreError):
    """A request-time feature's function cannot be loaded (missing, or changed since its version was
    registered), raised, or returned values that are not its type; ``feature`` names the feature."""

    def __init__(self, feature: str, detail: str) -> None:
        self.feature = feature
        self.detail = detail
        super().__init__(f"request feature {feature!r}: {detail}")


class StoreUnavailableError(FeatureStoreError):
    """A backing service did not answer within its budget."""


class OverloadedError(StoreUnavailableError):
    """The feature API refused the request because it already held as many as it admits (503 ``overloaded``):
    nothing is wrong with the store, retry after ``retry_after_s`` seconds (its ``Retry-After``; None without one)."""

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class AccessError(FeatureStoreError):
    """A caller is not authenticated, or may not do what it asked (``registry.access``)."""


class UnauthenticatedError(AccessError):
    """No API token, or a malformed, unknown or revoked one; the message says which."""


class ForbiddenError(AccessError):
    """An authenticated caller without the role or grant the action needs; ``names`` lists refused features."""

    def __init__(self, message: str, *, names: list[str] | None = None) -> None:
        self.names = names or []
        super().__init__(message)


class RequestError(FeatureStoreError):
    """The feature API refused a request (``serving.online.client``): ``code`` is its machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


class SettingsError(FeatureStoreError):
    """An ``FS_*`` setting is malformed or out of its range; the message names the variable."""
