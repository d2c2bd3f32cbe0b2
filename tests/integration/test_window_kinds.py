"""Every window kind and every aggregation, computed by the real job from definitions alone, against
a brute-force reference in plain Python.

One seeded random event set (disorder inside the out-of-orderness bound, so no event is late however
the partitions interleave) and one definitions file with tumbling, sliding and session features: one
job run computes them all, at parallelism 1 (two partitions) and at parallelism 2 (four partitions),
and a batch run computes them from the same events in a table (Parquet files, an Iceberg table)
instead of the topic: its offline rows equal the stream runs' row for row.
"""

from __future__ import annotations

import math
import random
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.produce import ensure_topics, make_producer
from registry.core.catalog import load_folder
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from sinks.cassandra.reader import OnlineReader
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.layout import TABLE
from tests.conftest import isolated, run_feature_job

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
BASE = time.time_ns() // 1_000_000 // HOUR * HOUR - 5 * HOUR
OUT_OF_ORDERNESS = 5_000
USERS = 4
# The Iceberg batch run's --until: a tumbling and a sliding window end exactly there (written), and user u9 has
# events exactly one gap before it and at it, and no other, so in the stream its session is [UNTIL - gap, UNTIL +
# gap): the batch, which never sees the event at UNTIL, must not write [UNTIL - gap, UNTIL) (touching sessions merge).
UNTIL = BASE + 150 * MIN
EDGE = [("edge_a", UNTIL - 5 * MIN), ("edge_b", UNTIL)]
# After every other event: u8's two events exactly one gap apart (one session, touching windows merge), and u7's
# event at the time of u8's second, before it in the table (equal times keep the table's order). A batch whose
# watermark reached that time minus 1 ms closed u8's first session before its second event came, and split it.
TIE = BASE + 3 * HOUR + 10 * MIN
TIES = [("tie_a", "u8", TIE), ("tie_b", "u7", TIE + 5 * MIN), ("tie_c", "u8", TIE + 5 * MIN)]

Event = dict[str, Any]  # a card transaction
Window = tuple[int, int]  # (start ms, end ms)

# name -> (window, function, field, value type); the TOML below is generated from this table.
FEATURES: dict[str, tuple[dict[str, str], str, str | None, str]] = {
    "t_count": ({"kind": "tumbling", "size": "10m"}, "count", None, "long"),
    "t_min": ({"kind": "tumbling", "size": "10m"}, "min", "amount", "double"),
    "t_max": ({"kind": "tumbling", "size": "10m"}, "max", "amount", "double"),
    "t_mean": ({"kind": "tumbling", "size": "10m"}, "mean", "amount", "double"),
    "s_sum": ({"kind": "sliding", "size": "30m", "slide": "10m"}, "sum", "amount", "double"),
    "s_last_amount": ({"kind": "sliding", "size": "30m", "slide": "10m"}, "last", "amount", "double"),
    "s_last_merchant": ({"kind": "sliding", "size": "30m", "slide": "10m"}, "last", "merchant_id", "string"),
    "s_distinct": ({"kind": "sliding", "size": "30m", "slide": "10m"}, "count_distinct", "merchant_id", "long"),
    "g_count": ({"kind": "session", "gap": "5m"}, "count", None, "long"),
    "g_max": ({"kind": "session", "gap": "5m"}, "max", "amount", "double"),
    "g_last": ({"kind": "session", "gap": "5m"}, "last", "merchant_id", "string"),
}
_MS = {"m": MIN, "h": HOUR}


def _ms(duration: str) -> int:
    return int(duration[:-1]) * _MS[duration[-1]]


def _toml(topic: str) -> str:
    lines = [
        '[defaults]\nentity = "user"\nowner = "it"\nfreshness_slo = "10m"\nttl = "1d"\n',
        f'[defaults.source]\ntopic = "{topic}"\nevent_schema = "card_transaction"\nsubject = "{topic}-value"',
        'entity_key = "user_id"\ntimestamp_field = "event_time"\nevent_id_field = "transaction_id"\n',
    ]
    for name, (window, function, field, value_type) in FEATURES.items():
        window_toml = ", ".join(f'{k} = "{v}"' for k, v in window.items())
        aggregation = f'function = "{function}"' + (f', field = "{field}"' if field else "")
        lines.append(
            f'[[feature]]\nname = "{name}"\nversion = 1\nvalue_type = "{value_type}"\n'
            f"window = {{ {window_toml} }}\naggregation = {{ {aggregation} }}\n"
        )
    return "\n".join(lines)


