"""Request-time features: a value computed at read time from request data and stored features.

A ``RequestFeature`` version names a registered Python function (``module:function``), the stored
feature versions it reads (pinned: ``name@vN``) and the request fields it takes, each with a value type.
The online API and the training-set join call the *same* function on the *same* columns (one Arrow
array per input, aligned row by row), so the two cannot compute different things:

- online, a stored input is the value the API serves for it (null when missing or expired);
- offline, it is the point-in-time value the join gives for the label row (the same rule), and a
  request field is the label frame's column of that name.

The function's module source is part of the version: its SHA-256 (``function_hash``) is recorded when
the version is registered, and a process whose module differs refuses to run it (``RequestFeatureError``
naming both hashes), so a change to the code without a new version cannot skew training and serving
(code imported from other modules is not covered).

The function contract: ``fn(columns: Mapping[str, pyarrow.Array]) -> pyarrow.Array | Sequence``, where
``columns`` maps each input's feature name and each request field's name to an array of ``n`` rows,
and the result has ``n`` values castable (safely) to the feature's value type. It must not depend on
anything but its columns (no clock, no I/O, no state across calls).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.core.definitions import NAME_PATTERN, READ_PARAMETERS, FeatureDefinition, PlainText, Prose, Tags, Version
from registry.core.errors import RequestFeatureError
from registry.core.refs import parse_ref
from registry.core.value_types import ValueType, arrow_type

LABEL_TIME_COLUMN = "event_timestamp"
"""The label frame's time column in a training join unless another is named (``serving.offline.historical``)."""

if TYPE_CHECKING:
    import pyarrow as pa

_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
MAX_STRING = 4096
_LONG = re.compile(r"-?[0-9]{1,100}", re.ASCII)  # then range-checked
_DOUBLE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)  # JSON-like, ASCII digits


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RequestField(_Frozen):
    """A value the caller sends with the request (online) or the label frame holds (offline)."""

    name: str = Field(pattern=NAME_PATTERN)
    value_type: ValueType


class RequestFeature(_Frozen):
    """One version of a request-time feature of one entity type. Versions are immutable."""

    name: str = Field(pattern=NAME_PATTERN)
    entity: str = Field(pattern=NAME_PATTERN)
    version: Version
    owner: PlainText = Field(min_length=1, max_length=256)
    description: Prose = Field(default="", max_length=4096)
    tags: Tags = ()
    value_type: ValueType
    function: str = Field(description="`package.module:function`, importable where it is read")
    function_hash: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{16}$", description="filled from the function's source when registered"
    )
    inputs: tuple[str, ...] = Field(default=(), max_length=64, description="stored features read, `name@vN`")
    request_fields: tuple[RequestField, ...] = Field(default=(), max_length=64)
    kind: Literal["request"] = "request"

    @model_validator(mode="after")
    def _consistent(self) -> RequestFeature:
        if not _FUNCTION.fullmatch(self.function):
            raise ValueError(f"`function` {self.function[:300]!r} must be `package.module:function`")
        pinned = [parse_ref(i) for i in self.inputs]
        bad = [i for i, ref in zip(self.inputs, pinned, strict=True) if ref is None or ref.version is None]
        if bad:
            raise ValueError(f"inputs must pin a version (`name@vN`): {bad}")
        names = [ref.name for ref in pinned if ref is not None] + [f.name for f in self.request_fields]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"input and request field names must be distinct: {twice}")
        reserved = sorted(READ_PARAMETERS & {f.name for f in self.request_fields})
        if reserved:
            raise ValueError(f"request field names {reserved} are taken by the read routes")
        # Offline each request field is the label column of its name: one named like the feature would be refused
        # as a label column named like a feature, one named like the label time would be the label time.
        offline = sorted({self.name, LABEL_TIME_COLUMN} & {f.name for f in self.request_fields})
        if offline:
            raise ValueError(
                f"request field names {offline} cannot be label columns in a training join: the feature's own name, "
                f"or `{LABEL_TIME_COLUMN}` (the label time)"
            )
        if not self.inputs and not self.request_fields:
            raise ValueError("a request feature needs at least one input or request field")
        return self

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.entity, self.name, self.version)

    @property
    def input_refs(self) -> list[tuple[str, int]]:
        """The stored inputs as (name, version), in declared order."""
        refs = [parse_ref(i) for i in self.inputs]
        return [(r.name, r.version) for r in refs if r is not None and r.version is not None]

    def identity(self) -> dict[str, object]:
        """What a version pins; a change to any of it is a new version (the rest is metadata).

        Each input in its canonical spelling ``name@vN``: ``name@N`` names the same version, so it is the
        same identity (and the hash of a version written ``name@vN`` is the one it was registered under)."""
        return {
            "function": self.function,
            "function_hash": self.function_hash,
            "inputs": [f"{name}@v{version}" for name, version in self.input_refs],
            "request_fields": [f.model_dump(mode="json") for f in self.request_fields],
            "value_type": self.value_type,
        }

    @property
    def identity_hash(self) -> str:
        return _hash(self.identity())

    def pinned_by(self, identity_hash: str) -> bool:
        """Whether a pin (a training-set manifest, a gate's model file, a feature service) holding
        ``identity_hash`` names this version: its ``identity_hash``, or the hash of its inputs as written, under
        which a version written ``name@N`` was pinned before inputs were hashed in their canonical spelling."""
        return identity_hash in (self.identity_hash, _hash({**self.identity(), "inputs": list(self.inputs)}))

    def with_function_hash(self) -> RequestFeature:
        """This version with ``function_hash`` taken from the code importable now (registration does this);
        RequestFeatureError if the function cannot be imported or differs from a hash already given."""
        _, found = load_function(self.function, self.name)
        if self.function_hash is not None and self.function_hash != found:
            raise RequestFeatureError(
                self.name,
                f"{self.function} has source hash {found}, not the {self.function_hash} this version names: "
                "register the changed function as a new version",
            )
        return self.model_copy(update={"function_hash": found})


