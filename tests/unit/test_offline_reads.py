"""The offline read path (``sinks.iceberg.reader.read_rows`` over ``sinks.iceberg.files``): files read
directly with Arrow and files read by pyiceberg give the same rows, and both equal a brute-force filter
of what was written (entity type, entity, feature name and version, time band, ingestion bound)."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.definitions import FeatureDefinition
from sinks.iceberg import files as offline_files
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.as_of import ReadPoint
from sinks.iceberg.reader import Band, _runs, distinct_entities, lookup, micros, read_rows
from sinks.iceberg.writer import append_rows, ensure_table, sorted_rows

DAY_US = 86_400_000_000
T0_US = 1_700_000_000_000_000 // DAY_US * DAY_US
NAMES = ("f_long", "f_double", "f_string")


def _definitions(make_definition: Any) -> list[FeatureDefinition]:
    return [
        make_definition(name="f_long", version=1, value_type="long"),
        make_definition(
            name="f_double", version=2, value_type="double", aggregation={"function": "sum", "field": "amount"}
        ),
        make_definition(
            name="f_string", version=1, value_type="string", aggregation={"function": "last", "field": "merchant_id"}
        ),
    ]


def _rows(rng: np.random.Generator, n: int) -> pa.Table:
    ends = T0_US + rng.integers(0, 4, n) * DAY_US + rng.integers(0, 24, n) * 3_600_000_000
    feature = rng.integers(0, 3, n)
    values = rng.integers(0, 1000, n)
    columns = {
        "entity_type": np.where(rng.random(n) < 0.2, "merchant", "user").astype(object),
        "entity_id": np.char.add("u", rng.integers(0, 40, n).astype(str)).astype(object),
        "feature_name": np.array(NAMES, dtype=object)[feature],
        "feature_version": np.where(rng.random(n) < 0.15, 9, np.array([1, 2, 1])[feature]).astype(np.int32),
        "event_time": pa.array(ends, pa.timestamp("us", tz="UTC")),
        "window_start": pa.array(ends - 3_600_000_000, pa.timestamp("us", tz="UTC")),
        "value_long": [int(v) if f == 0 and v % 7 else None for f, v in zip(feature, values, strict=True)],
        "value_double": [float(v) / 3 if f == 1 else None for f, v in zip(feature, values, strict=True)],
        "value_string": [f"m{v}" if f == 2 and v % 5 else None for f, v in zip(feature, values, strict=True)],
        "value_boolean": [None] * n,
        "ingested_at": pa.array(T0_US + 10 * DAY_US + rng.integers(0, 3, n) * 1_000_000, pa.timestamp("us", tz="UTC")),
        "revision": [None if i % 11 == 0 else int(r) for i, r in enumerate(rng.integers(1, 4, n))],
    }
    schema = offline_layout.arrow_schema()
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)


@pytest.fixture
def table(tmp_path: Path) -> Any:
    """Sorted appends (as the writer makes them) and one unsorted append (as another writer might)."""
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    table = ensure_table(catalog, "ns")
    rng = np.random.default_rng(11)
    append_rows(table, sorted_rows(_rows(rng, 3_000)))
    append_rows(table, sorted_rows(_rows(rng, 2_000)))
    table.append(_rows(rng, 1_500))
    return catalog.load_table("ns." + offline_layout.TABLE)


def _brute_force(
    table: Any, definition: FeatureDefinition, band: Band, entities: list[str], until_us: int | None
) -> Counter[tuple[Any, ...]]:
    column = f"value_{definition.value_type}"
    out: Counter[tuple[Any, ...]] = Counter()
    for row in table.scan().to_arrow().to_pylist():
        end_us = int(row["event_time"].timestamp() * 1_000_000)
        ingested_us = int(row["ingested_at"].timestamp() * 1_000_000)
        if (
            row["entity_type"] == "user"
            and row["entity_id"] in entities
            and row["feature_name"] == definition.name
            and row["feature_version"] == definition.version
            and band.lo_us <= end_us <= band.hi_us
            and (until_us is None or ingested_us <= until_us)
        ):
            key = (entities.index(row["entity_id"]), end_us, ingested_us, row["revision"] or 0, row[column])
            out[key] += 1
    return out


def _read(table: Any, bands: list[Band], entities: list[str], until_us: int | None) -> list[Counter[tuple[Any, ...]]]:
    point = ReadPoint(table.current_snapshot().snapshot_id, until_us)
    return [_counted(pieces) for pieces in read_rows(table, point, "user", bands, pa.array(entities))]


def _counted(pieces: Any) -> Counter[tuple[Any, ...]]:
    """A feature's rows as read, ``(entity code, end, ingested, revision, value)`` with their counts."""
    rows = pieces.rows()
    return Counter(
        zip(
            rows.code.tolist(),
            rows.end_us.tolist(),
            rows.ingested_us.tolist(),
            rows.revision.tolist(),
            rows.values.to_pylist(),
            strict=True,
        )
    )


