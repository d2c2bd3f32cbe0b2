"""The feature definition: the one model that drives the streaming job, the sinks and serving.

Everything downstream is derived from these frozen objects: the Flink SQL of the window job
(``jobs/sql.py``), the online row layout (``sinks/cassandra/layout.py``), the offline table schema
(``sinks/iceberg/layout.py``), the point-in-time join and the serving API's freshness and expiry.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sized
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from registry.core.durations import Duration, calendar_date, format_duration
from registry.core.entity_keys import MAX_KEY_FIELDS
from registry.core.errors import DefinitionError, FeatureStoreError
from registry.core.value_types import SPECS, ValueType

__all__ = ["ValueType"]  # re-exported: the value types themselves live in registry.core.value_types

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
# Names that reach generated SQL (the job's Flink SQL) or other systems are held to a strict grammar
# when a definition is registered; the SQL builder quotes them as well (jobs/sql.py). Grammars are
# checked with `fullmatch`: `re.match` lets `$` match before a final newline ("user_id\n").
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # Kafka's own rule ("." and ".." are refused too)
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")  # Avro's rule for field names, at most 255 characters
_SUBJECT = re.compile(r"^[A-Za-z0-9._:@-]{1,255}$")  # printable, no spaces or quotes, e.g. `<topic>-value`


def topic_name(value: str) -> str:
    """``value`` if it is a Kafka topic name, else ValueError naming it."""
    if not _TOPIC.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"topic {value[:300]!r} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)")
    return value


def source_topic(value: str) -> str:
    """``topic_name``, and short enough (245 characters at most) for the job's dead-letter topic ``<topic>.dlq`` to be
    a Kafka topic name too: a longer one registered, then the job could never start."""
    topic_name(value)
    if len(value) > 245:
        raise ValueError(
            f"topic {value[:300]!r} is longer than 245 characters: its dead-letter topic <topic>.dlq would pass "
            "Kafka's 249"
        )
    return value


def _field_name(value: str, what: str = "") -> str:
    if not _FIELD.fullmatch(value):
        raise ValueError(
            f"{what}{value[:300]!r} is not an event field name (A-Z a-z 0-9 _, not starting with a digit, at most 255)"
        )
    return value


def _subject_name(value: str) -> str:
    if not _SUBJECT.fullmatch(value):
        raise ValueError(f"subject {value[:300]!r} must be 1-255 of A-Z a-z 0-9 . _ : @ -")
    return value


READ_PARAMETERS = frozenset({"names", "feature_service", "entity_ids"})
"""The read routes' own query parameters: no composite key field or request field is named like one."""
MAX_VERSION = 2**31 - 1  # versions are 32-bit, as Flink's INT and the stores' int columns
SQL_DURATION_LIMIT = timedelta(days=1000)
"""Durations the job writes into its Flink SQL as intervals (window size, slide and gap, allowed lateness,
out-of-orderness) stay below this: Flink's planner takes an interval's leading field to 3 digits
(``DAY(3) TO SECOND(3)``, ``jobs.sql.interval``), so 1000d or more would fail the job at its start."""
MAX_WINDOWS_PER_EVENT = 1440
"""A sliding window puts each event in ``size / slide`` windows (Flink's HOP assigns it to every one), so the job's
work per event grows with the ratio: at most a day sliding by the minute."""
MAX_TAGS = 64
STORED = {"stored": True}
"""Validation context of a version read back from a store: held as it was registered (a bound added since never makes
a registered version unreadable). Only bounds added after versions were registered look at it: the sliding window's
``MAX_WINDOWS_PER_EVENT`` here, a feature service's description (``registry.feature_services``)."""


# 7300d, 20 years: Cassandra's longest TTL; online cells are cut to that and to end by 2038 (layout.ttl_cap_s)
MAX_TTL = timedelta(seconds=630_720_000)
# Control characters are Unicode's category Cc: C0 (\x00-\x1f), DEL and C1 (\x80-\x9f, e.g. NEL \x85).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps "\n" and "\t" only


def _plain_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _prose(value: str) -> str:
    if _CONTROL_BUT_LINES.search(value):
        raise ValueError("must not contain control characters other than newlines and tabs")
    return value


