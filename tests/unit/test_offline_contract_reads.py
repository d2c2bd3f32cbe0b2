"""The offline reads as README ("Training sets, batch scoring, promotion") and docs/design.md §5.1 state them,
at their edges: ``as_of`` on a table whose history was partly expired, label columns of a type no id is
spelled in, and the join CLI's bad arguments (one ``error:`` line, nothing lost)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError, DefinitionError
from registry.definition_store import DefinitionStore
from serving.offline.feature_resolution import resolve_features
from serving.offline.historical import get_historical_features, join_label_batches
from sinks.iceberg.as_of import FIRST_SNAPSHOT_MS, read_point
from sinks.iceberg.maintenance import expire_snapshots
from tests.unit.test_training_sets import INGEST0, MIN, T0, Row, append, iceberg_table, labels_table, stored_definitions


@pytest.fixture(scope="module")
def catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    return FeatureCatalog(stored_definitions(make_definition))


def _count_5m(table: Any, catalog: FeatureCatalog, labels: pa.Table, **kwargs: Any) -> list[Any]:
    result = get_historical_features(
        table, catalog, labels, ["count_5m"], entity_type="user", entity_column="who", **kwargs
    )
    return list(result.column("count_5m").to_pylist())


def _three_snapshots_the_middle_one_expired(table: Any, catalog: FeatureCatalog) -> tuple[Any, list[int], datetime]:
    """Snapshots s1 (pinned: kept), s2 (expired), s3 (current); and a time when s2 was current."""
    count = catalog.get("user", "count_5m")
    s1 = append(table, [Row(count, "e0", 1, T0 + 5 * MIN, INGEST0)])
    time.sleep(0.01)
    s2 = append(table, [Row(count, "e0", 2, T0 + 10 * MIN, INGEST0)])
    time.sleep(0.01)
    during_s2 = datetime.now(UTC)
    time.sleep(0.01)
    s3 = append(table, [Row(count, "e0", 3, T0 + 15 * MIN, INGEST0)])
    table, expired = expire_snapshots(table, keep=[s1])
    assert expired.snapshot_ids == (s2,)
    return table, [s1, s2, s3], during_s2


def test_as_of_a_time_whose_snapshot_was_expired_behind_a_kept_one_is_an_error_not_an_older_read(
    tmp_path: Path, catalog: FeatureCatalog
) -> None:
    """README: "a snapshot id or a time whose snapshot was expired (retention) is a DatasetError naming the
    oldest snapshot kept". With an older snapshot kept (a training set's pin), a time whose snapshot was
    expired read that older snapshot instead: a silent answer of data older than ``as_of``."""
    table, (s1, _, s3), during_s2 = _three_snapshots_the_middle_one_expired(iceberg_table(tmp_path), catalog)
    labels = labels_table([("e0", T0 + 15 * MIN)])
    with pytest.raises(DatasetError, match=rf"was expired: its oldest snapshot kept is {s1}"):
        _count_5m(table, catalog, labels, as_of=during_s2)
    # When s2 was committed after s1 is not known any more: no time from s1 on until s3 can be answered.
    s1_at = datetime.fromtimestamp(table.snapshot_by_id(s1).timestamp_ms / 1000, UTC)
    with pytest.raises(DatasetError, match="was expired"):
        _count_5m(table, catalog, labels, as_of=s1_at)
    assert _count_5m(table, catalog, labels, as_of=s1) == [1]  # by its id, the kept snapshot
    assert _count_5m(table, catalog, labels, as_of=datetime.now(UTC)) == [3]  # s3 covers now
    assert _count_5m(table, catalog, labels, as_of=s3) == [3]


def test_a_time_before_the_first_snapshot_reads_nothing_after_that_snapshot_was_expired_too(
    tmp_path: Path, catalog: FeatureCatalog
) -> None:
    """README: a time before the table's first snapshot reads nothing, one before year 1 too. Once retention had
    expired the first snapshot, such a time was refused as "history ... was expired": the first expiry now records
    the first snapshot's time (``featurestore.first-snapshot-ms``)."""
    table = iceberg_table(tmp_path)
    count = catalog.get("user", "count_5m")
    before_any = datetime.now(UTC)
    time.sleep(0.01)
    s1 = append(table, [Row(count, "e0", 1, T0 + 5 * MIN, INGEST0)])
    first_ms = table.refresh().snapshot_by_id(s1).timestamp_ms
    time.sleep(0.01)
    append(table, [Row(count, "e0", 2, T0 + 10 * MIN, INGEST0)])
    table, expired = expire_snapshots(table.refresh())
    assert expired.snapshot_ids == (s1,)
    assert table.properties[FIRST_SNAPSHOT_MS] == str(first_ms)
    labels = labels_table([("e0", T0 + 15 * MIN)])
    year_1 = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))  # before year 1 in UTC
    for at in (
        before_any,
        datetime(1970, 1, 1, tzinfo=UTC),
        year_1,
        datetime.fromtimestamp((first_ms - 1) / 1000, UTC),
    ):
        assert _count_5m(table, catalog, labels, as_of=at) == [None], at
    with pytest.raises(DatasetError, match="was expired"):  # s1's own time: s1 was current then, and is gone
        _count_5m(table, catalog, labels, as_of=datetime.fromtimestamp(first_ms / 1000, UTC))
    # A later expiry keeps the first time recorded, not its own oldest snapshot's.
    time.sleep(0.01)
    append(table, [Row(count, "e0", 3, T0 + 15 * MIN, INGEST0)])
    table, _ = expire_snapshots(table.refresh())
    assert table.properties[FIRST_SNAPSHOT_MS] == str(first_ms)
    # A table whose first snapshot was expired before any expiry recorded it: not known, refused as before.
    with table.transaction() as tx:
        tx.remove_properties(FIRST_SNAPSHOT_MS)
    table = table.refresh()
    with pytest.raises(DatasetError, match="was expired"):
        _count_5m(table, catalog, labels, as_of=before_any)
    table, _ = expire_snapshots(table)
    assert FIRST_SNAPSHOT_MS not in table.properties


