"""bench/pit_join.py's data and its check of the join's answer: windows distinct at every batch size, and a
check that passes on the join's result and fails on a wrong one (a value changed, a null where a value is due)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from bench import pit_join
from registry.core.timeline import empty_value
from serving.offline.historical import get_historical_features

NAMES = [f[0] for f in pit_join.FEATURES]


def _stored(folder: Path) -> pa.Table:
    return ds.dataset(pit_join.data_files(folder), format="parquet").to_table()


def test_windows_are_distinct_when_a_feature_is_made_in_several_batches(tmp_path: Path) -> None:
    # 3,000 rows per feature in batches of 1,000: three batches per feature (as --scale 10 makes five of 2M)
    pit_join.generate(tmp_path, 50, 3000, batch_rows=1000)
    rows = _stored(tmp_path)
    assert rows.num_rows == 3000 * len(NAMES)
    keys = list(
        zip(
            *(
                rows.column(c).to_pylist()
                for c in ("entity_id", "feature_name", "event_time", "ingested_at", "revision")
            ),
            strict=True,
        )
    )
    assert [
        k for k, n in Counter(keys).items() if n > 1
    ] == []  # no (entity, feature, window end, ingestion, revision) twice
    per_entity = Counter(
        zip(rows.column("entity_id").to_pylist(), rows.column("feature_name").to_pylist(), strict=True)
    )
    assert set(per_entity.values()) == {100} and len(per_entity) == 30 * len(NAMES)  # 30 entities, 100 rows each
    windows = Counter(
        zip(*(rows.column(c).to_pylist() for c in ("entity_id", "feature_name", "event_time")), strict=True)
    )
    assert 0 < sum(n - 1 for n in windows.values()) < 0.03 * rows.num_rows  # a window twice only as a replay (~1 %)


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table, pa.Table]:
    folder = tmp_path_factory.mktemp("pit")
    pit_join.generate(folder, 600, 2000, batch_rows=1000)
    labels = pq.read_table(folder / "labels.parquet")
    table = pit_join._table(folder)
    result = get_historical_features(
        table, pit_join.catalog(), labels, NAMES, entity_type="user", entity_column="user_id", chunk_rows=150
    )
    return folder, labels, result


def test_the_check_passes_on_the_joins_answer(joined: tuple[Path, pa.Table, pa.Table]) -> None:
    folder, labels, result = joined
    report = pit_join.check(folder, labels, result, sample=400)
    assert report == {"checked": 400, "mismatches": 0, "examples": []}
    # the reference is not trivial: stored values, empty windows and nulls (expired, missing) all occur
    expected = pit_join.reference(
        folder,
        labels.column("user_id").to_pylist(),
        [t * 1000 for t in labels.column("event_timestamp").cast(pa.int64()).to_pylist()],
    )
    kinds: Counter[str] = Counter()
    for d in pit_join.catalog():
        for v in expected[d.name]:
            kinds[
                "null" if v is None else "empty" if v == empty_value(d) and type(v) is type(empty_value(d)) else "value"
            ] += 1
    assert kinds["null"] and kinds["empty"] and kinds["value"], kinds
    assert result.num_rows == labels.num_rows


def _with(result: pa.Table, name: str, row: int, value: object) -> pa.Table:
    column = result.column(name).to_pylist()
    column[row] = value
    return result.set_column(
        result.schema.get_field_index(name), name, pa.array(column, result.schema.field(name).type)
    )


def _first(result: pa.Table, name: str, non_null: bool) -> int:
    valid = result.column(name).is_valid().to_pylist()
    return valid.index(non_null)


@pytest.mark.parametrize("name", ["txn_count_1h", "amount_max_1d", "last_merchant", "last_is_online"])
def test_the_check_fails_on_a_changed_value(joined: tuple[Path, pa.Table, pa.Table], name: str) -> None:
    folder, labels, result = joined
    row = _first(result, name, True)
    old = result.column(name)[row].as_py()
    new: object = (not old) if isinstance(old, bool) else old + ("x" if isinstance(old, str) else 1)
    report = pit_join.check(folder, labels, _with(result, name, row, new), sample=labels.num_rows)
    assert report["mismatches"] == 1
    assert f"label row {row} " in report["examples"][0] and name in report["examples"][0]


def test_the_check_fails_on_a_null_where_a_value_is_due(joined: tuple[Path, pa.Table, pa.Table]) -> None:
    folder, labels, result = joined
    row = _first(result, "amount_sum_1h", True)
    report = pit_join.check(folder, labels, _with(result, "amount_sum_1h", row, None), sample=labels.num_rows)
    assert report["mismatches"] == 1 and "join None" in report["examples"][0]


def test_the_check_fails_on_a_value_where_none_is_due_and_on_all_nulls(joined: tuple[Path, pa.Table, pa.Table]) -> None:
    folder, labels, result = joined
    row = _first(result, "last_country", False)
    assert (
        pit_join.check(folder, labels, _with(result, "last_country", row, "m_1"), sample=labels.num_rows)["mismatches"]
        == 1
    )
    nulls = pa.table(
        {
            **{c: labels.column(c) for c in labels.column_names},
            **{n: pa.nulls(labels.num_rows, result.schema.field(n).type) for n in NAMES},
        }
    )
    report = pit_join.check(folder, labels, nulls)
    assert report["checked"] == labels.num_rows and report["mismatches"] > labels.num_rows  # every non-null due value
    assert len(report["examples"]) == 10


def test_the_check_fails_on_rows_out_of_order(joined: tuple[Path, pa.Table, pa.Table]) -> None:
    folder, labels, result = joined
    shuffled = result.take(pc.sort_indices(result.column("user_id")))
    assert pit_join.check(folder, labels, shuffled)["mismatches"] > 0
    assert pit_join.check(folder, labels, result.slice(1))["mismatches"] == 1


def test_the_bench_prints_each_size_apart_and_its_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert pit_join.main(["--labels", "300", "--rows", "1000", "--chunk-rows", "100"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()[-2:]
    for column in (
        "labels",
        "rows/feat.",
        "feats",
        "values",
        "entities",
        "warm s (best of 3)",
        "rows opened",
        "checked",
        "load",
    ):
        assert column in header
    assert "one row per feature value" in header
    fields = row.split()
    assert fields[:5] == ["300", "1,000", "10", "10,000", "10"]
    assert "300" in fields[-6:]  # label rows checked


def test_the_bench_fails_and_shows_examples_when_the_check_finds_a_difference(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    timings = {"cold_s": 1.0, "warm_s": 1.0, "warm_cpu_s": 1.0, "peak_rss_mib": 1.0, "rss_before_join_mib": 1.0}
    found = {"load": 0.5, "non_null_share": 0.5, "rows_opened": 1000, "checked": 10, "mismatches": 2}
    examples = {"examples": ["label row 3 (user_1 at 5 µs) txn_count_1h: join 4, reference 5", "another"]}
    replies = {"--run": {**timings, **found, **examples}, "--duckdb": {"duckdb_s": 1.0, "duckdb_peak_rss_mib": 1.0}}
    monkeypatch.setattr(pit_join, "_child", lambda flag, folder, chunk_rows: replies[flag])
    assert pit_join.main(["--labels", "10", "--rows", "100"]) == 1
    err = capsys.readouterr().err
    assert "differs from the reference in 2 of 100 values checked (10 label rows)" in err
    assert "join 4, reference 5" in err


@pytest.mark.parametrize("rows", [1, 9])
def test_a_case_of_fewer_than_ten_rows_per_feature_runs(rows: int, capsys: pytest.CaptureFixture[str]) -> None:
    """--rows under 100 is documented valid: under 10 the pool the labels are drawn near was empty (ValueError)."""
    assert pit_join.main(["--labels", "3", "--rows", str(rows)]) == 0
    fields = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert fields[:2] == ["3", str(rows)]