def _entity_key(value: object) -> object:
    """One event field name (a single key, kept a string) or a list of 2-8 distinct ones (a composite key, a
    tuple): checked here as one problem at ``entity_key``, not once per branch of a union."""
    if isinstance(value, str):
        return _field_name(value, "`entity_key` ")
    if isinstance(value, list | tuple):
        for field in value:
            if not isinstance(field, str):
                raise ValueError(f"a composite `entity_key` lists event field names, not {field!r:.100}")
            _field_name(field, "`entity_key` field ")
            if field in READ_PARAMETERS:
                raise ValueError(
                    f"a composite `entity_key` field must not be named {field!r}: the read routes take their key "
                    f"fields as query parameters beside their own ({', '.join(sorted(READ_PARAMETERS))})"
                )
        if not 2 <= len(value) <= MAX_KEY_FIELDS:
            raise ValueError(
                f"a composite `entity_key` lists 2-{MAX_KEY_FIELDS} fields (one field is written as a string)"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"`entity_key` lists a field twice: {list(value)}")
        return tuple(value)
    raise ValueError(f"`entity_key` is an event field name or a list of 2-{MAX_KEY_FIELDS} of them, not {value!r:.100}")


def _characters(low: int, high: int) -> AfterValidator:
    """A length bound counted and named in characters (pydantic's constraint on an annotated string says "items")."""

    def check(value: str) -> str:
        if not low <= len(value) <= high:
            raise ValueError(f"must be {low}-{high} characters, not {len(value)}")
        return value

    return AfterValidator(check)


