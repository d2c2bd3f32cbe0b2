"""A pair feature (user x merchant, a composite entity key) computed by the real job from the topic, served
online by the API and joined offline by the point-in-time join, each against a brute-force reference.

Among the pairs are keys that only the escapes tell apart (``("a|b", "c")`` and ``("a", "b|c")``, a key
ending in a backslash): the job's SQL encoding and the join's Arrow encoding must agree on every one,
and no two pairs may share a row.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from jobs.produce import ensure_topics, make_producer
from registry.core import entity_keys
from registry.core.catalog import load_folder
from registry.core.errors import DefinitionError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply
from serving.offline.batch_scoring import export_feature_vectors
from serving.offline.feature_resolution import resolve_columns
from serving.offline.historical import (
    EntityFeatures,
    get_historical_features,
    get_historical_vectors,
    join_label_batches,
)
from serving.online.app import create_app
from serving.online.client import FeatureClient
from sinks.cassandra.reader import OnlineReader
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.as_of import read_point
from sinks.iceberg.layout import TABLE
from tests.conftest import isolated, run_feature_job, run_module

pytestmark = pytest.mark.integration

MIN = 60_000
STEP = 10 * MIN  # the tumbling window of every feature below
HOUR = 60 * MIN
BASE = time.time_ns() // 1_000_000 // HOUR * HOUR - 5 * HOUR
END = BASE + 3 * HOUR  # events in [BASE, END)
Pair = tuple[str, str]
PAIRS: list[Pair] = [
    *((f"u{u}", f"m{m}") for u in range(3) for m in range(3)),
    ("a|b", "c"),  # these two encode apart only by the escapes
    ("a", "b|c"),
    ("x\\", "y"),  # a trailing backslash
]


def _toml(topic: str, entity: str, key: str, features: str) -> str:
    return (
        f'[defaults]\nentity = "{entity}"\nowner = "it"\nfreshness_slo = "10m"\nttl = "1d"\n'
        'window = { kind = "tumbling", size = "10m" }\n'
        f'[defaults.source]\ntopic = "{topic}"\nevent_schema = "card_transaction"\nsubject = "{topic}-value"\n'
        f'entity_key = {key}\ntimestamp_field = "event_time"\nevent_id_field = "transaction_id"\n\n{features}'
    )


USER_FEATURES = (
    '[[feature]]\nname = "user_count"\nversion = 1\nvalue_type = "long"\naggregation = { function = "count" }\n'
)
PAIR_FEATURES = (
    '[[feature]]\nname = "pair_count"\nversion = 1\nvalue_type = "long"\naggregation = { function = "count" }\n\n'
    '[[feature]]\nname = "pair_amount"\nversion = 1\nvalue_type = "double"\n'
    'aggregation = { function = "sum", field = "amount" }\n'
)


def _events() -> list[dict[str, Any]]:
    """Events over three hours (amounts in quarters: sums are exact), sent within the disorder bound;
    the pairs u0 x m0 and u1 x m1 also buy in the last window, and the twins in the same windows."""
    rng = random.Random(17)
    times = rng.sample(range(BASE, END - STEP), 360)
    pairs = [rng.choice(PAIRS) for _ in times]
    times += [END - 5 * MIN, END - 4 * MIN, END - 3 * MIN, BASE + 31 * MIN, BASE + 32 * MIN]
    pairs += [("u0", "m0"), ("u1", "m1"), ("u0", "m0"), ("a|b", "c"), ("a", "b|c")]
    events = [
        {
            "transaction_id": f"t{i}",
            "user_id": user,
            "merchant_id": merchant,
            "amount": rng.randrange(1, 4000) / 4,
            "currency": "EUR",
            "event_time": t,
        }
        for i, (t, (user, merchant)) in enumerate(zip(times, pairs, strict=True))
    ]
    jitter = {e["transaction_id"]: rng.randrange(4_000) for e in events}
    return sorted(events, key=lambda e: e["event_time"] + jitter[e["transaction_id"]])


def _windows(events: list[dict[str, Any]]) -> dict[tuple[str, str, int], tuple[int, float]]:
    """Brute force: (user, merchant, window end) -> (count, amount sum) of the pair's events in that window."""
    out: dict[tuple[str, str, int], tuple[int, float]] = {}
    for e in events:
        end = e["event_time"] // STEP * STEP + STEP
        count, total = out.get((e["user_id"], e["merchant_id"], end), (0, 0.0))
        out[(e["user_id"], e["merchant_id"], end)] = (count + 1, total + e["amount"])
    return out


