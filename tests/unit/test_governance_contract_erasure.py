"""Per-entity erasure held to docs/design.md §9 "Per-entity erasure" (and §5.8's erasure by a key field).

- An erasure no store can hold anything for is refused before anything is touched, in one ``error:`` line
  (exit 1): a type no feature is defined for (a misspelling reported zeros everywhere, or, with Cassandra
  down, only that Cassandra was down), an id of a composite-keyed type that does not encode its key (``alice``
  for ``user_merchant``: meant ``--key user_id=alice``).
- ``erase_by_key`` against a brute-force model on real Iceberg tables: every entity of the type whose key
  field has the value leaves the offline table and the serving log (every snapshot, every file), online
  each one is deleted; the same value in another field, another entity type or inside an escaped value
  stays; the key erasure is recorded so the writers drop matching pairs not written yet.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.core import entity_keys
from registry.core.catalog import FeatureCatalog
from registry.definition_store import DefinitionStore
from registry.erasures import ErasureStore
from registry.training_sets import TrainingSetStore
from serving.offline import erasure
from serving.offline.erasure import API_CACHE_TTL_MS, erase_by_key
from sinks.iceberg import layout as offline_layout
from sinks.serving_log import ensure_log_table
from tests.unit.conftest import build_definition
from tests.unit.test_oracle_lifecycle_erasure import StubSession, _log
from tests.unit.test_oracle_lifecycle_faults import _one_error_line, env
from tests.unit.test_training_sets import iceberg_table

__all__ = ["env"]  # the fixture, used by name

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NOW_US = int(NOW.timestamp() * 1_000_000)
PAIR = build_definition(name="pair_count", entity="user_merchant", **{"source.entity_key": ["user_id", "merchant_id"]})
COUNT = build_definition(name="a_count")


@pytest.fixture
def down(env: tuple[Path, Any, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``env`` (user features) plus a composite-keyed type, and an online store nobody listens for."""
    DefinitionStore(tmp_path / "definitions.db").register(PAIR)
    monkeypatch.setenv("FS_CASSANDRA_HOSTS", "127.0.0.1")
    monkeypatch.setenv("FS_CASSANDRA_PORT", "1")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--entity-type", "usr", "--entity-id", "u1"], "no feature is defined for entity type 'usr'"),
        (["--entity-type", "usr", "--key", "user_id=u1"], "no feature is defined for entity type 'usr'"),
        (["--entity-type", "", "--entity-id", "u1"], "give an entity type and an entity id"),
        (
            ["--entity-type", "user_merchant", "--entity-id", "alice"],
            "'alice' encodes 1 key values, not 2: an id of user_merchant encodes its key (user_id, merchant_id) as "
            "'a|b'; to erase every user_merchant of one user_id, give --key user_id=VALUE",
        ),
        (["--entity-type", "user_merchant", "--entity-id", "a\\b|m1"], "is not an encoded key"),
    ],
)
def test_an_erasure_no_store_can_hold_is_refused_before_any_store(
    down: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert erasure.main(args) == 1
    err = _one_error_line(capsys)
    assert says in err and "Cassandra" not in err, err
    assert ErasureStore(tmp_path / "definitions.db").snapshot().ids == {}  # nothing recorded, nothing touched


@pytest.mark.parametrize("entity_id", ["alice|m1", "alice\\|x|m1", "u1"])
def test_an_erasure_a_store_can_hold_goes_on_to_the_stores(
    down: None, capsys: pytest.CaptureFixture[str], entity_id: str
) -> None:
    entity_type = "user" if entity_id == "u1" else "user_merchant"
    assert erasure.main(["--entity-type", entity_type, "--entity-id", entity_id]) == 1
    assert "Cassandra at 127.0.0.1:1" in _one_error_line(capsys)  # past the checks: the down store is reached


def _append(table: Any, ids: list[tuple[str, str]]) -> None:
    """One offline row per (entity type, entity id)."""
    schema = offline_layout.arrow_schema()
    rows = [
        {
            "entity_type": t, "entity_id": e, "feature_name": "pair_count" if t == "user_merchant" else "a_count",
            "feature_version": 1, "event_time": NOW_US - 60_000_000, "window_start": NOW_US - 3_660_000_000,
            "value_long": 1, "value_double": None, "value_string": None, "value_boolean": None,
            "ingested_at": NOW_US - 30_000_000, "revision": 0,
        }
        for t, e in ids
    ]  # fmt: skip
    table.append(pa.Table.from_pylist(rows, schema=schema))


VALUES = ["alice", "bob", "alice|x", "x\\alice", "al"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pairs=st.lists(st.tuples(st.sampled_from(VALUES), st.sampled_from(VALUES)), min_size=1, max_size=8),
    field=st.sampled_from(["user_id", "merchant_id"]),
    value=st.sampled_from(VALUES),
    logged=st.lists(st.tuples(st.sampled_from(VALUES), st.sampled_from(VALUES)), max_size=4),
)
def test_erase_by_key_removes_exactly_the_matching_entities(
    tmp_path_factory: Any,
    pairs: list[tuple[str, str]],
    field: str,
    value: str,
    logged: list[tuple[str, str]],
) -> None:
    folder = tmp_path_factory.mktemp("bykey")
    offline = iceberg_table(folder / "t")
    ids = [("user_merchant", entity_keys.encode(p)) for p in pairs] + [("user", value)]  # a single-key namesake
    _append(offline, ids)
    offline = offline.refresh()
    _append(offline, ids[:1])  # a second snapshot, expired by the erasure
    log = ensure_log_table(offline.catalog, "fs")
    log_ids = [("user_merchant", entity_keys.encode(p)) for p in logged] + [("user", value)]
    _log(log, log_ids)
    position = ("user_id", "merchant_id").index(field)
    matching = {entity_keys.encode(p) for p in [*pairs, *logged] if p[position] == value}
    erasures = ErasureStore(folder / "r.db")
    session = StubSession()
    started_ms = time.time_ns() // 1_000_000
    report = erase_by_key(
        "user_merchant", field, value, session=session, keyspace="fs", offline=offline.refresh(),  # type: ignore[arg-type]
        serving_log=log.refresh(), catalog=FeatureCatalog([PAIR, COUNT]), erasures=erasures,
        training_sets=TrainingSetStore(folder / "r.db"), kafka_bootstrap=None, serving_log_topic="fs_serving_log",
        settle_s=0, now=NOW,
    )  # fmt: skip
    assert report.entities_matched == sorted(matching)
    assert report.entity_id == f"{field}={value}"
    assert sorted(a[2] for a in session.deleted) == sorted(matching)  # online: each matched entity
    erased_at_us = int(NOW.timestamp() * 1000) * 1000 + 999  # USING TIMESTAMP erased_at µs (+999)
    assert all(a[:2] == (erased_at_us, "user_merchant") for a in session.deleted)
    for table, written, name in (
        (offline.refresh(), [*ids, ids[0]], "offline_feature_values"),
        (log.refresh(), log_ids, "serving_log"),
    ):
        kept = sorted(r for r in written if not (r[0] == "user_merchant" and r[1] in matching))
        now = table.scan().to_arrow()
        assert (
            sorted(zip(now.column("entity_type").to_pylist(), now.column("entity_id").to_pylist(), strict=True)) == kept
        )
        assert len(table.snapshots()) == 1
        on_disk = [
            (t, e)
            for p in (folder / "t" / "wh" / "fs.db" / name).rglob("*.parquet")
            for t, e in zip(
                *(pq.read_table(p).column(c).to_pylist() for c in ("entity_type", "entity_id")), strict=True
            )
        ]
        assert not [r for r in on_disk if r[0] == "user_merchant" and r[1] in matching]
    assert report.offline.rows_removed == sum(1 for t, e in [*ids, ids[0]] if t == "user_merchant" and e in matching)
    # Recorded by key: a matching pair never written is covered too, the namesakes are not.
    snapshot = erasures.snapshot()
    never = entity_keys.encode((value, "m_new") if position == 0 else ("u_new", value))
    assert snapshot.erased_at("user_merchant", never) == int(NOW.timestamp() * 1000)
    assert snapshot.erased_at("user", value) is None
    # Its serving-log cutoff is when the online delete ended plus the API's cache TTL (later than erased_at here).
    cutoff = snapshot.served_cutoff("user_merchant", never)
    assert (
        cutoff is not None and started_ms + API_CACHE_TTL_MS <= cutoff <= time.time_ns() // 1_000_000 + API_CACHE_TTL_MS
    )