@pytest.mark.parametrize("batch_rows", [1, 2, 100])
def test_the_null_label_times_are_all_counted_whatever_the_batches(
    tmp_path: Path, catalog: FeatureCatalog, batch_rows: int
) -> None:
    """README: a null label timestamp is a DefinitionError naming the column and how many are null. Streamed in
    batches (the CLIs' --chunk-rows), the count was that of the first batch holding one: 1 of 3 for batches of 1."""
    table = iceberg_table(tmp_path)
    labels = pa.table(
        {
            "who": ["e0"] * 6,
            "event_timestamp": pa.array([T0, None, T0, None, None, T0], pa.timestamp("ms", tz="UTC")),
        }
    )
    streamed = join_label_batches(
        table,
        resolve_features(catalog, "user", ["count_5m"]),
        labels.schema,
        labels.to_batches(max_chunksize=batch_rows),
        entity_type="user",
        entity_column="who",
        timestamp_column="event_timestamp",
        point=read_point(table, None),
    )
    with pytest.raises(DefinitionError, match=r"^label column 'event_timestamp' has 3 null timestamps$"):
        list(streamed)


def test_an_expired_snapshot_id_names_the_oldest_snapshot_kept(tmp_path: Path, catalog: FeatureCatalog) -> None:
    table, (s1, s2, _), _ = _three_snapshots_the_middle_one_expired(iceberg_table(tmp_path), catalog)
    with pytest.raises(DatasetError, match=rf"no snapshot {s2} .*oldest snapshot kept is {s1}"):
        _count_5m(table, catalog, labels_table([("e0", T0)]), as_of=s2)
    with pytest.raises(DatasetError, match=rf"no snapshot {s2} .*oldest snapshot kept is {s1}"):
        _count_5m(table, catalog, labels_table([("e0", T0)]), snapshot_id=s2)