def _events(seed: int) -> list[Event]:
    """Events over three hours, sent out of time order, but never by more than the disorder bound."""
    rng = random.Random(seed)
    edges = {t for _, t in EDGE}
    times = [t for t in rng.sample(range(BASE, BASE + 3 * HOUR), 322) if t not in edges][:320]  # distinct: `last`
    events: list[Event] = [
        {
            "transaction_id": f"k{i}",
            "user_id": f"u{rng.randrange(USERS)}",
            "merchant_id": f"m{rng.randrange(6)}",
            "amount": rng.randrange(1, 4000) / 4,
            "currency": "EUR",
            "event_time": t,
        }
        for i, t in enumerate(times)
    ]
    events += [
        {"transaction_id": i, "user_id": "u9", "merchant_id": "m1", "amount": 1.25, "currency": "EUR", "event_time": t}
        for i, t in EDGE
    ]
    # Sent in order of time plus a jitter below the bound: an event is never behind the watermark.
    jitter = {e["transaction_id"]: rng.randrange(OUT_OF_ORDERNESS) for e in events}
    return sorted(events, key=lambda e: e["event_time"] + jitter[e["transaction_id"]]) + [
        {"transaction_id": i, "user_id": user, "merchant_id": "m2", "amount": 2.5, "currency": "EUR", "event_time": t}
        for i, user, t in TIES
    ]


# ---- the brute-force reference ----------------------------------------------------------------


def _fixed_windows(t: int, window: dict[str, str]) -> list[Window]:
    size = _ms(window["size"])
    slide = _ms(window.get("slide", window["size"]))
    ends = range(t // slide * slide + slide, t + size + 1, slide)
    return [(end - size, end) for end in ends if end - size <= t < end]


def _sessions(times: list[int], gap: int) -> list[tuple[Window, list[int]]]:
    """Each event opens [t, t + gap); overlapping or touching windows merge (Flink's session semantics: two events
    exactly ``gap`` apart are one session, checked in Flink by tests/unit/test_oracle_stream_sql.py)."""
    out: list[tuple[Window, list[int]]] = []
    for t in sorted(times):
        if out and t <= out[-1][0][1]:
            (start, _), members = out[-1]
            out[-1] = ((start, t + gap), [*members, t])
        else:
            out.append(((t, t + gap), [t]))
    return out


_AGGREGATE: dict[str, Callable[[list[Event], Any], Any]] = {
    "count": lambda es, _: len(es),
    "sum": lambda es, f: sum(e[f] for e in es),
    "mean": lambda es, f: sum(e[f] for e in es) / len(es),
    "min": lambda es, f: min(e[f] for e in es),
    "max": lambda es, f: max(e[f] for e in es),
    "last": lambda es, f: max(es, key=lambda e: e["event_time"])[f],
    "count_distinct": lambda es, f: len({e[f] for e in es}),
}


def reference(events: list[Event]) -> dict[tuple[str, str, Window], Any]:
    """(feature, user, window) -> final value, for every window that holds an event."""
    out: dict[tuple[str, str, Window], Any] = {}
    by_user: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e)
    for name, (window, function, field, _) in FEATURES.items():
        for user, user_events in by_user.items():
            members: dict[Window, list[Event]] = defaultdict(list)
            if window["kind"] == "session":
                at = {e["event_time"]: e for e in user_events}
                for w, times in _sessions(list(at), _ms(window["gap"])):
                    members[w] = [at[t] for t in times]
            else:
                for e in user_events:
                    for w in _fixed_windows(e["event_time"], window):
                        members[w].append(e)
            for w, es in members.items():
                out[(name, user, w)] = _AGGREGATE[function](es, field)
    return out


# ---- the run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[1, 2], ids=["parallelism1", "parallelism2"])
def run(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    parallelism: int = request.param
    settings = isolated(it_settings, f"kinds{parallelism}", tmp_path_factory.mktemp(f"kinds{parallelism}"))
    topic = f"it_{run_id}_kinds_p{parallelism}"
    (settings.definitions_dir / "features.toml").write_text(_toml(topic))
    # A feature with allowed lateness on another topic: late firing is on in the job, and the session
    # features above must still run (Flink refuses late firing for session windows).
    late_topic = f"{topic}_late"
    (settings.definitions_dir / "late.toml").write_text(
        _toml(late_topic).split("[[feature]]")[0]
        + '[[feature]]\nname = "late_count"\nversion = 1\nvalue_type = "long"\n'
        'window = { kind = "tumbling", size = "10m", allowed_lateness = "5m" }\naggregation = { function = "count" }\n'
    )
    apply(DefinitionStore(settings.definitions_db), load_folder(settings.definitions_dir))
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2 * parallelism)
    ensure_topics(settings.kafka_bootstrap, [late_topic, f"{late_topic}.dlq"], partitions=1)
    producer = make_producer(settings)
    producer.send(topic, _events(seed=11))
    producer.flush()
    _run_job(settings, "--bounded", "--parallelism", str(parallelism))
    yield settings