def expected(pair: Pair | None, label_ms: int, events: list[dict[str, Any]]) -> tuple[int | None, float | None]:
    """The time rule by hand: the latest window of the pair ending at or before the label; the empty value
    (0) where a later window closed by the label and by the data's reach (the latest end stored) holds none."""
    if pair is None:
        return None, None
    windows = _windows(events)
    reach = max(end for (_, _, end) in windows)
    ends = [end for (u, m, end) in windows if (u, m) == pair and end <= label_ms]
    if not ends:
        return None, None
    latest = max(ends)
    closed = min(label_ms, reach) // STEP * STEP
    if latest < closed:
        return 0, 0.0
    return windows[(*pair, latest)]


def _computed(it_settings: Settings, name: str, topic: str, folder: Path) -> Settings:
    """The user and pair features computed by the job from ``_events()`` on ``topic``, in stores of ``name``."""
    settings = isolated(it_settings, name, folder)
    (settings.definitions_dir / "user.toml").write_text(_toml(topic, "user", '"user_id"', USER_FEATURES))
    (settings.definitions_dir / "pairs.toml").write_text(
        _toml(topic, "user_merchant", '["user_id", "merchant_id"]', PAIR_FEATURES)
    )
    apply(DefinitionStore(settings.definitions_db), load_folder(settings.definitions_dir))
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2)
    producer = make_producer(settings)
    producer.send(topic, _events())
    producer.flush()
    run_feature_job(settings, "--bounded")
    return settings


@pytest.fixture(scope="module")
def run(it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return _computed(it_settings, "pairs", f"it_{run_id}_pairs", tmp_path_factory.mktemp("pairs"))


def test_offline_rows_are_the_pairs_windows(run: Settings) -> None:
    """Every offline row of the pair features is one window of one pair, keyed by the encoded pair: the
    job's SQL encoding equals the Python one, and the twins ``a|b x c`` and ``a x b|c`` stay apart."""
    rows = connect_iceberg(run).load_table(f"{run.iceberg_namespace}.{TABLE}").scan().to_arrow().to_pylist()
    got: dict[tuple[str, str, int], Any] = {}
    for r in rows:
        if r["entity_type"] == "user_merchant":
            end = int(r["event_time"].timestamp() * 1000)
            value = r["value_long"] if r["feature_name"] == "pair_count" else r["value_double"]
            got[(r["feature_name"], r["entity_id"], end)] = value
    windows = _windows(_events())
    want: dict[tuple[str, str, int], Any] = {}
    for (user, merchant, end), (count, total) in windows.items():
        entity_id = entity_keys.encode([user, merchant])
        want[("pair_count", entity_id, end)] = count
        want[("pair_amount", entity_id, end)] = total
    assert got == want
    assert ("pair_count", "a\\|b|c", BASE + 40 * MIN) in got
    assert ("pair_count", "a|b\\|c", BASE + 40 * MIN) in got
    assert any(k[1] == "x\\\\|y" for k in got)


@contextlib.contextmanager
def _api(settings: Settings, now_ms: int) -> Iterator[tuple[Any, FeatureClient]]:
    """The feature API on the real online store, its clock fixed at ``now_ms``, and a client of it."""
    from cassandra.query import tuple_factory

    cluster, session = connect_cassandra(settings)
    try:
        session.row_factory = tuple_factory
        reader = OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0)  # values, not latency
        app = create_app(LiveCatalog(DefinitionStore(settings.definitions_db)), reader, clock_us=lambda: now_ms * 1000)
        yield app, FeatureClient(client=TestClient(app, raise_server_exceptions=False))
    finally:
        cluster.shutdown()