def source_hash(fn: Callable[..., Any]) -> str:
    """The first 16 hex digits of the SHA-256 of the source of ``fn``'s whole module (its helpers and
    constants included: any edit of the module is a change). Code it imports from other modules is not
    covered."""
    module = inspect.getmodule(fn)
    text = inspect.getsource(module) if module is not None else inspect.getsource(fn)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_function(ref: str, feature: str) -> tuple[Callable[..., Any], str]:
    """Import ``module:function``; returns it with its source hash. RequestFeatureError names what failed."""
    module_name, _, attr = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:  # one line too: a failed extension's ImportError spans many
        raise RequestFeatureError(feature, f"cannot import {ref}: {' '.join(str(exc).split())}") from exc
    except BaseException as exc:  # the user's module failed while importing (a syntax error, an exception it
        # raised; ``sys.exit()`` too, which would otherwise end the command without a word, or KeyboardInterrupt)
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise RequestFeatureError(feature, f"cannot import {ref}: {detail}") from exc
    if not callable(fn):
        raise RequestFeatureError(feature, f"{ref} is not a function")
    try:
        return fn, source_hash(fn)
    except (OSError, TypeError) as exc:
        raise RequestFeatureError(feature, f"cannot read the source of {ref}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Transform:
    """A request feature's function, checked against its registered source hash, ready to run on columns."""

    feature: RequestFeature
    fn: Callable[[Mapping[str, Any]], Any]

    @classmethod
    def of(cls, feature: RequestFeature) -> Transform:
        """RequestFeatureError if the function cannot be imported or its source differs from the registered one."""
        fn, found = load_function(feature.function, feature.name)
        if feature.function_hash is None:
            raise RequestFeatureError(feature.name, "the version has no registered function hash")
        if found != feature.function_hash:
            raise RequestFeatureError(
                feature.name,
                f"{feature.function} has changed since v{feature.version} was registered (source hash {found}, "
                f"registered {feature.function_hash}): register the change as a new version",
            )
        return cls(feature, fn)

    def run(self, columns: Mapping[str, pa.Array], n: int) -> pa.Array:
        """The feature's ``n`` values as an Arrow array of its value type; RequestFeatureError if the function
        raises, or returns something that is not ``n`` values of (or safely castable to) that type."""
        import pyarrow as pa

        f = self.feature
        target = arrow_type(f.value_type)
        try:
            result = self.fn(columns)
        except BaseException as exc:  # the user's code: any failure is this feature's error, named (not only an
            # Exception: a KeyboardInterrupt it raised in the API's event loop ended the API process)
            raise RequestFeatureError(f.name, f"{f.function} raised {type(exc).__name__}: {exc}") from exc
        try:
            if isinstance(result, pa.ChunkedArray):
                result = result.combine_chunks()
            array = result if isinstance(result, pa.Array) else pa.array(result)
            if array.type != target:
                array = array.cast(target, safe=True)
        except BaseException as exc:  # whatever the returned object does on conversion (an int past 64 bits, ...)
            raise RequestFeatureError(
                f.name, f"{f.function} returned values that are not {f.value_type}: {exc}"
            ) from exc
        if len(array) != n:
            raise RequestFeatureError(f.name, f"{f.function} returned {len(array)} values for {n} rows")
        if f.value_type == "double":
            import pyarrow.compute as pc

            if pc.any(pc.is_inf(array)).as_py() or pc.any(pc.is_nan(array)).as_py():
                array = pc.if_else(pc.is_finite(array), array, pa.scalar(None, target))  # JSON has no NaN or inf
        return array


# --- request data as the online API receives it -------------------------------------------------------


def parse_text(field: RequestField, text: str) -> Any:
    """A query-string value of ``field`` as its type; ValueError naming the field and the expected form.

    long: optional ``-`` and ASCII digits, within 64 bits; double: a decimal or exponent number of ASCII
    digits that is finite as a double; boolean: ``true`` or ``false``; string: up to 4,096 characters."""
    t = field.value_type
    if t == "string":
        if len(text) > MAX_STRING:
            raise ValueError(f"`{field.name}` is longer than {MAX_STRING} characters")
        return text
    if t == "boolean":
        if text not in ("true", "false"):
            raise ValueError(f"`{field.name}` must be true or false, not {text[:100]!r}")
        return text == "true"
    if t == "long":
        if not _LONG.fullmatch(text) or not -(2**63) <= int(text) < 2**63:
            raise ValueError(f"`{field.name}` must be a 64-bit integer, not {text[:100]!r}")
        return int(text)
    value = float(text) if _DOUBLE.fullmatch(text) else math.nan
    if not math.isfinite(value):
        raise ValueError(f"`{field.name}` must be a finite number, not {text[:100]!r}")
    return value


def check_json(field: RequestField, value: Any) -> Any:
    """A JSON value of ``field`` (null allowed) as its type; ValueError naming the field."""
    if value is None:
        return None
    t = field.value_type
    if t == "string" and isinstance(value, str) and len(value) > MAX_STRING:
        raise ValueError(f"`{field.name}` values must be at most {MAX_STRING} characters, not {len(value):,}")
    ok = {
        "string": isinstance(value, str) and len(value) <= MAX_STRING,
        "boolean": isinstance(value, bool),
        "long": isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63,
        "double": isinstance(value, int | float) and not isinstance(value, bool) and _finite(value),
    }[t]
    if not ok:
        raise ValueError(f"`{field.name}` values must be {t} or null, not {str(value)[:100]!r}")
    return float(value) if t == "double" else value


def _finite(value: float) -> bool:
    """Whether ``value`` is a finite double: an integer past the doubles' range is not (``math.isfinite`` raises)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def request_fields(features: Sequence[RequestFeature]) -> dict[str, RequestField]:
    """The request fields ``features`` take, by name; RequestFeatureError if two give one name two types."""
    out: dict[str, RequestField] = {}
    for f in features:
        for field in f.request_fields:
            held = out.setdefault(field.name, field)
            if held.value_type != field.value_type:
                raise RequestFeatureError(
                    f.name, f"request field `{field.name}` is {field.value_type} here and {held.value_type} elsewhere"
                )
    return out


def _hash(identity: dict[str, object]) -> str:
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def key_field_clashes(
    stored: Iterable[FeatureDefinition],
    held: Iterable[RequestFeature],
    new_definitions: Iterable[FeatureDefinition] = (),
    new_requests: Iterable[RequestFeature] = (),
) -> list[str]:
    """Every request field named like a key field of its entity type that a registration would bring in.

    Such a field would mean two things: online a value the caller sends beside the entity's id or key, offline
    the label frame's column of that name, which is the key column when the frame names its entity column like
    the key field (training/serving skew). So a request feature version new to the store (not among ``held``)
    may not take a request field named like a key field of its entity type (any stored or new version's, active
    or not); and a new stored version may not bring in, as a key field its entity type did not have, the name of a
    request field of that entity type (``held`` or new). Versions already stored are left as they are.
    """
    before: dict[str, set[str]] = {}
    for d in stored:
        before.setdefault(d.entity, set()).update(d.source.key_fields)
    keys = {entity: set(fields) for entity, fields in before.items()}
    new_definitions = list(new_definitions)
    for d in new_definitions:
        keys.setdefault(d.entity, set()).update(d.source.key_fields)
    held = list(held)
    registered = {r.key for r in held}
    new_requests = list(new_requests)
    fields: dict[str, set[str]] = {}
    for r in (*held, *new_requests):
        fields.setdefault(r.entity, set()).update(f.name for f in r.request_fields)
    problems: list[str] = []
    for r in sorted({r.key: r for r in new_requests if r.key not in registered}.values(), key=lambda r: r.key):
        clash = sorted({f.name for f in r.request_fields} & keys.get(r.entity, set()))
        if clash:
            problems.append(
                f"request feature {r.entity}.{r.name} v{r.version}: request field(s) {clash} named like a key field "
                f"of entity type {r.entity} (online a value sent beside the key, offline the key column): rename it"
            )
    for d in sorted({d.key: d for d in new_definitions}.values(), key=lambda d: d.key):
        clash = sorted((set(d.source.key_fields) - before.get(d.entity, set())) & fields.get(d.entity, set()))
        if clash:
            problems.append(
                f"{d.entity}.{d.name} v{d.version}: key field(s) {clash} named like a request field of a request "
                f"feature of entity type {d.entity}; key fields and request fields need different names"
            )
    return problems