BATCH_LOCATIONS = ["parquet", "iceberg"]  # where a batch run reads the events from


def _events_table(events: list[Event]) -> pa.Table:
    """The events as a table, shuffled, with event time as a timestamp column, two resends (the
    event-id dedup drops them) and three records the decoder would dead-letter."""
    rng = random.Random(3)
    rows = [*events, events[5], events[40]]
    rows += [
        {**events[0], "transaction_id": "bad_nan", "amount": math.nan},
        {**events[1], "transaction_id": "bad_user", "user_id": ""},
        {**events[2], "transaction_id": "bad_time", "event_time": -5},
    ]
    rng.shuffle(rows)
    ties = [i for i, _, _ in TIES]
    rows = [r for r in rows if r["transaction_id"] not in ties] + sorted(
        (r for r in rows if r["transaction_id"] in ties), key=lambda r: ties.index(r["transaction_id"])
    )  # the ties in their order, u7's event before u8's second
    table = pa.Table.from_pylist(rows)
    ts = table.column("event_time").cast(pa.timestamp("ms", tz="UTC"))
    return table.set_column(table.schema.get_field_index("event_time"), "event_time", ts)


def _run_job(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The feature job with these arguments (no metrics endpoint); it must succeed."""
    return run_feature_job(settings, *args)


def _batch_job(settings: Settings, events: str, rejected: Path, *until: str) -> None:
    job = _run_job(settings, "--events", events, "--rejected", str(rejected), *until)
    assert "3 rejected" in job.stderr, job.stderr[-2000:]


BATCH_UNTIL = {"parquet": None, "iceberg": UNTIL}  # the Iceberg run also checks --until at its edges


def _kept_by_until(feature_name: str, window_end: int, until: int | None) -> bool:
    """What ``--until`` keeps (design §5.7): windows ending at or before it, sessions ending before it."""
    if until is None:
        return True
    return window_end < until if FEATURES[feature_name][0]["kind"] == "session" else window_end <= until


@pytest.fixture(scope="module")
def batch_runs(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Settings, Path]]:
    """The same definitions and events, read from a table by `python -m jobs.feature_job --events`: once
    from a folder of Parquet files, once from an Iceberg table. Location -> (its settings, rejected file)."""
    table = _events_table(_events(seed=11))
    out = {}
    for kind in BATCH_LOCATIONS:
        folder = tmp_path_factory.mktemp(f"batch_{kind}")
        settings = isolated(it_settings, f"kinds_batch_{kind}", folder / "definitions")
        topic = f"it_{run_id}_kinds_batch"  # named by the definitions, never read: the events come from the table
        (settings.definitions_dir / "features.toml").write_text(_toml(topic))
        apply(DefinitionStore(settings.definitions_db), load_folder(settings.definitions_dir))
        if kind == "parquet":
            (folder / "events").mkdir()
            pq.write_table(table.slice(0, 100), folder / "events" / "part-0.parquet")
            pq.write_table(table.slice(100), folder / "events" / "part-1.parquet")
            events = str(folder / "events")
        else:
            catalog = connect_iceberg(settings)
            namespace = f"{settings.iceberg_namespace}_raw"
            catalog.create_namespace_if_not_exists(namespace)
            catalog.create_table(f"{namespace}.card_transactions", schema=table.schema).append(table)
            events = f"iceberg:{namespace}.card_transactions"
        until = BATCH_UNTIL[kind]
        _batch_job(settings, events, folder / "rejected.parquet", *(["--until", str(until)] if until else []))
        out[kind] = (settings, folder / "rejected.parquet")
    return out


def _offline_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every offline row but its commit time, in a fixed order."""
    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").scan().to_arrow()
    rows = table.drop_columns(["ingested_at"]).to_pylist()
    return sorted(rows, key=lambda r: (r["feature_name"], r["entity_id"], r["event_time"], r["revision"]))


@pytest.mark.parametrize("location", BATCH_LOCATIONS)
def test_a_batch_run_writes_the_stream_runs_offline_rows(
    run: Settings, batch_runs: dict[str, tuple[Settings, Path]], location: str
) -> None:
    """Same windows, values and revisions, bit for bit (the amounts are quarters: every sum is exact in
    either order of addition), whether the events came from the topic or from a table; with --until, the
    stream's windows that it keeps."""
    stream, batch = _offline_rows(run), _offline_rows(batch_runs[location][0])
    assert len(stream) > 500
    until = BATCH_UNTIL[location]
    end = {id(r): int(r["event_time"].timestamp() * 1000) for r in stream}
    assert batch == [r for r in stream if _kept_by_until(r["feature_name"], end[id(r)], until)]
    tied = [(r["entity_id"], end[id(r)], r["value_long"]) for r in stream if r["feature_name"] == "g_count"]
    assert [t for t in tied if t[0] in ("u7", "u8")] == [("u7", TIE + 10 * MIN, 1), ("u8", TIE + 10 * MIN, 2)]
    if until is not None:  # the edges were there to cut: windows ending exactly at UNTIL, u9's session across it
        assert {r["feature_name"] for r in stream if end[id(r)] == until} >= {"t_count", "s_sum"}
        sessions = [
            (int(r["window_start"].timestamp() * 1000), end[id(r)], r["value_long"])
            for r in stream
            if r["feature_name"] == "g_count" and r["entity_id"] == "u9"
        ]
        assert sessions == [(until - 5 * MIN, until + 5 * MIN, 2)]
        assert len(batch) < len(stream)


@pytest.mark.parametrize("location", BATCH_LOCATIONS)
def test_a_batch_run_keeps_the_records_the_decoder_refuses(
    batch_runs: dict[str, tuple[Settings, Path]], location: str
) -> None:
    rejected = pq.read_table(batch_runs[location][1]).to_pylist()
    assert {(r["transaction_id"], r["reason"]) for r in rejected} == {
        ("bad_nan", "non_finite"),
        ("bad_user", "missing_field"),
        ("bad_time", "bad_timestamp"),
    }


@pytest.mark.parametrize("location", BATCH_LOCATIONS)
def test_a_batch_run_serves_each_features_latest_window(
    batch_runs: dict[str, tuple[Settings, Path]], location: str
) -> None:
    _online_holds_each_features_latest_window(batch_runs[location][0], BATCH_UNTIL[location])


def _value(row: dict[str, Any]) -> Any:
    value_type = FEATURES[row["feature_name"]][3]
    return row[f"value_{value_type}"]


def _final_offline(settings: Settings) -> dict[tuple[str, str, Window], Any]:
    rows = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").scan().to_arrow().to_pylist()
    final: dict[tuple[str, str, Window], tuple[int, Any]] = {}
    for r in rows:
        window = (int(r["window_start"].timestamp() * 1000), int(r["event_time"].timestamp() * 1000))
        key = (r["feature_name"], r["entity_id"], window)
        if key not in final or final[key][0] < r["revision"]:
            final[key] = (r["revision"], _value(r))
    return {k: v for k, (_, v) in final.items()}


def test_reference_exercises_every_kind() -> None:
    expected = reference(_events(seed=11))
    sessions = [w for (name, _, w) in expected if name == "g_count"]
    assert any(end - start > _ms("5m") for start, end in sessions), "no session merged two events"
    assert len({v for (name, _, _), v in expected.items() if name == "s_distinct"}) > 2
    assert any(v > 1 for (name, _, _), v in expected.items() if name == "t_count")
    times = [e["event_time"] for e in _events(seed=11)]
    assert times != sorted(times), "the events are sent in time order: no disorder"


def test_offline_values_equal_the_reference(run: Settings) -> None:
    got = _final_offline(run)
    expected = reference(_events(seed=11))
    assert set(got) == set(expected)
    mismatched = {
        k: (got[k], v)
        for k, v in expected.items()
        if got[k] != (pytest.approx(v, rel=1e-12) if isinstance(v, float) else v)
    }
    assert not mismatched, dict(list(mismatched.items())[:10])


def test_online_holds_each_features_latest_window(run: Settings) -> None:
    _online_holds_each_features_latest_window(run, None)


def _online_holds_each_features_latest_window(run: Settings, until: int | None) -> None:
    expected = reference(_events(seed=11))
    cluster, session = connect_cassandra(run)
    try:
        reader = OnlineReader(session, run.cassandra_keyspace, timeout_s=5.0)  # values, not latency
        for user in (f"u{i}" for i in range(USERS)):
            stored = reader.read("user", user)
            for name in FEATURES:
                windows = [w for (n, u, w) in expected if n == name and u == user and _kept_by_until(n, w[1], until)]
                latest = max(windows, key=lambda w: w[1])
                value = expected[(name, user, latest)]
                assert stored[(name, 1)].feature_ts_ms == latest[1], name
                assert stored[(name, 1)].value == (
                    pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
                )
    finally:
        cluster.shutdown()