def test_the_pair_is_served_online_by_its_key_fields(run: Settings) -> None:
    """GET with a query parameter per key field, the batch route with ``entity_keys``, and one vector from
    the user's and the pair's features in one request (the client's three calls), against the reference."""
    events = _events()
    now_ms = END + MIN
    with _api(run, now_ms) as (app, client):
        for user, merchant in [p for p in PAIRS if "|" not in "".join(p) and "\\" not in "".join(p)]:
            body = client.get_features("user_merchant", {"user_id": user, "merchant_id": merchant})
            assert body["entity_key"] == {"user_id": user, "merchant_id": merchant}
            count, total = expected((user, merchant), now_ms, events)
            assert body["features"]["pair_count"]["value"] == count, (user, merchant)
            assert body["features"]["pair_amount"]["value"] == total, (user, merchant)
        assert expected(("u0", "m0"), now_ms, events)[0] == 2  # its two purchases in the last window
        batch = client.get_features_batch(
            "user_merchant", [{"user_id": "u0", "merchant_id": "m0"}, {"user_id": "u1", "merchant_id": "m1"}]
        )
        assert [r["features"]["pair_count"]["value"] for r in batch] == [2, 1]
        assert [r["entity_key"]["merchant_id"] for r in batch] == ["m0", "m1"]
        user_part, pair_part = client.get_vectors(
            [
                {"entity_type": "user", "entity_id": "u0", "names": ["user_count"]},
                {
                    "entity_type": "user_merchant",
                    "entity_key": {"user_id": "u0", "merchant_id": "m0"},
                    "names": ["pair_count", "pair_amount"],
                },
            ]
        )
        last_window = [e for e in events if e["user_id"] == "u0" and e["event_time"] >= END - STEP]
        assert user_part["features"]["user_count"]["value"] == len(last_window)
        assert pair_part["features"]["pair_count"]["value"] == 2
        assert pair_part == client.get_features(
            "user_merchant", {"user_id": "u0", "merchant_id": "m0"}, ["pair_count", "pair_amount"]
        )
        http = TestClient(app, raise_server_exceptions=False)
        refused = http.get("/v1/features/user_merchant", params={"user_id": "u0"})
        assert (refused.status_code, refused.json()["error"]) == (400, "bad_entity_key")


