"""Every error the schema registry answers with: one table of HTTP status, Confluent ``error_code`` and message.

The codes and message texts are Confluent Schema Registry's (``rest/exceptions/Errors.java`` and the
``Rest*Exception`` classes of confluentinc/schema-registry, as of 8.2, except the incompatible-schema
code, 409 as in CP 7.x: see ``INCOMPATIBLE_SCHEMA``), down to their quirks: the
missing space in ``"...was soft deleted.Set permanent=true..."`` is Confluent's. Where Confluent
interpolates (a subject, a version, an id, a parser's detail) the same placeholders are filled here.

Rows marked *this registry* have no Confluent counterpart: they guard limits Confluent does not have
(a request body cap, a JSON nesting cap) or refuse request fields it would silently ignore. Each still
answers a 4xx in Confluent's ``{"error_code": ..., "message": ...}`` shape.

Unknown routes and methods answer in Jersey's form, ``{"error_code": 404, "message": "HTTP 404 Not
Found"}``: the code is the HTTP status (:data:`HTTP_ERROR_TEMPLATE`).

Store and API code raise :class:`RegistryError` with a :class:`RegistryErrorKind` and the values its
message names; the API turns it into a response with :meth:`RegistryError.body`. Nothing else writes an
error code or message text.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from registry.core.errors import SchemaError
from registry.schema_registry import avro_compat, avro_parse


class RegistryErrorKind(Enum):
    """(HTTP status, Confluent error code, message format) of each error the registry answers with."""

    # -- 404 --------------------------------------------------------------------------------------
    SUBJECT_NOT_FOUND = (404, 40401, "Subject '{subject}' not found.")
    VERSION_NOT_FOUND = (404, 40402, "Version {version} not found.")
    SCHEMA_NOT_FOUND = (404, 40403, "Schema not found")
    SCHEMA_ID_NOT_FOUND = (404, 40403, "Schema {id} not found")
    SUBJECT_SOFT_DELETED = (
        404,
        40404,
        "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently",
    )
    SUBJECT_NOT_SOFT_DELETED = (
        404,
        40405,
        "Subject '{subject}' was not deleted first before being permanently deleted",
    )
    VERSION_SOFT_DELETED = (
        404,
        40406,
        "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently",
    )
    VERSION_NOT_SOFT_DELETED = (
        404,
        40407,
        "Subject '{subject}' Version {version} was not deleted first before being permanently deleted",
    )
    SUBJECT_COMPATIBILITY_NOT_CONFIGURED = (
        404,
        40408,
        "Subject '{subject}' does not have subject-level compatibility configured",
    )
    SUBJECT_MODE_NOT_CONFIGURED = (404, 40409, "Subject '{subject}' does not have subject-level mode configured")
    # -- 409 --------------------------------------------------------------------------------------
    # error_code 409, as CP 7.x answers (Errors.INCOMPATIBLE_SCHEMA_ERROR_CODE = CONFLICT), as Confluent's
    # docs say and as confluent-kafka-python's client suite asserts (test_api_register_schema_incompatible).
    # Confluent 8.0.3 / 8.1.1 and later answer 40901 ("Add support for Associations"); this registry keeps 409.
    INCOMPATIBLE_SCHEMA = (
        409,
        409,
        'Schema being registered is incompatible with an earlier schema for subject "{subject}", details: {details}',
    )
    # -- 422 --------------------------------------------------------------------------------------
    INVALID_SCHEMA = (422, 42201, "Invalid schema of type AVRO, details: {detail}")
    INVALID_SCHEMA_TYPE = (422, 42201, "Invalid schema type {schema_type}")
    INVALID_VERSION = (
        422,
        42202,
        "The specified version '{version}' is not a valid version id. "
        'Allowed values are between [1, 2^31-1] and the string "latest"',
    )
    INVALID_COMPATIBILITY_LEVEL = (
        422,
        42203,
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
    )
    OPERATION_NOT_PERMITTED = (422, 42205, "{detail}")
    REFERENCE_EXISTS = (
        422,
        42206,
        "One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={subject},version={version}}}.",
    )
    INVALID_SUBJECT = (422, 42208, "The specified subject '{subject}' is not a valid.")
    # -- this registry ----------------------------------------------------------------------------
    BODY_TOO_LARGE = (413, 41301, "request body larger than {limit} bytes")
    BODY_TIMEOUT = (408, 40801, "request body not received whole within {ms} ms ({size} bytes came)")
    BODY_INCOMPLETE = (400, 40001, "request body incomplete: the client closed the connection after {size} bytes")
    BODY_NOT_JSON = (422, 42201, "request body is not JSON")
    BODY_TOO_DEEP = (422, 42201, "request body is {detail}")
    BODY_NOT_TEXT = (422, 42201, "request body holds {detail}")
    BODY_NOT_SCHEMA_REQUEST = (422, 42201, "request body needs a string field `schema`")
    BODY_NOT_CONFIG_REQUEST = (422, 422, 'request body must be a JSON object such as {{"compatibility": "BACKWARD"}}')
    UNKNOWN_FIELDS = (422, 422, "unknown field(s) in request body: {fields}; accepted: {accepted}")
    UNSUPPORTED_FIELDS = (
        422,
        422,
        "field(s) {fields} are not supported by this registry; send null or omit them",
    )
    # -- 5xx --------------------------------------------------------------------------------------
    STORE_ERROR = (500, 50001, "{detail}")
    STORE_UNAVAILABLE = (500, 50002, "{detail}")

    @property
    def status(self) -> int:
        return int(self.value[0])

    @property
    def code(self) -> int:
        return int(self.value[1])

    @property
    def template(self) -> str:
        return str(self.value[2])


HTTP_ERROR_TEMPLATE = "HTTP {status} {reason}"


class RegistryError(SchemaError):
    """An error the registry answers with; ``kind`` fixes status, code and message form, ``args`` fill it."""

    def __init__(self, kind: RegistryErrorKind, **values: Any) -> None:
        self.kind = kind
        self.values = values
        super().__init__(kind.template.format(**values))

    @property
    def status(self) -> int:
        return self.kind.status

    @property
    def code(self) -> int:
        return self.kind.code

    def body(self) -> dict[str, Any]:
        return {"error_code": self.code, "message": str(self)}


# -- the errors the store raises, by name -------------------------------------------------------------


class SchemaNotFoundError(RegistryError):
    """No such schema id, or the schema is not registered under the subject (40403); base of the 404s."""

    def __init__(
        self, schema_id: int | str | None = None, *, kind: RegistryErrorKind | None = None, **values: Any
    ) -> None:
        if kind is None:
            kind = RegistryErrorKind.SCHEMA_NOT_FOUND if schema_id is None else RegistryErrorKind.SCHEMA_ID_NOT_FOUND
            values = {"id": schema_id}
        super().__init__(kind, **values)


class SubjectNotFoundError(SchemaNotFoundError):
    """The subject has no version (that the caller asked to see)."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(kind=RegistryErrorKind.SUBJECT_NOT_FOUND, subject=subject)


