"""The point-in-time join against an oracle written from the documentation alone (README "Training sets",
docs/design.md §5.1, §5.2, §5.8, §9 "Request-time features"), on a real local Iceberg table.

The rule as documented, per label row (entity e, time t) and feature version f:

- the rows visible: those of the snapshot read (``as_of`` a snapshot id: that snapshot; a time: the snapshot
  current then *and* only rows with ``ingested_at`` at or before it; neither: the current snapshot);
- of e's rows of f, the latest window end W <= t (t floored to the microsecond); ties on W resolve to the
  latest ``ingested_at``, then the highest ``revision``, then ``timeline.tie_key`` (no value wins; else the
  greater serialized value as unsigned bytes); none: null;
- t - W > ttl (t ceiled to the microsecond): null (exactly ttl old still counts);
- L = min(t, reach) rounded down to the step, reach = the latest window end stored for f by any entity
  (under the same ``as_of``); L > W: the window L held no events: count, count_distinct, sum 0, others null
  (session windows have no grid: the stored value holds until its TTL);
- otherwise the stored value. A null entity id (any null key field) gets nulls; one output row per label
  row, in input order.

The oracle is plain loops over every row written; nothing in it comes from the join's code.
"""

from __future__ import annotations

import math
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.core import entity_keys
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError
from serving.offline.feature_resolution import resolve_columns
from serving.offline.historical import (
    EntityFeatures,
    get_historical_features,
    get_historical_vectors,
    join_label_batches,
)
from sinks.iceberg.as_of import read_point
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow

MIN_US = 60_000_000
T0_MS = 1_700_000_000_000 // 3_600_000 * 3_600_000  # on every grid used here
T0 = T0_MS * 1000
PRE_1970 = -(T0 + 3 * 86_400_000_000 + 3_600_000_000)  # whole hours: every grid stays on its grid
USERS = ("u0", "u1")
Draw = Callable[[st.SearchStrategy[Any]], Any]
START_MS = time.time_ns() // 1_000_000  # ingestion clocks around the real commit times (as_of a time reads both)
CLOCKS = (START_MS - 60_000, START_MS - 60_000, START_MS - 59_999, START_MS + 3_600_000)


@dataclass(frozen=True)
class Spec:
    name: str
    value_type: str
    function: str
    window: dict[str, str]
    ttl_min: int
    step_min: int | None  # None: a session window (no grid)


SPECS = (
    Spec("cnt", "long", "count", {"kind": "tumbling", "size": "5m"}, 20, 5),
    Spec("amt_sum", "double", "sum", {"kind": "sliding", "size": "10m", "slide": "5m"}, 30, 5),
    Spec("amt_max", "double", "max", {"kind": "tumbling", "size": "15m"}, 40, 15),
    Spec("last_m", "string", "last", {"kind": "tumbling", "size": "5m"}, 15, 5),
    Spec("sess_cnt", "long", "count", {"kind": "session", "gap": "10m"}, 30, None),
    Spec("distinct_m", "long", "count_distinct", {"kind": "sliding", "size": "15m", "slide": "5m"}, 25, 5),
    Spec("amt_mean", "double", "mean", {"kind": "tumbling", "size": "10m"}, 30, 10),
)
PAIR_SPEC = Spec("pair_cnt", "long", "count", {"kind": "tumbling", "size": "5m"}, 20, 5)


def _definition(make: Callable[..., FeatureDefinition], spec: Spec, **extra: Any) -> FeatureDefinition:
    aggregation: dict[str, str] = {"function": spec.function}
    if spec.function != "count":
        aggregation["field"] = "amount" if spec.value_type == "double" else "merchant_id"
    return make(
        name=spec.name,
        value_type=spec.value_type,
        window=spec.window,
        aggregation=aggregation,
        ttl=f"{spec.ttl_min}m",
        **extra,
    )


@pytest.fixture(scope="module")
def catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    pair = {"entity": "user_merchant", "source.entity_key": ["user_id", "merchant_id"]}
    return FeatureCatalog(
        [
            *(_definition(make_definition, s) for s in SPECS),
            _definition(make_definition, PAIR_SPEC, **pair),
            # the same name under another entity type: never read for a user, never part of a user feature's reach
            _definition(make_definition, SPECS[0], entity="merchant"),
        ]
    )


