"""The deployment gate: refuse a model whose pinned features would not mean what it was trained on.

A model file (TOML) pins each feature it reads::

    model = "fraud-detector"
    [[features]]
    entity = "user"
    name = "txn_count_1h"
    version = 1
    value_type = "long"                    # optional: the type the model was trained on
    identity_hash = "dd3438e9e13f3e10"     # optional: the exact transform and TTL it was trained on

The gate refuses when a pinned feature is missing, when what would serve it differs from what was
pinned (another version serves, the type or transform differs, the event schema in the schema
registry can no longer be read by the feature's reader schema), or when it is deprecated past its
date. Given what the serving log says of the last hours (``health``, from ``serving.offline.parity``),
it also refuses a feature served ``stale`` in more than ``max_stale_share`` of its logged values, or
whose online/offline mismatch or missing ratio is above ``max_parity_ratio``, or whose highest drift
score (PSI, stored by ``serving.offline.statistics`` in ``registry.quality``, offline or served
values) in that span is above ``max_psi`` (each strictly above: a value equal to its threshold
passes).
"""

from __future__ import annotations

import http.client
import json
import threading
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from registry.core import bounded_json
from registry.core.catalog import FeatureCatalog, validation_text
from registry.core.definitions import NAME_PATTERN, FeatureDefinition, ValueType, Version
from registry.core.durable import read_text_file
from registry.core.errors import DefinitionError, RequestFeatureError, UnknownFeatureError
from registry.core.request_features import RequestFeature, Transform
from registry.core.shown import shown


@dataclass(frozen=True)
class ServedHealth:
    """One feature version in the serving log over a span of time: values logged, of them ``stale``, and
    the parity ratios (``serving.offline.parity``)."""

    served: int
    stale: int
    mismatch_ratio: float
    missing_ratio: float


@dataclass(frozen=True)
class Guardrails:
    """The serving log's verdicts the gate applies, and over what span (for the messages)."""

    health: Mapping[tuple[str, str, int], ServedHealth]
    span: str = "24h"
    max_stale_share: float = 0.01
    max_parity_ratio: float = 0.001
    drift: Mapping[tuple[str, str, int], tuple[float, str, str]] = field(default_factory=dict)
    max_psi: float = 0.25