class VersionNotFoundError(SchemaNotFoundError):
    """The subject exists but has no such version."""

    def __init__(self, subject: str, version: int | str) -> None:
        self.subject = subject
        self.version = version
        super().__init__(kind=RegistryErrorKind.VERSION_NOT_FOUND, version=version)


class ConfigNotFoundError(SchemaNotFoundError):
    """The subject has no subject-level compatibility level."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(kind=RegistryErrorKind.SUBJECT_COMPATIBILITY_NOT_CONFIGURED, subject=subject)


class ModeNotFoundError(SchemaNotFoundError):
    """The subject has no subject-level mode (this registry sets none: every subject is READWRITE, the global mode)."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(kind=RegistryErrorKind.SUBJECT_MODE_NOT_CONFIGURED, subject=subject)


class AlreadySoftDeletedError(SchemaNotFoundError):
    """A soft delete of a subject or version that is already soft-deleted (``version`` None: the subject)."""

    def __init__(self, subject: str, version: int | None = None) -> None:
        self.subject = subject
        self.version = version
        if version is None:
            super().__init__(kind=RegistryErrorKind.SUBJECT_SOFT_DELETED, subject=subject)
        else:
            super().__init__(kind=RegistryErrorKind.VERSION_SOFT_DELETED, subject=subject, version=version)


class NotSoftDeletedError(RegistryError):
    """A permanent delete of a subject or version that was not soft-deleted first."""

    def __init__(self, subject: str, version: int | None = None) -> None:
        self.subject = subject
        self.version = version
        if version is None:
            super().__init__(RegistryErrorKind.SUBJECT_NOT_SOFT_DELETED, subject=subject)
        else:
            super().__init__(RegistryErrorKind.VERSION_NOT_SOFT_DELETED, subject=subject, version=version)


class InvalidVersionError(RegistryError):
    """A version that is neither a number in [1, 2^31-1], -1 nor ``latest``."""

    def __init__(self, version: object) -> None:
        self.version = version
        super().__init__(RegistryErrorKind.INVALID_VERSION, version=str(version)[:100])


class InvalidCompatibilityLevelError(RegistryError, avro_compat.InvalidCompatibilityLevelError):
    """A compatibility level that is not one of Confluent's seven."""

    def __init__(self) -> None:
        super().__init__(RegistryErrorKind.INVALID_COMPATIBILITY_LEVEL)


class ReferenceExistsError(RegistryError):
    """A delete of a subject version that another registered schema references."""

    def __init__(self, subject: str, version: int) -> None:
        self.subject = subject
        self.version = version
        super().__init__(RegistryErrorKind.REFERENCE_EXISTS, subject=subject, version=version)


class InvalidSubjectError(RegistryError):
    """A subject Confluent refuses to register under: one with a control character, or a reserved name."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(RegistryErrorKind.INVALID_SUBJECT, subject=subject)


class InvalidSchemaError(RegistryError, avro_parse.InvalidSchemaError):
    """The schema text (with its references) is not a valid Avro schema; ``detail`` says why."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(RegistryErrorKind.INVALID_SCHEMA, detail=detail)


class InvalidSchemaTypeError(RegistryError):
    """A ``schemaType`` other than AVRO."""

    def __init__(self, schema_type: object) -> None:
        super().__init__(RegistryErrorKind.INVALID_SCHEMA_TYPE, schema_type=str(schema_type)[:100])


class IncompatibleSchemaError(RegistryError):
    """The schema breaks the subject's compatibility level against ``old_version``; ``messages`` say where.

    The details list has Confluent's form: the differences, then ``{oldSchemaVersion: n}``,
    ``{oldSchema: '...'}`` and ``{validateFields: 'false', compatibility: 'LEVEL'}``.
    """

    def __init__(
        self,
        subject: str,
        level: avro_compat.CompatibilityLevel,
        messages: list[str],
        old_version: int,
        old_schema: str,
    ) -> None:
        self.subject = subject
        self.level = level
        self.messages = messages
        entries = [
            *messages,
            f"{{oldSchemaVersion: {old_version}}}",
            f"{{oldSchema: '{old_schema}'}}",
            f"{{validateFields: 'false', compatibility: '{level.value}'}}",
        ]
        super().__init__(RegistryErrorKind.INCOMPATIBLE_SCHEMA, subject=subject, details=f"[{', '.join(entries)}]")