# --- the oracle ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    entity_type: str
    entity_id: str
    name: str
    end_us: int
    revision: int
    value: Any
    ingested_us: int
    snapshot: int  # index of the append that wrote it


def tie_order(value: Any, value_type: str) -> tuple[int, int | bytes]:
    """docs/design.md §5.1 "Ties", written out again: no value wins; else the serialized value as unsigned bytes."""
    if value is None:
        return (1, 0)
    if value_type == "long":
        return (0, value & (2**64 - 1))
    if value_type == "double":
        return (0, int.from_bytes(struct.pack(">d", value), "big"))
    return (0, value.encode())


def oracle(
    stored: Sequence[Stored],
    spec: Spec,
    entity_type: str,
    labels: Sequence[tuple[str | None, int]],
    visible: Callable[[Stored], bool],
) -> list[Any]:
    rows = [s for s in stored if s.entity_type == entity_type and s.name == spec.name and visible(s)]
    reach = max((s.end_us for s in rows), default=None)
    ttl = spec.ttl_min * MIN_US
    out: list[Any] = []
    for entity, t_ns in labels:
        floor_t, ceil_t = t_ns // 1000, -(-t_ns // 1000)
        best: Stored | None = None
        for s in rows:
            if entity is None or s.entity_id != entity or s.end_us > floor_t:
                continue
            key = (s.end_us, s.ingested_us, s.revision, tie_order(s.value, spec.value_type))
            if best is None or key > (
                best.end_us,
                best.ingested_us,
                best.revision,
                tie_order(best.value, spec.value_type),
            ):
                best = s
        if best is None or ceil_t - best.end_us > ttl:
            out.append(None)
            continue
        if spec.step_min is not None:
            assert reach is not None
            step = spec.step_min * MIN_US
            closed = min(floor_t, reach) // step * step
            if closed > best.end_us:
                empty = spec.function in ("count", "count_distinct", "sum")
                out.append((0 if spec.value_type == "long" else 0.0) if empty else None)
                continue
        out.append(best.value)
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return type(a) is type(b) and a == b


# --- data ----------------------------------------------------------------------------------------------

VALUES: dict[str, list[Any]] = {
    "long": [None, 0, 1, 7, -3, 2**62],
    "double": [None, 0.0, -0.0, 1.5, -2.5, float("nan"), 1e300],
    "string": [None, "", "a", "b", "\u00e9"],
}


def _rows(draw: Draw, spec: Spec, entity_type: str, entities: Sequence[str]) -> list[tuple[Any, ...]]:
    """(entity_type, entity id, spec, end µs, revision, value, clock index, batch) drawn to tie often."""
    out = []
    for _ in range(draw(st.integers(0, 10))):
        if spec.step_min is None:
            end_us = T0 + draw(st.integers(0, 6)) * 7 * MIN_US + draw(st.sampled_from([0, 0, 1]))
        else:  # few distinct ends, so that windows are stored several times
            end_us = T0 + draw(st.sampled_from([0, 1, 2, 3, 8])) * spec.step_min * MIN_US
            end_us += draw(st.sampled_from([0, 0, 0, 1, 999]))
        out.append(
            (
                entity_type,
                draw(st.sampled_from(entities)),
                spec,
                end_us,
                draw(st.integers(0, 1)),
                draw(st.sampled_from(VALUES[spec.value_type])),
                draw(st.integers(0, len(CLOCKS) - 1)),
                draw(st.integers(0, 2)),
            )
        )
        if draw(st.booleans()):  # the same window, ingestion time and revision again, another value: a tie
            out.append((*out[-1][:5], draw(st.sampled_from(VALUES[spec.value_type])), *out[-1][6:]))
    return out