def test_the_pair_is_joined_offline_by_its_key_columns(run: Settings) -> None:
    """Label frames with a column per key field (and a null in one of them): the join equals the time rule
    by hand for every label, twins and backslashes included."""
    events = _events()
    rng = random.Random(5)
    labels: list[tuple[Pair | None, int]] = [
        (rng.choice(PAIRS), rng.randrange(BASE, END + 30 * MIN)) for _ in range(300)
    ]
    labels += [(("a|b", "c"), BASE + 40 * MIN), (("a", "b|c"), BASE + 40 * MIN + 1), (None, BASE + HOUR)]
    frame = pa.table(
        {
            "user_id": [p[0] if p else "a" for p, _ in labels],
            "merchant_id": [p[1] if p else None for p, _ in labels],
            "event_timestamp": pa.array([t * 1000 for _, t in labels], pa.timestamp("us", tz="UTC")),
        }
    )
    table = connect_iceberg(run).load_table(f"{run.iceberg_namespace}.{TABLE}")
    catalog = LiveCatalog(DefinitionStore(run.definitions_db)).current()
    joined = get_historical_features(
        table,
        catalog,
        frame,
        ["pair_count", "pair_amount"],
        entity_type="user_merchant",
        entity_column="user_id,merchant_id",
    )
    assert joined.column_names == ["user_id", "merchant_id", "event_timestamp", "pair_count", "pair_amount"]
    want = [expected(p, t, events) for p, t in labels]
    got = list(zip(joined.column("pair_count").to_pylist(), joined.column("pair_amount").to_pylist(), strict=True))
    assert got == want
    assert sum(1 for c, _ in got if c) > 100  # most labels found a window
    by_pair: dict[Pair, set[int]] = defaultdict(set)
    for (p, _), (c, _) in zip(labels, got, strict=True):
        if p is not None and c:
            by_pair[p].add(c)
    assert by_pair[("a|b", "c")] and by_pair[("a", "b|c")]
    # the streaming join (the training CLI's), a batch at a time, gives the same table
    batches = join_label_batches(
        table,
        resolve_columns(catalog, "user_merchant", ["pair_count", "pair_amount"]),
        frame.schema,
        frame.to_batches(max_chunksize=64),
        entity_type="user_merchant",
        entity_column="user_id,merchant_id",
        timestamp_column="event_timestamp",
        point=read_point(table, None),
    )
    assert pa.Table.from_batches(list(batches)).equals(joined)
    # the user's and the pair's features on one label frame, at one read point: the two joins side by side
    both = get_historical_vectors(
        table,
        catalog,
        frame,
        [
            EntityFeatures("user", "user_id", ["user_count"]),
            EntityFeatures("user_merchant", "user_id,merchant_id", ["pair_count", "pair_amount"]),
        ],
    )
    alone = get_historical_features(table, catalog, frame, ["user_count"], entity_type="user", entity_column="user_id")
    assert both.column_names == [*frame.column_names, "user_count", "pair_count", "pair_amount"]
    assert both.column("user_count").equals(alone.column("user_count"))
    assert both.select(["pair_count", "pair_amount"]).equals(joined.select(["pair_count", "pair_amount"]))
    assert both.column("user_count").null_count < both.num_rows // 2
    with pytest.raises(DefinitionError, match="more than one entity type"):
        get_historical_vectors(
            table,
            catalog,
            frame,
            [EntityFeatures("user_merchant", "user_id,merchant_id", ["pair_count"])] * 2,
        )
    with pytest.raises(DefinitionError, match="give 2 entity column"):
        get_historical_features(
            table, catalog, frame, ["pair_count"], entity_type="user_merchant", entity_column="user_id"
        )


def test_online_and_offline_vectors_agree(run: Settings) -> None:
    """The same multi-entity vector (the user's count, the pair's count and amount) served online at an
    instant and joined offline for a label at that instant: equal, pair by pair."""
    now_ms = END + MIN
    plain = [p for p in PAIRS if "|" not in "".join(p) and "\\" not in "".join(p)]
    frame = pa.table(
        {
            "user_id": [u for u, _ in plain],
            "merchant_id": [m for _, m in plain],
            "event_timestamp": pa.array([now_ms * 1000] * len(plain), pa.timestamp("us", tz="UTC")),
        }
    )
    catalog = LiveCatalog(DefinitionStore(run.definitions_db)).current()
    offline = get_historical_vectors(
        connect_iceberg(run).load_table(f"{run.iceberg_namespace}.{TABLE}"),
        catalog,
        frame,
        [
            EntityFeatures("user", "user_id", ["user_count"]),
            EntityFeatures("user_merchant", "user_id,merchant_id", ["pair_count", "pair_amount"]),
        ],
    ).to_pylist()
    with _api(run, now_ms) as (_, client):
        for row in offline:
            user, pair = client.get_vectors(
                [
                    {"entity_type": "user", "entity_id": row["user_id"], "names": ["user_count"]},
                    {
                        "entity_type": "user_merchant",
                        "entity_key": {"user_id": row["user_id"], "merchant_id": row["merchant_id"]},
                        "names": ["pair_count", "pair_amount"],
                    },
                ]
            )
            online = {
                "user_count": user["features"]["user_count"]["value"],
                "pair_count": pair["features"]["pair_count"]["value"],
                "pair_amount": pair["features"]["pair_amount"]["value"],
            }
            assert online == {k: row[k] for k in online}, row
    assert sum(1 for r in offline if r["pair_count"]) >= 2
    # batch scoring: every pair's vector at that instant, with a column per key field, as the join gives it
    exported = export_feature_vectors(
        connect_iceberg(run).load_table(f"{run.iceberg_namespace}.{TABLE}"),
        catalog,
        "user_merchant",
        ["pair_count", "pair_amount"],
        datetime.fromtimestamp(now_ms / 1000, UTC),
    ).to_pylist()
    assert [(r["user_id"], r["merchant_id"]) for r in exported] == sorted(
        PAIRS, key=lambda p: entity_keys.encode(list(p))
    )
    by_pair = {(r["user_id"], r["merchant_id"]): (r["pair_count"], r["pair_amount"]) for r in offline}
    for r in exported:
        assert r["entity_id"] == entity_keys.encode([r["user_id"], r["merchant_id"]])
        if (r["user_id"], r["merchant_id"]) in by_pair:
            assert (r["pair_count"], r["pair_amount"]) == by_pair[(r["user_id"], r["merchant_id"])]
        assert (r["pair_count"], r["pair_amount"]) == expected((r["user_id"], r["merchant_id"]), now_ms, _events())