@pytest.mark.parametrize(
    "ids",
    [
        pa.array([[1], [2]]),
        pa.array([{"a": 1}, {"a": 2}]),
    ],
    ids=["list", "struct"],
)
def test_an_entity_column_no_id_is_spelled_in_is_a_definition_error(
    tmp_path: Path, catalog: FeatureCatalog, ids: pa.Array
) -> None:
    """Bad input gets the project's named error, not Arrow's ``ArrowNotImplementedError``."""
    table = iceberg_table(tmp_path)
    append(table, [Row(catalog.get("user", "count_5m"), "e0", 1, T0, INGEST0)])
    labels = pa.table({"who": ids, "event_timestamp": pa.array([T0, T0], pa.timestamp("ms", tz="UTC"))})
    with pytest.raises(DefinitionError, match="label column 'who' must hold entity ids"):
        _count_5m(table, catalog, labels)


@pytest.mark.parametrize(
    "ids",
    [
        pa.array([True, False]),
        pa.array([T0, T0], pa.timestamp("ms", tz="UTC")),
        pa.array([None, None], pa.null()),
        pa.array([0, 1], pa.date32()),
    ],
    ids=["boolean", "timestamp", "null", "date"],
)
def test_an_entity_column_of_other_than_strings_or_numbers_is_refused(
    tmp_path: Path, catalog: FeatureCatalog, ids: pa.Array
) -> None:
    """README: an entity column must hold ids (strings or numbers). Arrow can spell these as strings, but not as the
    job spells a key (a boolean is ``true`` there and ``TRUE`` in Flink's CAST): refused, never silently unmatched."""
    table = iceberg_table(tmp_path)
    append(table, [Row(catalog.get("user", "count_5m"), "e0", 1, T0, INGEST0)])
    labels = pa.table({"who": ids, "event_timestamp": pa.array([T0, T0], pa.timestamp("ms", tz="UTC"))})
    with pytest.raises(DefinitionError, match="label column 'who' must hold entity ids"):
        _count_5m(table, catalog, labels)


@pytest.mark.parametrize(
    "ids",
    [
        pa.array(["e0", "e1"], pa.large_string()),
        pa.array(["e0", "e1"]).dictionary_encode(),
        pa.array([7, 8], pa.int16()),
        pa.array([7, 8], pa.uint64()),
    ],
    ids=["large-string", "dictionary-of-string", "int16", "uint64"],
)
def test_an_entity_column_of_strings_or_numbers_is_joined(
    tmp_path: Path, catalog: FeatureCatalog, ids: pa.Array
) -> None:
    table = iceberg_table(tmp_path)
    first = str(ids[0].as_py())
    append(table, [Row(catalog.get("user", "count_5m"), first, 1, T0, INGEST0)])
    labels = pa.table({"who": ids, "event_timestamp": pa.array([T0, T0], pa.timestamp("ms", tz="UTC"))})
    assert _count_5m(table, catalog, labels) == [1, None]