def _label_times(draw: Draw, ends: Sequence[tuple[int, int]]) -> list[int]:
    """Label times in ns: on and 1 ns / 1 µs beside stored ends and their TTL edges, grid points, before data."""
    out: list[int] = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["end", "ttl", "grid", "before", "dup"]))
        if kind == "dup" and out:
            out.append(draw(st.sampled_from(out)))
            continue
        if kind in ("end", "ttl") and ends:
            end_us, ttl_us = draw(st.sampled_from(ends))
            at = end_us + (ttl_us if kind == "ttl" else 0)
        elif kind == "before":
            at = T0 - draw(st.sampled_from([1, MIN_US, 10**12]))
        else:
            at = T0 + draw(st.integers(0, 40)) * 5 * MIN_US
        out.append(at * 1000 + draw(st.sampled_from([0, 0, 1, -1, 1000, -1000, 999])))
    return out


def _append(table: Any, writer: OfflineWriter, drawn: Sequence[tuple[Any, ...]], definitions: dict[Any, Any]) -> None:
    parts = []
    for entity_type, entity_id, spec, end_us, revision, value, clock, _ in drawn:
        d = definitions[(entity_type, spec.name)]
        end_ms = end_us // 1000
        one = writer.to_arrow([FeatureRow.of(d, entity_id, value, end_ms - 60_000, end_ms, revision)], CLOCKS[clock])
        at = one.schema.get_field_index("event_time")
        parts.append(one.set_column(at, one.schema.field(at), pa.array([end_us], one.schema.field(at).type)))
    table.append(pa.concat_tables(parts))