def _count_paths(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of files read directly and by pyiceberg's reader, from now on."""
    counts = {"direct": 0, "pyiceberg": 0}
    chosen = offline_files.FileReader._direct

    def counting(self: Any, task: Any) -> Any:
        batches = chosen(self, task)
        counts["direct" if batches is not None else "pyiceberg"] += 1
        return batches

    monkeypatch.setattr(offline_files.FileReader, "_direct", counting)
    return counts


@pytest.mark.parametrize("until", [None, T0_US + 10 * DAY_US + 1_000_000])
def test_direct_and_pyiceberg_reads_equal_a_brute_force_filter(
    table: Any, make_definition: Any, monkeypatch: pytest.MonkeyPatch, until: int | None
) -> None:
    definitions = _definitions(make_definition)
    bands = [
        Band(definitions[0], T0_US, T0_US + 4 * DAY_US),
        Band(definitions[1], T0_US + DAY_US, T0_US + 2 * DAY_US),  # the band's ends are in
        Band(definitions[2], T0_US + 30 * 3_600_000_000, T0_US + 3 * DAY_US - 1),
    ]
    entities = [f"u{i}" for i in range(0, 40, 3)] + ["nobody"]
    expected = [_brute_force(table, d, b, entities, until) for d, b in zip(definitions, bands, strict=True)]
    assert all(expected), "the scenario must keep rows of every feature"

    direct = _count_paths(monkeypatch)
    assert _read(table, bands, entities, until) == expected
    assert direct["direct"] > 0 and direct["pyiceberg"] == 0  # files this project writes are read directly

    monkeypatch.setattr(offline_files.FileReader, "_direct", lambda self, task: None)
    assert _read(table, bands, entities, until) == expected  # pyiceberg's reader: the same rows


def test_a_name_asked_at_two_versions_reads_each_version_with_its_own_band(table: Any, make_definition: Any) -> None:
    """A request feature's input beside another version of it (a feature service pinning both) asks one name at
    two versions. Rows were matched to the first version of their name only: the second version read no row, so
    its column of a training set was null throughout, and its entities were missing from ``distinct_entities``."""
    first, second, third = _definitions(make_definition)
    f_long_9 = make_definition(name="f_long", version=9, value_type="long")
    f_string_9 = make_definition(
        name="f_string", version=9, value_type="string", aggregation={"function": "last", "field": "merchant_id"}
    )
    definitions = [first, second, f_long_9, third, f_string_9]
    bands = [
        Band(first, T0_US, T0_US + 4 * DAY_US),
        Band(second, T0_US, T0_US + 4 * DAY_US),
        Band(f_long_9, T0_US + DAY_US, T0_US + 3 * DAY_US),  # a band of its own beside v1's
        Band(third, T0_US, T0_US + 4 * DAY_US),
        Band(f_string_9, T0_US, T0_US + 4 * DAY_US),
    ]
    entities = [f"u{i}" for i in range(40)]
    expected = [_brute_force(table, d, b, entities, None) for d, b in zip(definitions, bands, strict=True)]
    assert all(expected), "the scenario must keep rows of every version"
    assert _read(table, bands, entities, None) == expected

    point = ReadPoint(table.current_snapshot().snapshot_id, None)
    until_us = T0_US + 10 * DAY_US
    unwritten = make_definition(name="f_long", version=5, value_type="long")  # no row: v9's entities alone
    for asked in ([f_long_9], [first, f_long_9], [f_long_9, first], [unwritten, f_long_9]):
        keys = {(d.name, d.version) for d in asked}
        brute = sorted(
            {
                r["entity_id"]
                for r in table.scan().to_arrow().to_pylist()
                if r["entity_type"] == "user" and (r["feature_name"], r["feature_version"]) in keys
            }
        )
        assert distinct_entities(table, point, "user", asked, until_us).to_pylist() == brute


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_micros_floor_and_ceil_equal_integer_arithmetic_to_the_int64_ends(unit: str) -> None:
    """A nanosecond label at the int64 minimum was ceiled to +9223372036854776 µs (year 2262: ``-(-raw // 1000)``
    wraps), so a row within a 20-year TTL of it read as expired (audit)."""
    edges = [-(2**63), -(2**63) + 1, -1001, -1000, -999, -1, 0, 1, 999, 1000, 1001, 2**63 - 1]
    rng = random.Random(7)
    raw = [*edges, *(rng.randrange(-(2**63), 2**63) for _ in range(200))]
    per_us = {"s": 10**6, "ms": 1000, "us": 1, "ns": 1}[unit]
    if per_us > 1:  # s and ms: the values whose µs fit in an int64, as the join's labels are clipped
        raw = [r for r in raw if -(2**63) <= r * per_us < 2**63]
    column = pa.array(raw, pa.timestamp(unit))
    divide = 1000 if unit == "ns" else 1
    assert micros(column).tolist() == [r * per_us // divide for r in raw]
    assert micros(column, ceil=True).tolist() == [-(-r * per_us // divide) for r in raw]


def _written_without(tmp_path: Path, column: str, seed: int, n: int) -> tuple[SqlCatalog, Any, pa.Table]:
    """(catalog, table, rows): a table whose one append was written without ``column`` (a table from before it
    existed); the column is not added back."""
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    table = ensure_table(catalog, "ns")
    rows = sorted_rows(_rows(np.random.default_rng(seed), n))
    with table.update_schema(allow_incompatible_changes=True) as update:
        update.delete_column(column)
    table.append(rows.drop_columns([column]))
    return catalog, table, rows


def test_files_written_before_a_column_existed_are_read_by_pyiceberg(
    tmp_path: Path, make_definition: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table written before ``revision`` existed: its old files lack the column (read as revision 0),
    next to files written since."""
    catalog, table, rows = _written_without(tmp_path, "revision", 5, 500)
    with table.update_schema() as update:
        update.add_column("revision", offline_layout.SCHEMA.find_field("revision").field_type)
    table = catalog.load_table("ns." + offline_layout.TABLE)
    newer = sorted_rows(_rows(np.random.default_rng(6), 500))
    append_rows(table, newer)
    table = catalog.load_table("ns." + offline_layout.TABLE)
    definitions = _definitions(make_definition)
    bands = [Band(d, T0_US, T0_US + 4 * DAY_US) for d in definitions]
    entities = [f"u{i}" for i in range(40)]
    kinds = _count_paths(monkeypatch)
    got = _read(table, bands, entities, None)
    assert kinds["direct"] > 0 and kinds["pyiceberg"] > 0
    for counted, d in zip(got, definitions, strict=True):
        assert counted == _brute_force(table, d, Band(d, T0_US, T0_US + 4 * DAY_US), entities, None)
    assert sum(sum(c.values()) for c in got) == sum(
        1
        for r in [*rows.to_pylist(), *newer.to_pylist()]
        if r["entity_type"] == "user"
        and (r["feature_name"], r["feature_version"]) in {("f_long", 1), ("f_double", 2), ("f_string", 1)}
    )


@pytest.mark.parametrize("dropped", ["revision", "value_string"])
def test_a_snapshot_from_before_a_column_was_added_is_read_without_it(
    tmp_path: Path, make_definition: Any, dropped: str
) -> None:
    """A scan at a snapshot projects that snapshot's schema: a column added since (``revision`` in a table written
    before revisions existed, a value column) is not in it, and the read asked for it and failed (``Could not find
    column``) at the current snapshot until the next append, and at every ``as_of`` from before the upgrade. Such a
    column is read as absent: revision 0, no value."""
    catalog, table, _ = _written_without(tmp_path, dropped, 7, 300)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    old = snapshot.snapshot_id
    table = ensure_table(catalog, "ns")  # the project's own upgrade adds the column back, with no new snapshot
    current = table.current_snapshot()
    assert dropped in table.schema().column_names and current is not None and current.snapshot_id == old
    definitions = _definitions(make_definition)
    entities = [f"u{i}" for i in range(40)]
    bands = [Band(d, T0_US, T0_US + 4 * DAY_US) for d in definitions]
    got = [_counted(p) for p in read_rows(table, ReadPoint(old, None), "user", bands, pa.array(entities))]
    for counted, d in zip(got, definitions, strict=True):
        expected = _brute_force(table, d, Band(d, T0_US, T0_US + 4 * DAY_US), entities, None)
        if dropped == "revision":
            assert counted == Counter({(*k[:3], 0, *k[4:]): n for k, n in expected.items()})  # read as 0
        elif d.value_type == "string":
            assert counted == Counter({(*k[:4], None): n for k, n in expected.items()})
        else:
            assert counted == expected
    assert sum(sum(c.values()) for c in got) > 0


@pytest.mark.parametrize("seed", range(30))
def test_runs_split_rows_into_maximal_runs_of_one_feature(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    feature = rng.integers(-1, 3, n)
    if seed % 3:  # sorted by feature, as the writer's files are
        feature = np.sort(feature)
    runs = _runs(feature)
    assert runs[0][0] == 0 and runs[-1][1] == n
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(runs))  # contiguous, nothing skipped
    assert all(a < b and (feature[a:b] == feature[a]).all() for a, b in runs)
    assert all(feature[b - 1] != feature[b] for _, b in runs[:-1])  # maximal


def test_a_value_column_is_read_only_from_files_that_may_hold_its_features(
    tmp_path: Path, make_definition: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files of one feature each: a value column of another type is not read from them, and the rows
    read are still exactly a brute-force filter's."""
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    table = ensure_table(catalog, "ns")
    rows = _rows(np.random.default_rng(3), 3_000)
    for name in NAMES:
        append_rows(table, sorted_rows(rows.filter(pc.equal(rows.column("feature_name"), name))))
    table = catalog.load_table("ns." + offline_layout.TABLE)
    definitions = _definitions(make_definition)
    bands = [Band(d, T0_US, T0_US + 4 * DAY_US) for d in definitions]
    entities = [f"u{i}" for i in range(0, 40, 2)]
    read_columns: list[list[str]] = []
    chosen = offline_files.FileReader._file_columns

    def recording(self: Any, fragment: Any) -> list[str]:
        columns = chosen(self, fragment)
        read_columns.append([c for c in columns if c.startswith("value_")])
        return columns

    monkeypatch.setattr(offline_files.FileReader, "_file_columns", recording)
    got = _read(table, bands, entities, None)
    for counted, d, b in zip(got, definitions, bands, strict=True):
        assert counted == _brute_force(table, d, b, entities, None)
    assert read_columns and all(len(c) == 1 for c in read_columns)  # each file: its one feature's column
    assert sorted({c[0] for c in read_columns}) == ["value_double", "value_long", "value_string"]


def test_files_planned_once_serve_reads_along_the_time_axis(
    tmp_path: Path, make_definition: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PlannedFiles``: reads moving along time (as chunks of time-sorted labels do) plan the table a few
    times, each read takes at least the files a fresh plan would (by the files' own statistics), fewer
    than all it planned, and the rows read equal a brute-force filter."""
    from sinks.iceberg.reader import _filter, planned_files, planned_rows

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    table = ensure_table(catalog, "ns")
    rows = _rows(np.random.default_rng(8), 4_000)
    day = pc.divide(pc.cast(rows.column("event_time"), pa.int64()), DAY_US)
    for d in range(int(pc.min(day).as_py()), int(pc.max(day).as_py()) + 1):  # a file per day and feature
        for name in NAMES:
            part = rows.filter(pc.and_(pc.equal(day, d), pc.equal(rows.column("feature_name"), name)))
            if part.num_rows:
                append_rows(table, sorted_rows(part))
    table = catalog.load_table("ns." + offline_layout.TABLE)
    definitions = _definitions(make_definition)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    point = ReadPoint(snapshot.snapshot_id, None)
    files = planned_files(table, point, "user", definitions)
    assert files is not None
    entities = [f"u{i}" for i in range(0, 40, 3)]
    reads = pruned = 0
    for start_h in range(0, 4 * 24, 9):  # windows of 30 h moving forward 9 h at a time
        lo, hi = T0_US + start_h * 3_600_000_000, T0_US + (start_h + 30) * 3_600_000_000
        chosen = definitions[start_h % 3 :] or definitions
        bands = [Band(d, lo, hi) for d in chosen]
        fresh_order = [
            t.file.file_path for t in table.scan(row_filter=_filter("user", chosen, point, lo, hi)).plan_files()
        ]
        taken_order = [t.file.file_path for t in files.tasks(lo, hi, [d.name for d in chosen])]
        fresh, taken = set(fresh_order), set(taken_order)
        assert fresh <= taken, "a file a fresh plan reads was left out"
        assert [f for f in taken_order if f in fresh] == fresh_order  # in the plan's order
        pruned += len(taken) < len(files._tasks)  # the statistics chose: not every planned file
        assert planned_rows(table, point, "user", bands, files) == sum(
            t.file.record_count for t in files.tasks(lo, hi, [d.name for d in chosen])
        )
        pieces = read_rows(table, point, "user", bands, pa.array(entities), files)
        for piece, definition, band in zip(pieces, chosen, bands, strict=True):
            assert _counted(piece) == _brute_force(table, definition, band, entities, None)
        reads += 1
    assert reads == 11 and files.plans <= 4  # a geometric span: a few plans for eleven reads
    assert pruned >= 5, (files.plans, pruned)
    # Jumps: to labels at the end of time (a grown span past year 9999 is unbounded there, not an error),
    # and back before every file (the low side grows).
    names = [d.name for d in definitions]
    year_9000, year_9999 = ((date(y, 12, 31) - date(1970, 1, 1)).days * DAY_US for y in (9000, 9999))
    jumps: list[tuple[int | None, int | None]] = [
        (year_9000 - DAY_US, year_9000),
        (year_9999 - DAY_US, year_9999),
        (T0_US - 30 * DAY_US, T0_US - 29 * DAY_US),
    ]
    for start, stop in [*jumps, (None, None)]:
        fresh_files = {
            t.file.file_path
            for t in table.scan(row_filter=_filter("user", definitions, point, start, stop)).plan_files()
        }
        assert fresh_files <= {t.file.file_path for t in files.tasks(start, stop, names)}
    assert files.tasks(T0_US - 30 * DAY_US, T0_US - 29 * DAY_US, names) == []  # no file holds those times
    assert len(files.tasks(None, None, names)) == len(list(table.scan().plan_files()))
    ends = pc.cast(rows.column("event_time"), pa.int64())
    assert files.time_bounds() == (pc.min(ends).as_py(), pc.max(ends).as_py())  # every file holds user rows


@pytest.mark.parametrize("seed", range(40))
def test_lookup_equals_a_brute_force_search(seed: int) -> None:
    """``lookup`` answers per row the index of its value among ``values`` (the first, if repeated), or -1,
    whichever side it hashes: plain and dictionary-encoded columns, dictionaries with nulls and repeated
    entries, value sets larger and smaller than the dictionary."""
    rng = random.Random(seed)
    pool = [f"e{i}" for i in range(rng.choice([3, 30, 300]))]
    values = [rng.choice(pool) for _ in range(rng.choice([0, 1, 5, 50, 400]))]
    if rng.random() < 0.5:
        values = list(dict.fromkeys(values))  # distinct, as the readers pass them
    entries = [rng.choice(pool) for _ in range(rng.choice([1, 4, 40]))]
    if rng.random() < 0.5:
        entries = list(dict.fromkeys(entries))
    if rng.random() < 0.2:
        entries.append(None)  # type: ignore[arg-type]
    indices = [rng.randrange(len(entries)) if rng.random() < 0.9 else None for _ in range(rng.randint(0, 60))]
    column = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(entries, pa.string()))
    plain = pa.array([None if i is None else entries[i] for i in indices], pa.string())

    def first(value: str | None) -> int:
        return values.index(value) if value is not None and value in values else -1

    expected = [first(None if i is None else entries[i]) for i in indices]
    wanted = pa.array(values, pa.string())
    assert lookup(column, wanted).tolist() == expected
    assert lookup(plain, wanted).tolist() == expected
    assert lookup(pa.chunked_array([column[:7], column[7:]]), wanted).tolist() == expected


def test_lookup_answers_every_occurrence_of_a_repeated_dictionary_entry() -> None:
    column = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 1], pa.int32()), pa.array(["a", "a", "b"]))
    assert lookup(column, pa.array(["c", "a", "d", "e"])).tolist() == [1, 1, -1, 1]


@pytest.mark.parametrize("labels", ["labels.csv", "truncated.parquet", "missing.parquet", "."])
def test_historical_cli_labels_that_are_not_parquet_are_one_line_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], labels: str
) -> None:
    import pyarrow.parquet as pq

    from serving.offline import historical

    (tmp_path / "labels.csv").write_text("user_id,event_timestamp\nu1,2024-01-01T00:00:00Z\n")
    pq.write_table(pa.table({"user_id": ["u1"] * 100, "event_timestamp": list(range(100))}), tmp_path / "ok.parquet")
    (tmp_path / "truncated.parquet").write_bytes((tmp_path / "ok.parquet").read_bytes()[:300])
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "w").as_uri())
    path = tmp_path / labels
    argv = ["--labels", str(path), "--out", str(tmp_path / "o.parquet"), "--entity-type", "user"]
    assert historical.main([*argv, "--entity-column", "user_id", "--features", "txn_count_1h"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --labels {path}: not a readable Parquet file") and err.count("\n") == 1, err


def test_statistics_read_a_snapshot_from_before_the_revision_column(tmp_path: Path, make_definition: Any) -> None:
    """The statistics' own scan at a snapshot asked for ``revision`` there too (``Could not find column``)."""
    from serving.offline.statistics import _rows as statistics_rows

    catalog, table, rows = _written_without(tmp_path, "revision", 8, 300)
    table = ensure_table(catalog, "ns")  # the column back, no new snapshot
    d = _definitions(make_definition)[0]
    snapshot = table.current_snapshot()
    assert snapshot is not None
    ends, values, _ = statistics_rows(table, ReadPoint(snapshot.snapshot_id, None), "user", d, None, None)
    expected = {
        (r["entity_id"], r["event_time"])
        for r in rows.to_pylist()
        if (r["entity_type"], r["feature_name"], r["feature_version"]) == ("user", d.name, d.version)
    }
    assert len(ends) == len(values) == len(expected) > 0