def _at_most(high: int, what: str) -> WrapValidator:
    """A bound on how many entries a list holds, named in its own words ("at most 64 tags, not 65") rather than
    pydantic's ("Tuple should have at most 64 items"); the bound itself stays pydantic's (``max_length`` inside this
    validator), which stops reading a list at its first entry past the bound."""

    def check(value: object, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            for error in exc.errors():
                if error["type"] == "too_long" and not error["loc"]:
                    actual = error["ctx"].get("actual_length")  # None for an iterator: pydantic stopped past the bound
                    if actual is None and isinstance(value, Sized):
                        actual = len(value)
                    counted = f"not {actual}" if actual is not None else "given more"
                    raise ValueError(f"at most {high} {what}, {counted}") from None
            raise

    return WrapValidator(check)


Version = Annotated[int, Field(strict=True, ge=1, le=MAX_VERSION)]  # no bool, "7" or 7.0


CalendarDate = Annotated[date, BeforeValidator(calendar_date)]  # a TOML date or YYYY-MM-DD, nothing else
PlainText = Annotated[str, AfterValidator(_plain_text)]
Prose = Annotated[str, AfterValidator(_prose)]
TopicName = Annotated[str, AfterValidator(topic_name)]
FieldName = Annotated[str, AfterValidator(_field_name)]
SubjectName = Annotated[str, AfterValidator(_subject_name)]
Tag = Annotated[PlainText, _characters(1, 64)]  # counted in characters, the message too
# counted in tags, the message too ("at most 64 tags, not 65")
Tags = Annotated[tuple[Tag, ...], Field(max_length=MAX_TAGS), _at_most(MAX_TAGS, "tags")]
AggregationFunction = Literal["count", "sum", "mean", "min", "max", "last", "count_distinct"]


def _below_sql_limit(what: str, value: timedelta) -> None:
    if value >= SQL_DURATION_LIMIT:
        raise ValueError(
            f"{what} must be below {format_duration(SQL_DURATION_LIMIT)} (the longest interval the stream job's Flink"
            f" SQL holds is 999 days 23:59:59.999), not {format_duration(value)}"
        )


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Frozen):
    """Where a feature's events come from and how their time and entity key are read."""

    topic: TopicName = Field(description="Kafka topic: 1-245 of A-Z a-z 0-9 . _ - (room for its `.dlq`)")
    event_schema: str = Field(pattern=NAME_PATTERN, description="reader schema: schemas/<event_schema>.avsc")
    subject: SubjectName = Field(description="schema-registry subject of the event schema")
    entity_key: Annotated[FieldName | tuple[FieldName, ...], BeforeValidator(_entity_key)] = Field(
        description="event field holding the entity id, or 2-8 distinct fields that key it together "
        "(a composite key, e.g. user_id and merchant_id); registry.core.entity_keys encodes them into one id"
    )
    timestamp_field: FieldName = Field(description="event field holding event time (timestamp-millis)")
    event_id_field: FieldName | None = Field(
        default=None, description="event field identifying an event; resends with the same id and entity key count once"
    )
    max_out_of_orderness: Duration = timedelta(seconds=5)
    idle_timeout: Duration = Field(
        default=timedelta(seconds=30), description="a partition silent this long stops holding the watermark back"
    )

    @field_validator("topic")
    @classmethod
    def _dead_letter_room(cls, topic: str, info: ValidationInfo) -> str:
        # a bound added after versions were registered: theirs still load
        return topic if info.context == STORED else source_topic(topic)

    @model_validator(mode="after")
    def _key(self) -> Source:
        _below_sql_limit("`max_out_of_orderness`", self.max_out_of_orderness)
        if self.idle_timeout <= timedelta(0):
            raise ValueError(
                "`idle_timeout` must be positive (Flink reads 0 as: a silent partition holds time back forever)"
            )
        if isinstance(self.entity_key, tuple):
            if not 2 <= len(self.entity_key) <= MAX_KEY_FIELDS:
                raise ValueError(
                    f"a composite `entity_key` lists 2-{MAX_KEY_FIELDS} fields (one field is written as a string)"
                )
            if len(set(self.entity_key)) != len(self.entity_key):
                raise ValueError(f"`entity_key` lists a field twice: {list(self.entity_key)}")
        return self

    @property
    def key_fields(self) -> tuple[str, ...]:
        """The event fields keying the entity, in key order (one for a single key)."""
        return self.entity_key if isinstance(self.entity_key, tuple) else (self.entity_key,)

    @property
    def slug(self) -> str:
        """An identifier naming this source in the job's SQL: the topic made SQL-safe plus a hash of the
        whole source, so two sources never share one (not ``a.b`` and ``a_b``, nor two readings of one topic)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return f"{re.sub(r'[^A-Za-z0-9_]', '_', self.topic)}_{hashlib.sha256(canonical.encode()).hexdigest()[:8]}"


class Window(_Frozen):
    kind: Literal["tumbling", "sliding", "session"]
    size: Duration | None = None
    slide: Duration | None = None
    gap: Duration | None = None
    allowed_lateness: Duration = timedelta(0)

    @model_validator(mode="after")
    def _shape(self, info: ValidationInfo) -> Window:
        if self.kind == "session":
            if self.gap is None or self.size is not None or self.slide is not None:
                raise ValueError("a session window takes `gap` only")
            if self.allowed_lateness > timedelta(0):
                raise ValueError(
                    "a session window takes no `allowed_lateness`: Flink cannot update a session window "
                    "for late events (records behind the watermark are dead-lettered as too late)"
                )
        elif self.size is None or self.gap is not None:
            raise ValueError(f"a {self.kind} window takes `size` (and no `gap`)")
        if self.kind == "sliding":
            if self.slide is None or self.size is None or self.slide <= timedelta(0):
                raise ValueError("a sliding window takes `size` and a positive `slide`")
            if self.size % self.slide != timedelta(0):
                raise ValueError("a sliding window's `size` must be a whole multiple of its `slide`")
        if self.kind == "tumbling" and self.slide is not None:
            raise ValueError("a tumbling window takes no `slide`")
        for name in ("size", "slide", "gap"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"window `{name}` must be positive")
        for name in ("size", "slide", "gap", "allowed_lateness"):
            value = getattr(self, name)
            if value is not None:
                _below_sql_limit(f"window `{name}`", value)
        if self.kind == "sliding" and self.size is not None and self.slide is not None and info.context != STORED:
            windows = self.size // self.slide  # a whole multiple, checked above
            if windows > MAX_WINDOWS_PER_EVENT:
                raise ValueError(
                    f"a sliding window puts each event in size/slide windows: at most {MAX_WINDOWS_PER_EVENT}, not "
                    f"{windows} ({format_duration(self.size)} / {format_duration(self.slide)})"
                )
        return self


class Aggregation(_Frozen):
    function: AggregationFunction
    field: str | None = None

    @model_validator(mode="after")
    def _field(self) -> Aggregation:
        if self.function == "count" and self.field is not None:
            raise ValueError("`count` counts events and takes no `field`")
        if self.function != "count" and not self.field:
            raise ValueError(f"`{self.function}` needs the event `field` it aggregates")
        if self.field is not None:
            _field_name(self.field, "`field` ")
        return self


_RESULT_TYPES: dict[str, set[str]] = {
    "count": {"long"},
    "count_distinct": {"long"},
    "sum": {"long", "double"},
    "mean": {"double"},
    "min": {"long", "double", "string"},
    "max": {"long", "double", "string"},
    "last": {"long", "double", "string", "boolean"},
}


_ADDED_LATER_SOURCE_FIELDS = ("event_id_field",)


class FeatureDefinition(_Frozen):
    """One version of one feature of one entity type. Versions are immutable."""

    name: str = Field(pattern=NAME_PATTERN)
    entity: str = Field(pattern=NAME_PATTERN, description="entity type, e.g. `user`")
    version: Version
    owner: PlainText = Field(min_length=1, max_length=256, description="owning team")
    description: Prose = Field(default="", max_length=4096)
    tags: Tags = ()
    value_type: ValueType
    source: Source
    window: Window
    aggregation: Aggregation
    freshness_slo: Duration
    ttl: Duration = Field(description="a value older than this (from its feature timestamp) is expired")
    offline_retention: Duration = timedelta(days=3 * 365)
    sensitivity: Literal["public", "internal", "confidential", "restricted"] = "internal"
    status: Literal["active", "deprecated"] = "active"
    deprecated_after: CalendarDate | None = None
    aliases: tuple[str, ...] = Field(default=(), description="former names that still resolve (renames)")

    @model_validator(mode="after")
    def _consistent(self) -> FeatureDefinition:
        for alias in self.aliases:
            if not re.fullmatch(NAME_PATTERN, alias) or alias == self.name:
                raise ValueError(f"alias {alias!r} must be a valid name other than the feature's own")
        if len(set(self.aliases)) != len(self.aliases):
            raise ValueError(f"aliases must be distinct, not {list(self.aliases)}")
        allowed = _RESULT_TYPES[self.aggregation.function]
        if self.value_type not in allowed:
            raise ValueError(
                f"`{self.aggregation.function}` yields {' or '.join(sorted(allowed))}, not {self.value_type}"
            )
        if self.ttl <= timedelta(0) or self.freshness_slo <= timedelta(0):
            raise ValueError("`ttl` and `freshness_slo` must be positive")
        if self.offline_retention <= timedelta(0):  # 0s: retention would delete every window already ended
            raise ValueError("`offline_retention` must be positive")
        if self.ttl > MAX_TTL:
            raise ValueError(
                f"`ttl` is at most {format_duration(MAX_TTL)} (20 years, the longest TTL Cassandra keeps"
                f" an online value for), not {format_duration(self.ttl)}"
            )
        if self.status == "deprecated" and self.deprecated_after is None:
            raise ValueError("a deprecated feature needs `deprecated_after`")
        return self

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.entity, self.name, self.version)

    def transform_spec(self) -> dict[str, object]:
        """What determines the feature's values; two definitions with equal specs compute equal values.

        Fields added to the model after definitions were first registered are left out while
        unset, so adding one does not change the hash of every definition that does not use it.
        """
        source = self.source.model_dump(mode="json")
        for name in _ADDED_LATER_SOURCE_FIELDS:
            if source.get(name) is None:
                source.pop(name, None)
        return {
            "source": source,
            "window": self.window.model_dump(mode="json"),
            "aggregation": self.aggregation.model_dump(mode="json"),
            "value_type": self.value_type,
        }

    def identity(self) -> dict[str, object]:
        """What a version pins: its values (the transform) and how long they stay valid (TTL).

        A change to any of these is a new version; everything else (owner, description, tags,
        freshness SLO, retention, sensitivity, status, aliases) is metadata of the version.
        """
        return {**self.transform_spec(), "ttl": format_duration(self.ttl)}

    @property
    def identity_hash(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def value_schema(self) -> dict[str, object]:
        """The Avro schema of the feature's value (null where a window holds no value)."""
        return {"type": ["null", SPECS[self.value_type].avro]}

    @property
    def transform_hash(self) -> str:
        canonical = json.dumps(self.transform_spec(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def stream(self) -> str:
        """The window group this feature is computed in: features of one stream close windows together.

        The key of the group's progress (``registry.core.timeline``); ``check_streams`` makes sure one key
        never stands for two different sources."""
        w = self.window
        parts = [format_duration(d) for d in (w.gap if w.kind == "session" else w.size, w.slide) if d is not None]
        return f"{self.source.topic}/{self.entity}/{w.kind}({'/'.join(parts)})"

    @property
    def transform_ref(self) -> str:
        """Readable reference plus content hash, e.g. ``card_transactions:sliding(1h/5m):count(*)@3f2a...``."""
        w = self.window
        parts = [format_duration(d) for d in (w.gap if w.kind == "session" else w.size, w.slide) if d is not None]
        target = self.aggregation.field or "*"
        return f"{self.source.topic}:{w.kind}({'/'.join(parts)}):{self.aggregation.function}({target})@{self.transform_hash}"


def check_entity_keys(definitions: Iterable[FeatureDefinition]) -> dict[str, tuple[str, ...]]:
    """The key fields of each composite-keyed entity type of ``definitions`` (single-key ones are left out).

    A composite key names the entity's key fields (the online API takes a value per field by these
    names), so every definition of a composite-keyed entity type lists the same fields in the same
    order; a single-key entity type may read its one key from differently named fields per topic.
    DefinitionError names two definitions that disagree.
    """
    found: dict[str, tuple[tuple[str, ...], FeatureDefinition]] = {}
    for d in definitions:
        fields = d.source.key_fields
        held = found.setdefault(d.entity, (fields, d))
        if held[0] != fields and (len(fields) > 1 or len(held[0]) > 1):
            raise DefinitionError(
                f"{held[1].entity}.{held[1].name} v{held[1].version} is keyed by {list(held[0])} but "
                f"{d.entity}.{d.name} v{d.version} by {list(fields)}: one entity type has one composite key "
                "(the same fields in the same order), or a single key in every definition"
            )
    return {entity: fields for entity, (fields, _) in found.items() if len(fields) > 1}


def check_streams(definitions: Iterable[FeatureDefinition]) -> dict[str, Source]:
    """The source of each stream (``FeatureDefinition.stream``) of ``definitions``.

    A stream key is the identity of a window group's progress, so features computed together under one
    key must read one source the same way (event schema, key, time and id fields, out-of-orderness).
    DefinitionError names two features that disagree; they need another topic, entity or window.
    """
    found: dict[str, tuple[Source, FeatureDefinition]] = {}
    for d in definitions:
        held = found.setdefault(d.stream, (d.source, d))
        if held[0] != d.source:
            raise DefinitionError(
                f"{held[1].entity}.{held[1].name} v{held[1].version} and {d.entity}.{d.name} v{d.version} are one "
                f"stream ({d.stream}) but read its topic differently: one stream must have one source"
            )
    return {stream: source for stream, (source, _) in found.items()}


def check_lateness(definitions: Iterable[FeatureDefinition], sources: Iterable[Source] | None = None) -> None:
    """DefinitionError if features of one source (read the same way: ``jobs.sql.source_lateness``) disagree on
    ``allowed_lateness``; only ``sources`` are looked at when given.

    Lateness is decided once per event, at the source (design §5.3), so the job refuses such features at
    start; a session feature's lateness is 0. Registration and activation check what would be active.
    """
    wanted = None if sources is None else set(sources)
    found: dict[Source, dict[timedelta, list[FeatureDefinition]]] = {}
    for d in definitions:
        if wanted is None or d.source in wanted:
            found.setdefault(d.source, {}).setdefault(d.window.allowed_lateness, []).append(d)
    for source, by_lateness in found.items():
        if len(by_lateness) > 1:
            detail = "; ".join(
                f"{format_duration(lateness) if lateness else '0s'}: "
                + ", ".join(f"{d.entity}.{d.name} v{d.version}" for d in sorted(held, key=lambda d: d.key))
                for lateness, held in sorted(by_lateness.items())
            )
            raise DefinitionError(
                f"active features reading topic {source.topic} disagree on allowed_lateness ({detail}): lateness is "
                "decided once per event at the source, so one source's features share one allowed_lateness (a "
                "session feature's is 0) or the stream job refuses them"
            )


_NUMBERS = frozenset({"int", "long", "float", "double"})
_FAMILY = {
    "int": "long",
    "long": "long",
    "float": "double",
    "double": "double",
    "string": "string",
    "boolean": "boolean",
}


def event_schema_problems(d: FeatureDefinition) -> list[str]:
    """What keeps the stream job from computing ``d`` over its reader schema (``schemas/<event_schema>.avsc``):
    a schema that is not there, a key, time, id or aggregated field it does not have, or an aggregated field
    whose values the aggregation cannot turn into ``value_type`` (a string summed, or a string's ``min`` as a
    long: Flink's CAST fails on the first event and the job restarts forever). Empty when the job can run it."""
    from schemas import SCHEMA_DIR, field_type, load_schema

    path = SCHEMA_DIR / f"{d.source.event_schema}.avsc"
    if not path.is_file():
        return [f"source.event_schema: no reader schema {d.source.event_schema!r} (schemas/<name>.avsc)"]
    try:
        fields = {f["name"]: field_type(f) for f in load_schema(d.source.event_schema)["fields"]}
    except (OSError, ValueError, KeyError, TypeError, FeatureStoreError) as exc:
        return [f"source.event_schema: {d.source.event_schema!r} is not a usable reader schema: {exc}"]
    # The job reads every field of the reader schema into a row of these types (jobs.feature_job._row_type):
    # any other field, used or not, stops the whole job at start.
    problems = [
        f"source.event_schema: field {name!r} is {kind}; the job reads {', '.join(sorted(_FAMILY))} fields only"
        for name, kind in fields.items()
        if kind not in _FAMILY
    ]
    named = [("source.entity_key", f) for f in d.source.key_fields] + [
        ("source.timestamp_field", d.source.timestamp_field)
    ]
    if d.source.event_id_field is not None:
        named.append(("source.event_id_field", d.source.event_id_field))
    if d.aggregation.field is not None:
        named.append(("aggregation.field", d.aggregation.field))
    for where, field in named:
        if field not in fields:
            problems.append(f"{where}: {d.source.event_schema!r} has no field {field!r}")
    # Ids are the key's text: Flink spells a double 7.0 "7.0" and a boolean "TRUE", labels' columns "7" and "true".
    problems.extend(
        f"source.entity_key: field {f!r} is {fields[f]}; a key field is a string, int or long"
        for f in d.source.key_fields
        if fields.get(f, "string") not in ("string", "int", "long")
    )
    if d.source.timestamp_field in fields and fields[d.source.timestamp_field] != "long":
        problems.append(
            f"source.timestamp_field: {d.source.timestamp_field!r} is {fields[d.source.timestamp_field]}, not epoch "
            "milliseconds (long)"
        )
    function, aggregated = d.aggregation.function, d.aggregation.field
    kind = fields.get(aggregated) if aggregated is not None else None
    if kind is not None and function != "count_distinct":
        family = _FAMILY.get(kind)
        fits = {
            "sum": kind in _NUMBERS or kind == "boolean",
            "mean": kind in _NUMBERS or kind == "boolean",
            "min": d.value_type == "string" or (family in ("long", "double") and d.value_type in ("long", "double")),
            "max": d.value_type == "string" or (family in ("long", "double") and d.value_type in ("long", "double")),
            "last": d.value_type in (family, "string") or (family == "long" and d.value_type == "double"),
        }[function]
        if not fits:
            problems.append(f"aggregation: `{function}` of {aggregated!r} ({kind}) cannot give a {d.value_type} value")
    return problems


def check_event_schema(d: FeatureDefinition) -> None:
    """DefinitionError naming ``d`` and every problem ``event_schema_problems`` finds."""
    problems = event_schema_problems(d)
    if problems:
        raise DefinitionError(f"{d.entity}.{d.name} v{d.version}: " + "; ".join(problems))


def validate_registered(
    raw: Mapping[str, Any], held: Callable[[FeatureDefinition], bool] | None = None
) -> FeatureDefinition:
    """A definition as written (a folder's entry, an HTTP body), held to every bound; or, when it fails only a
    bound added after versions were registered, as ``STORED`` if ``held`` says the store already holds it (the same
    version with the same identity: unchanged, or its metadata updated). So a version registered before a bound
    existed stays in its folder and takes metadata updates; a new one is refused as before, with the same error."""
    try:
        return FeatureDefinition.model_validate(raw)
    except ValidationError:
        if held is None:
            raise
        try:
            stored = FeatureDefinition.model_validate(raw, context=STORED)
        except ValidationError:
            pass
        else:
            if held(stored):
                return stored
        raise