class PinnedFeature(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    entity: str = Field(pattern=NAME_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)
    version: Version
    value_type: ValueType | None = None
    identity_hash: str | None = None


class ModelManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    version: str | None = None
    features: tuple[PinnedFeature, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _each_feature_once(self) -> ModelManifest:
        """A model reads one version of a feature: a name pinned twice (at one version or two) is refused."""
        versions: dict[tuple[str, str], list[int]] = {}
        for pin in self.features:
            versions.setdefault((pin.entity, pin.name), []).append(pin.version)
        twice = [
            f"{e}.{n} pinned {len(v)} times (v{', v'.join(map(str, v))})"
            for (e, n), v in versions.items()
            if len(v) > 1
        ]
        if twice:
            raise ValueError("; ".join(twice))
        return self


def load_model(path: Path) -> ModelManifest:
    where = shown(path)  # one line, whatever the file's name
    try:
        text = read_text_file(path)  # a FIFO blocked the read for good
        if text.startswith("\ufeff"):  # invisible in an editor: TOML's "Invalid statement (at line 1, column 1)"
            raise ValueError("starts with a UTF-8 byte order mark (BOM): save it without one")
        return ModelManifest.model_validate(tomllib.loads(text))
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"{where}: not a valid model file: not UTF-8 text (byte {exc.start})") from exc
    except ValidationError as exc:
        raise DefinitionError(f"{where}: not a valid model file: {validation_text(exc)}") from exc
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: a path with a NUL byte
        raise DefinitionError(f"{where}: not a valid model file: {exc}") from exc
    except RecursionError:  # Python's TOML parser recurses per level of nesting
        raise DefinitionError(f"{where}: not a valid model file: nested too deeply") from None


REGISTRY_ANSWER_S = 5.0
"""How long the gate waits for the schema registry's whole answer to one lookup, body included: one that is
down fails at once, one that hangs or trickles its answer after this many seconds."""


def _answer(request: urllib.request.Request, seconds: float) -> bytes:
    """The body of ``request``'s answer, whole within ``seconds`` (TimeoutError past them).

    urllib's timeout bounds each socket operation only: a server sending a byte now and then would hold
    the gate for as long as it liked. The request runs on a daemon thread this one stops waiting for."""
    outcome: list[bytes | BaseException] = []

    def fetch() -> None:
        try:
            with urllib.request.urlopen(request, timeout=seconds) as resp:
                outcome.append(resp.read())
        except urllib.error.HTTPError as exc:  # its body read here too, within the same bound
            try:
                exc.answer = exc.read()  # type: ignore[attr-defined]
            except (OSError, http.client.HTTPException):
                exc.answer = b""  # type: ignore[attr-defined]
            outcome.append(exc)
        except BaseException as exc:  # handed to the waiting thread
            outcome.append(exc)

    worker = threading.Thread(target=fetch, name="gate-schema-registry", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise TimeoutError(f"no whole answer within {seconds:g} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


SUBJECT_NOT_FOUND = (40401, 40402)
"""Confluent's error codes of a 404 meaning the subject (or its latest version) is not registered: any other 404 is
not the registry's answer (a wrong URL, another server) and fails the gate, naming it."""


def _error_code(body: bytes) -> object:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer.get("error_code") if isinstance(answer, dict) else None


def _latest_schema(registry_url: str, subject: str, token: str | None = None) -> str | None:
    url = f"{registry_url.rstrip('/')}/subjects/{urllib.parse.quote(subject, safe='')}/versions/latest"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        body = _answer(request, REGISTRY_ANSWER_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and _error_code(getattr(exc, "answer", b"")) in SUBJECT_NOT_FOUND:
            return None
        raise DefinitionError(
            f"schema registry {registry_url}: HTTP {exc.code} for {subject}"
            + ("" if exc.code != 404 else ' (not the registry\'s "no such subject": a wrong URL or another server?)')
        ) from exc
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host the resolver cannot encode (a..b, 300 characters)
        raise DefinitionError(f"schema registry {shown(registry_url)} unreachable: {exc}") from exc
    except http.client.HTTPException as exc:  # not HTTP on that port, or an answer cut short
        raise DefinitionError(
            f"schema registry {registry_url}: no whole HTTP answer for {subject} "
            f"({type(exc).__name__}: {str(exc)[:100]!r})"
        ) from exc
    try:  # the registry's answer: a JSON object whose `schema` is the schema's JSON text
        schema = bounded_json.loads(body)["schema"]
        if not isinstance(schema, str):
            raise TypeError(schema)
        bounded_json.loads(schema)
    except (ValueError, KeyError, TypeError):
        raise DefinitionError(
            f"schema registry {registry_url}: the answer for {subject} is not a schema version: {body[:100]!r}"
        ) from None
    return schema


def _schema_problems(label: str, d: FeatureDefinition, registry_url: str, token: str | None = None) -> list[str]:
    """The schema's refusals of ``d``, each named by the pin's ``label`` (``entity.name@vN``), as every refusal is."""
    from registry.schema_registry.avro_compat import incompatibilities
    from schemas import load_schema

    latest = _latest_schema(registry_url, d.source.subject, token)
    if latest is None:
        return [f"{label}: its event subject {d.source.subject!r} has no schema in the registry"]
    problems = incompatibilities(reader=load_schema(d.source.event_schema), writer=json.loads(latest))
    return [f"{label}: events now written to {d.source.subject!r} cannot be read: {p}" for p in problems]


def _drift_problems(label: str, worst: tuple[float, str, str] | None, guard: Guardrails) -> list[str]:
    if worst is None or not worst[0] > guard.max_psi:
        return []
    score, training_set, source = worst
    where = "its served values" if source == "serving_log" else "its offline values"
    shown, limit = _above(score, guard.max_psi, decimals=3)
    return [
        f"{label}: drifted from training set {training_set} in the last {guard.span}: PSI {shown} of {where} "
        f"(> {limit})"
    ]


def _above(value: float, limit: float, *, decimals: int, percent: bool = False) -> tuple[str, str]:
    """``value`` and ``limit`` (``value > limit``) as a refusal shows them: the limit as given (at least
    ``decimals`` places for a percentage), the value with as many places or as many more as it takes to
    read above the limit (never ``1.00% > 1.00%`` or ``PSI 0.250 (> 0.25)``)."""
    scale, unit = (100, "%") if percent else (1, "")
    exact_limit = (Decimal(repr(limit + 0.0)) * scale).normalize()  # + 0.0: -0.0 reads 0
    exponent = exact_limit.as_tuple().exponent
    places = max(decimals, -exponent) if percent and isinstance(exponent, int) else decimals
    limit_text = f"{exact_limit:.{places}f}" if percent else f"{exact_limit:f}"
    if value == float("inf"):
        return "inf" + unit, limit_text + unit
    exact_value = Decimal(repr(value)) * scale
    shown = f"{exact_value:.{places}f}"
    while Decimal(shown) <= Decimal(limit_text) and places <= 20:
        places += 1
        shown = f"{exact_value:.{places}f}" if places <= 20 else str(exact_value.normalize())  # 1E-30: all of it
    return shown + unit, limit_text + unit


def _health_problems(label: str, health: ServedHealth | None, guard: Guardrails) -> list[str]:
    if health is None:
        return []
    problems = []
    if health.served and health.stale / health.served > guard.max_stale_share:
        share, limit = _above(health.stale / health.served, guard.max_stale_share, decimals=2, percent=True)
        problems.append(
            f"{label}: served stale in {health.stale} of {health.served} logged values in the last {guard.span} "
            f"({share} > {limit}): it missed its freshness SLO"
        )
    for what, ratio in (("mismatched offline", health.mismatch_ratio), ("missing offline", health.missing_ratio)):
        if ratio > guard.max_parity_ratio:
            shown, limit = _above(ratio, guard.max_parity_ratio, decimals=2, percent=True)
            problems.append(
                f"{label}: {shown} of values served in the last {guard.span} {what} "
                f"(> {limit}): online and offline disagree"
            )
    return problems


def check_model(
    model: ModelManifest,
    catalog: FeatureCatalog,
    registry_url: str | None,
    *,
    today: date | None = None,
    guardrails: Guardrails | None = None,
    token: str | None = None,
) -> list[str]:
    """Every reason to refuse the model (empty: deploy). ``token``: sent to the schema registry (FS_AUTH=on).

    A pinned request-time feature is checked like a stored one (registered, same type and identity, the
    version its name reads computing the same thing), and its function must run as registered here."""
    today = today or datetime.now(UTC).date()  # a date of the definitions is a UTC date
    problems: list[str] = []
    pinned_as: dict[tuple[str, str], list[str]] = {}  # a feature's own name -> its pins so far
    for pin in model.features:
        label = f"{pin.entity}.{pin.name}@v{pin.version}"
        request = catalog.request_feature(pin.entity, pin.name) is not None
        try:
            pinned: FeatureDefinition | RequestFeature
            serving: FeatureDefinition | RequestFeature
            if request:
                found = catalog.request_feature(pin.entity, pin.name, pin.version)
                if found is None:
                    raise UnknownFeatureError(pin.entity, [pin.name])
                pinned, serving = found, catalog.request_feature(pin.entity, pin.name) or found
            else:
                pinned, serving = catalog.get(pin.entity, pin.name, pin.version), catalog.get(pin.entity, pin.name)
        except UnknownFeatureError:
            problems.append(f"{label}: not registered")
            continue
        # The file refuses a name pinned twice; a former name (alias) is the same feature under another name.
        earlier = pinned_as.setdefault((pin.entity, pinned.name), [])
        if earlier:
            problems.append(
                f"{label}: {pin.entity}.{pinned.name} pinned {len(earlier) + 1} times (also as {', '.join(earlier)});"
                " a model reads one version"
            )
        earlier.append(label)
        if pin.value_type is not None and pin.value_type != pinned.value_type:
            problems.append(f"{label}: trained on {pin.value_type}, registered as {pinned.value_type}")
        if pin.identity_hash is not None and not (
            pinned.pinned_by(pin.identity_hash)
            if isinstance(pinned, RequestFeature)
            else pin.identity_hash == pinned.identity_hash
        ):
            what = "function, inputs or type" if request else "transform/TTL"
            problems.append(f"{label}: {what} changed since training ({pin.identity_hash} -> {pinned.identity_hash})")
        if serving.version != pinned.version and serving.identity_hash != pinned.identity_hash:
            problems.append(
                f"{label}: v{serving.version} serves now, with a different transform; retrain on "
                f"v{serving.version}" + ("" if request else f" or activate v{pinned.version}")
            )
        if isinstance(pinned, RequestFeature):
            try:
                Transform.of(pinned)
            except RequestFeatureError as exc:
                problems.append(f"{label}: {exc.detail}")
            # The live job computes active versions only: an input pinned at another version stops
            # being written, and the feature would be computed from expired (null) inputs.
            for d in catalog.inputs_of(pinned):
                active = catalog.get(d.entity, d.name).version
                if active != d.version:
                    problems.append(
                        f"{label}: input {d.name}@v{d.version} is not computed by the live job (v{active} is "
                        f"active); register a version of {pin.name} that reads v{active}, or activate v{d.version}"
                    )
            continue
        if pinned.deprecated_after is not None and pinned.deprecated_after < today:  # whatever its status says
            problems.append(f"{label}: deprecated since {pinned.deprecated_after.isoformat()}")
        if registry_url is not None:
            problems.extend(_schema_problems(label, pinned, registry_url, token))
        if guardrails is not None:
            key = (pin.entity, pinned.name, pin.version)  # logged and scored by its own name, not a former one
            problems.extend(_health_problems(label, guardrails.health.get(key), guardrails))
            problems.extend(_drift_problems(label, guardrails.drift.get(key), guardrails))
    return problems