@pytest.fixture(scope="module")
def erased_run(it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The same, in stores of their own (the erasure test's)."""
    return _computed(it_settings, "pairs_erase", f"it_{run_id}_pairs_erase", tmp_path_factory.mktemp("pairs_erase"))


def _pair_ids(settings: Settings) -> set[str]:
    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").scan().to_arrow()
    return {r["entity_id"] for r in table.to_pylist() if r["entity_type"] == "user_merchant"}


def test_erasing_by_a_key_field_removes_every_pair_of_it_for_good(erased_run: Settings, tmp_path: Path) -> None:
    """`--key user_id=u0` erases each of u0's pairs online and offline, leaves the other pairs and the user
    entity alone, and a replay of the topic, with events of a pair of u0 no store held before, brings
    none of them back."""
    settings = erased_run
    u0_pairs = sorted(entity_keys.encode(["u0", f"m{m}"]) for m in range(3))
    before = _pair_ids(settings)
    assert set(u0_pairs) <= before
    done = run_module(settings, "serving.offline.erasure", "--entity-type", "user_merchant", "--key", "user_id=u0")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["entities_matched"] == u0_pairs
    assert report["online"]["rows_removed"] == 3 * 2  # two features per pair
    assert report["offline"]["rows_removed"] > 0
    assert _pair_ids(settings) == before - set(u0_pairs)
    cluster, session = connect_cassandra(settings)
    try:
        reader = OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0)  # values, not latency
        assert all(reader.read("user_merchant", p) == {} for p in u0_pairs)
        assert reader.read("user_merchant", "u1|m1") != {}
        assert reader.read("user", "u0") != {}  # the user entity is not the pair
    finally:
        cluster.shutdown()
    # A replay of the whole history (a batch run over a table of the events: the backfill path) with old
    # events of a pair of u0 that no store held before (u0 x m9) and of u1 x m9.
    old = [
        {**_events()[0], "transaction_id": f"old{i}", "user_id": user, "merchant_id": "m9", "event_time": BASE + i}
        for i, user in enumerate(["u0", "u1"])
    ]
    history = pa.Table.from_pylist([*_events(), *old])
    history = history.set_column(
        history.schema.get_field_index("event_time"),
        "event_time",
        history.column("event_time").cast(pa.timestamp("ms", tz="UTC")),
    )
    pq.write_table(history, tmp_path / "history.parquet")
    run_feature_job(
        settings,
        "--events",
        str(tmp_path / "history.parquet"),
        "--rejected",
        str(tmp_path / "rejected.parquet"),
        "--versions",
        "user_merchant.pair_count@1,user_merchant.pair_amount@1",  # a table of events feeds one source
    )
    after = _pair_ids(settings)
    assert not any(p.startswith("u0|") for p in after), sorted(p for p in after if p.startswith("u0|"))
    assert "u1|m9" in after
    refused = run_module(settings, "serving.offline.erasure", "--entity-type", "user", "--key", "user_id=u0")
    assert refused.returncode == 1 and "no composite key" in refused.stderr