def _table(folder: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    sql = SqlCatalog("feature_store", uri=f"sqlite:///{folder}/cat.db", warehouse=f"file://{folder}/wh")
    return ensure_table(sql, "fs")


def _write(table: Any, catalog: FeatureCatalog, rows: Sequence[tuple[Any, ...]]) -> tuple[list[Stored], list[Any]]:
    """Rows appended in up to three snapshots; returns what was stored and each append's snapshot."""
    definitions = {(d.entity, d.name): d for d in catalog}
    writer = OfflineWriter(table)
    stored: list[Stored] = []
    snapshots: list[Any] = []
    for batch in range(3):
        drawn = [r for r in rows if r[7] == batch]
        if not drawn:
            continue
        _append(table, writer, drawn, definitions)
        snapshots.append(table.current_snapshot())
        stored += [
            Stored(e, i, spec.name, end, rev, value, CLOCKS[clock] * 1000, len(snapshots) - 1)
            for e, i, spec, end, rev, value, clock, _ in drawn
        ]
    return stored, snapshots


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    rows = [r for spec in SPECS for r in _rows(draw, spec, "user", USERS)]
    rows += _rows(draw, SPECS[0], "merchant", USERS)
    ends = [(r[3], r[2].ttl_min * MIN_US) for r in rows]
    times = _label_times(draw, ends)
    entities = [draw(st.sampled_from([*USERS, *USERS, "ghost", None])) for _ in times]
    features = draw(st.lists(st.sampled_from([s.name for s in SPECS]), min_size=1, max_size=7, unique=True))
    read = draw(st.sampled_from(["current", "snapshot", "time", "time", "before"]))
    # The same scenario before 1970 too: steps aligned to epoch multiples, floors towards minus infinity.
    shift = draw(st.sampled_from([0, 0, PRE_1970]))
    rows = [(*r[:3], r[3] + shift, *r[4:]) for r in rows]
    return {
        "rows": rows,
        "labels": [(e, t + shift * 1000) for e, t in zip(entities, times, strict=True)],
        "features": features,
        "read": read,
        "pick": draw(st.integers(0, 2)),
        "nudge_us": draw(st.sampled_from([0, 0, -1, 1, -1000])),
        "ingestion_cut": draw(st.sampled_from([None, 0, 2, 3])),
        "chunk_rows": draw(st.sampled_from([1, 2, 3, 250_000])),
    }


def _label_frame(labels: Sequence[tuple[str | None, int]]) -> pa.Table:
    return pa.table(
        {
            "row": pa.array(range(len(labels)), pa.int64()),
            "user_id": pa.array([e for e, _ in labels], pa.string()),
            "event_timestamp": pa.array([t for _, t in labels], pa.timestamp("ns", tz="UTC")),
        }
    )


@settings(
    max_examples=int(__import__("os").environ.get("ORACLE_N", "15")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(scenario=scenarios())
def test_join_equals_the_documented_rule(scenario: dict[str, Any], catalog: FeatureCatalog) -> None:
    with tempfile.TemporaryDirectory() as folder:
        table = _table(Path(folder))
        stored, snapshots = _write(table, catalog, scenario["rows"])
        labels = scenario["labels"]
        frame = _label_frame(labels)
        kwargs: dict[str, Any] = {}
        visible: Callable[[Stored], bool] = lambda s: True  # noqa: E731
        read = scenario["read"] if snapshots else "current"
        if read == "snapshot":
            k = scenario["pick"] % len(snapshots)
            kwargs["as_of"] = snapshots[k].snapshot_id
            visible = lambda s: s.snapshot <= k  # noqa: E731
        elif read in ("time", "before"):
            if read == "before":
                cut_us = snapshots[0].timestamp_ms * 1000 - 1000
            elif scenario["ingestion_cut"] is not None:
                cut_us = CLOCKS[scenario["ingestion_cut"]] * 1000 + scenario["nudge_us"]
            else:
                cut_us = snapshots[scenario["pick"] % len(snapshots)].timestamp_ms * 1000 + scenario["nudge_us"]
            current = [k for k, snap in enumerate(snapshots) if snap.timestamp_ms * 1000 <= cut_us]
            k = max(current, default=-1)
            kwargs["as_of"] = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=cut_us)
            visible = lambda s: s.snapshot <= k and s.ingested_us <= cut_us  # noqa: E731
        result = get_historical_features(
            table,
            catalog,
            frame,
            scenario["features"],
            entity_type="user",
            entity_column="user_id",
            chunk_rows=scenario["chunk_rows"],
            **kwargs,
        )
        streamed = join_label_batches(
            table,
            resolve_columns(catalog, "user", scenario["features"]),
            frame.schema,
            frame.to_batches(max_chunksize=scenario["chunk_rows"]),
            entity_type="user",
            entity_column="user_id",
            timestamp_column="event_timestamp",
            point=read_point(table, kwargs.get("as_of")),
        )
        streamed_table = pa.Table.from_batches(list(streamed), schema=result.schema)
        for name in result.column_names:
            pairs = zip(streamed_table.column(name).to_pylist(), result.column(name).to_pylist(), strict=True)
            assert all(same(a, b) for a, b in pairs), name
        assert result.num_rows == len(labels)
        assert result.column("row").to_pylist() == list(range(len(labels)))
        for name in scenario["features"]:
            spec = next(s for s in SPECS if s.name == name)
            want = oracle(stored, spec, "user", labels, visible)
            got = result.column(name).to_pylist()
            bad = [(i, labels[i], g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if not same(g, w)]
            assert not bad, (name, kwargs, bad[:5])


@settings(
    max_examples=int(__import__("os").environ.get("ORACLE_N", "8")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_composite_keys_join_by_their_encoded_id(data: st.DataObject, catalog: FeatureCatalog) -> None:
    """§5.8: one label column per key field, each cast to a string (integers give their text), encoded as the
    job encodes; a null in any of them matches nothing."""
    users = ["1", "2", "a|b"]
    merchants = ["7", "c", "x\\"]
    keys = [entity_keys.encode([u, m]) for u in users for m in merchants]
    rows = _rows(data.draw, PAIR_SPEC, "user_merchant", keys)
    times = _label_times(data.draw, [(r[3], PAIR_SPEC.ttl_min * MIN_US) for r in rows])
    user_values: list[Any] = [data.draw(st.sampled_from([*users, None])) for _ in times]
    merchant_values: list[Any] = [data.draw(st.sampled_from([*merchants, "zz", None])) for _ in times]
    integers = data.draw(st.booleans()) and all(v is None or v.isdigit() for v in user_values)
    with tempfile.TemporaryDirectory() as folder:
        table = _table(Path(folder))
        stored, _ = _write(table, catalog, rows)
        user_column = (  # typed: a column whose every drawn value is null is still a column of ids
            pa.array([None if v is None else int(v) for v in user_values], pa.int64())
            if integers
            else pa.array(user_values, pa.string())
        )
        frame = pa.table(
            {
                "user_id": user_column,
                "merchant_id": pa.array(merchant_values, pa.string()),
                "event_timestamp": pa.array(times, pa.timestamp("ns", tz="UTC")),
            }
        )
        result = get_historical_features(
            table, catalog, frame, ["pair_cnt"], entity_type="user_merchant", entity_column="user_id,merchant_id"
        )
        ids = [
            None if u is None or m is None else entity_keys.encode([u, m])
            for u, m in zip(user_values, merchant_values, strict=True)
        ]
        want = oracle(stored, PAIR_SPEC, "user_merchant", list(zip(ids, times, strict=True)), lambda s: True)
        assert result.column("user_id").equals(frame.column("user_id"))
        assert result.column("pair_cnt").to_pylist() == want


def _cli_env(folder: Path, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.definition_store import DefinitionStore

    store = DefinitionStore(folder / "definitions.db")
    for d in sorted(catalog, key=lambda d: d.key):
        store.register(d)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(folder / "definitions.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{folder}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", f"file://{folder}/wh")
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")


@settings(
    max_examples=int(__import__("os").environ.get("ORACLE_N", "3")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(scenario=scenarios(), command=st.sampled_from(["historical", "training"]))
def test_the_clis_write_the_documented_rows(
    scenario: dict[str, Any], command: str, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: `serving.offline.historical` and `serving.offline.training build` write one row per label row, in
    input order, each label column as given, then the features by the same rule; exit 0."""
    import pyarrow.parquet as pq

    from serving.offline import historical, training

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        table = _table(folder)
        stored, _ = _write(table, catalog, scenario["rows"])
        _cli_env(folder, catalog, monkeypatch)
        labels = scenario["labels"]
        pq.write_table(_label_frame(labels), folder / "labels.parquet")
        args = [
            "--labels",
            str(folder / "labels.parquet"),
            "--out",
            str(folder / "out.parquet"),
            "--entity-type",
            "user",
            "--entity-column",
            "user_id",
            "--features",
            ",".join(scenario["features"]),
            "--chunk-rows",
            str(scenario["chunk_rows"]),
        ]
        code = historical.main(args) if command == "historical" else training.main(["build", *args])
        assert code == 0
        out = pq.read_table(folder / "out.parquet")
        assert out.column_names == ["row", "user_id", "event_timestamp", *scenario["features"]]
        assert out.select(["row", "user_id", "event_timestamp"]).equals(_label_frame(labels))
        for feature in scenario["features"]:
            spec = next(s for s in SPECS if s.name == feature)
            want = oracle(stored, spec, "user", labels, lambda s: True)
            got = out.column(feature).to_pylist()
            assert all(same(g, w) for g, w in zip(got, want, strict=True)), (feature, got, want)


@pytest.mark.parametrize("command", ["historical", "training"])
def test_a_null_label_time_is_one_error_line_naming_the_column_and_count(
    command: str, tmp_path: Path, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """README: a null label timestamp is a DefinitionError naming the column and how many are null; the CLIs
    answer a FeatureStoreError with one `error:` line, exit 1, and leave no output file behind."""
    import pyarrow.parquet as pq

    from serving.offline import historical, training

    _table(tmp_path)
    _cli_env(tmp_path, catalog, monkeypatch)
    frame = _label_frame([("u0", T0 * 1000), ("u1", T0 * 1000), ("u0", T0 * 1000), ("u1", T0 * 1000)])
    times = pa.array([T0 * 1000, T0 * 1000, None, None], pa.timestamp("ns", tz="UTC"))
    frame = frame.set_column(2, "event_timestamp", times)
    pq.write_table(frame, tmp_path / "labels.parquet")
    out = tmp_path / "out.parquet"
    args = ["--labels", str(tmp_path / "labels.parquet"), "--out", str(out), "--entity-type", "user"]
    args += ["--entity-column", "user_id", "--features", "cnt", "--chunk-rows", "2"]
    code = historical.main(args) if command == "historical" else training.main(["build", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: ") and "event_timestamp" in err[0] and "2 null" in err[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cat.db", "wh", "definitions.db", "labels.parquet"])


@settings(
    max_examples=int(__import__("os").environ.get("ORACLE_N", "6")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(scenario=scenarios(), data=st.data())
def test_several_entity_types_join_at_one_read_point(
    scenario: dict[str, Any], data: st.DataObject, catalog: FeatureCatalog
) -> None:
    """§5.8 "Several entities offline": each part joined by its own label column(s), at one read point, its
    feature columns after the labels in part order; each by the same rule as alone."""
    merchants = ["m1", "m2"]
    pair_keys = [entity_keys.encode([u, m]) for u in USERS for m in merchants]
    rows = scenario["rows"] + _rows(data.draw, PAIR_SPEC, "user_merchant", pair_keys)
    labels = scenario["labels"]
    merchant_of = [data.draw(st.sampled_from([*merchants, None])) for _ in labels]
    with tempfile.TemporaryDirectory() as folder:
        table = _table(Path(folder))
        stored, snapshots = _write(table, catalog, rows)
        kwargs: dict[str, Any] = {}
        visible: Callable[[Stored], bool] = lambda s: True  # noqa: E731
        if snapshots and scenario["read"] != "current":
            cut_us = snapshots[scenario["pick"] % len(snapshots)].timestamp_ms * 1000 + scenario["nudge_us"]
            k = max((k for k, snap in enumerate(snapshots) if snap.timestamp_ms * 1000 <= cut_us), default=-1)
            kwargs["as_of"] = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=cut_us)
            visible = lambda s: s.snapshot <= k and s.ingested_us <= cut_us  # noqa: E731
        frame = _label_frame(labels).append_column("merchant_id", pa.array(merchant_of, pa.string()))
        result = get_historical_vectors(
            table,
            catalog,
            frame,
            [
                EntityFeatures("user", "user_id", scenario["features"]),
                EntityFeatures("user_merchant", "user_id,merchant_id", ["pair_cnt"]),
            ],
            **kwargs,
        )
        assert result.column_names == [*frame.column_names, *scenario["features"], "pair_cnt"]
        pair_labels = [
            (None if e is None or m is None else entity_keys.encode([e, m]), t)
            for (e, t), m in zip(labels, merchant_of, strict=True)
        ]
        for name in [*scenario["features"], "pair_cnt"]:
            spec = PAIR_SPEC if name == "pair_cnt" else next(s for s in SPECS if s.name == name)
            entity_type = "user_merchant" if name == "pair_cnt" else "user"
            want = oracle(stored, spec, entity_type, pair_labels if name == "pair_cnt" else labels, visible)
            got = result.column(name).to_pylist()
            assert all(same(g, w) for g, w in zip(got, want, strict=True)), (name, kwargs, got, want)


@pytest.mark.parametrize(
    ("entity_column", "message"),
    [
        ("merchant_id,user_id", r"keyed by \['user_id', 'merchant_id'\]: give 2 entity column\(s\), comma-separated"),
        ("user_id,user_id", r"\['user_id'\] named more than once in 'user_id,user_id'"),
    ],
)
def test_composite_key_columns_named_twice_or_out_of_key_order_are_refused(
    catalog: FeatureCatalog, entity_column: str, message: str
) -> None:
    """§5.8: one label column per key field, in the key's order. The key's own field names in another order (or one
    named twice) joined each field's ids to the other's: wrong or null features, silently."""
    frame = pa.table(
        {
            "user_id": pa.array(["1"]),
            "merchant_id": pa.array(["7"]),
            "event_timestamp": pa.array([0], pa.timestamp("ns", tz="UTC")),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        table = _table(Path(folder))
        with pytest.raises(DefinitionError, match=message):
            get_historical_features(
                table, catalog, frame, ["pair_cnt"], entity_type="user_merchant", entity_column=entity_column
            )