def _join_cli_environment(tmp_path: Path, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cli"
    table = iceberg_table(folder, "feature_store")
    append(table, [Row(catalog.get("user", "count_5m"), "e0", 7, T0, INGEST0)])
    store = DefinitionStore(folder / "definitions.db")
    for d in sorted(catalog, key=lambda d: d.key):
        store.register(d)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(folder / "definitions.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{folder}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (folder / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    labels = tmp_path / "labels.parquet"
    pq.write_table(labels_table([("e0", T0), ("e1", T0)]), labels)
    return labels


def test_the_join_cli_answers_bad_arguments_in_one_line_and_never_replaces_its_labels(
    tmp_path: Path, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serving.offline.historical``: ``--out`` naming the labels file replaced the labels; ``--out`` in a
    folder that does not exist, or labels whose entity column holds lists, ended in a traceback."""
    from serving.offline import historical

    labels = _join_cli_environment(tmp_path, catalog, monkeypatch)
    before = labels.read_bytes()
    common = ["--entity-type", "user", "--entity-column", "who", "--features", "count_5m"]

    def one_error_line(args: list[str]) -> str:
        capsys.readouterr()
        assert historical.main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        return err[0]

    assert "is the labels file" in one_error_line(["--labels", str(labels), "--out", str(labels), *common])
    assert labels.read_bytes() == before
    assert "--out" in one_error_line(["--labels", str(labels), "--out", str(tmp_path / "no" / "o.parquet"), *common])
    lists = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"who": pa.array([[1]]), "event_timestamp": pa.array([T0], pa.timestamp("ms"))}), lists)
    assert "must hold entity ids" in one_error_line(
        ["--labels", str(lists), "--out", str(tmp_path / "o.parquet"), *common]
    )
    assert not list(tmp_path.glob(".o.parquet.*")) and not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(
    ("features", "as_of", "message"),
    [
        ([], datetime(2024, 1, 1, tzinfo=UTC), "give at least one feature"),
        (["count_5m"], "2024-01-01T00:00:00Z", "as_of must be a timezone-aware datetime"),
        (["count_5m"], 1_700_000_000_000, "as_of must be a timezone-aware datetime"),
    ],
)
def test_batch_scoring_refuses_no_features_and_a_time_that_is_not_a_datetime(
    tmp_path: Path, catalog: FeatureCatalog, features: list[str], as_of: Any, message: str
) -> None:
    """An IndexError and an AttributeError before: bad input gets the project's named error."""
    from serving.offline.batch_scoring import export_feature_vectors

    table = iceberg_table(tmp_path)
    append(table, [Row(catalog.get("user", "count_5m"), "e0", 1, T0, INGEST0)])
    with pytest.raises((DatasetError, DefinitionError), match=message):
        export_feature_vectors(table, catalog, "user", features, as_of)


@pytest.mark.parametrize("twice", ["who", "event_timestamp"])
def test_a_label_frame_with_its_entity_or_time_column_twice_is_a_definition_error(
    tmp_path: Path, catalog: FeatureCatalog, twice: str
) -> None:
    """Which of two columns to read is not for the join to guess (it ended in Arrow's ``KeyError``)."""
    table = iceberg_table(tmp_path)
    append(table, [Row(catalog.get("user", "count_5m"), "e0", 1, T0, INGEST0)])
    columns = {"who": pa.array(["e0"]), "event_timestamp": pa.array([T0], pa.timestamp("ms", tz="UTC"))}
    names = ["who", "event_timestamp", twice]
    labels = pa.Table.from_arrays([columns[n] for n in names], names=names)
    with pytest.raises(DefinitionError, match=f"label frame has 2 columns named {twice!r}"):
        _count_5m(table, catalog, labels)


def test_a_label_before_year_one_gets_its_row_of_nulls(tmp_path: Path, catalog: FeatureCatalog) -> None:
    """Every label row gets exactly one output row: one that Arrow holds before 0001-01-01 (no stored window
    ends then) ended in ``OverflowError``."""
    table = iceberg_table(tmp_path)
    append(table, [Row(catalog.get("user", "count_5m"), "e0", 3, T0, INGEST0)])
    before_year_one = -62_200_000_000_000  # ms, in year 0
    labels = labels_table([("e0", before_year_one), ("e0", T0)])
    assert _count_5m(table, catalog, labels) == [None, 3]
    assert _count_5m(table, catalog, labels_table([("e0", before_year_one)])) == [None]


@pytest.mark.parametrize("given", ["count_5m ", "user.count_5m", "count_5m\n", "count_5m@v0"])
def test_a_malformed_reference_is_named_malformed_and_quoted(catalog: FeatureCatalog, given: str) -> None:
    """Design §3.2: a space or a trailing newline makes a reference malformed. It was reported as an unknown feature,
    its trailing space unseen in the message (`unknown feature(s) for entity type 'user': count_5m `)."""
    from serving.offline.feature_resolution import resolve_columns

    for resolve in (resolve_features, resolve_columns):
        with pytest.raises(DefinitionError, match=r"^malformed feature reference\(s\): ") as caught:
            resolve(catalog, "user", ["count_5m", given])
        assert repr(given) in str(caught.value)
