"""The serving bench's data: its 100 feature definitions (every tenth confidential), the request-time feature
beside them, and one window of values per (entity, feature) written through ``OnlineWriter`` into a keyspace of
its own, dropped at the end. Used by ``bench.serving_load`` and ``bench.serving_catalog``."""

from __future__ import annotations

import time
from typing import Any

ENTITY = "user"
N_FEATURES = 100
MIN_MS = 60_000
REQUEST_FEATURE = "bench_amount_per_count"


def _definitions() -> list[Any]:
    from registry.core.definitions import FeatureDefinition

    kinds = [
        ("count", None, "long"),
        ("sum", "amount", "double"),
        ("max", "merchant_id", "string"),
        ("last", "currency", "string"),  # the event schema has no boolean field
    ]
    out = []
    for i in range(N_FEATURES):
        function, field, value_type = kinds[i % len(kinds)]
        out.append(
            FeatureDefinition.model_validate(
                {
                    "name": f"bench_{function}_{i:03d}",
                    "entity": ENTITY,
                    "version": 1,
                    # Every tenth feature is confidential and owned by another team: with auth on, each
                    # request's grant check and audit records are part of what is measured.
                    "owner": "bench-fraud" if i % 10 == 0 else "bench",
                    "sensitivity": "confidential" if i % 10 == 0 else "internal",
                    "value_type": value_type,
                    "source": {
                        "topic": "bench_events",
                        "event_schema": "card_transaction",
                        "subject": "bench_events-value",
                        "entity_key": "user_id",
                        "timestamp_field": "event_time",
                    },
                    "window": {"kind": "sliding", "size": "1h", "slide": "5m"},
                    "aggregation": {"function": function, "field": field} if field else {"function": function},
                    "freshness_slo": "1h",
                    "ttl": "1d",
                }
            )
        )
    return out


def _value(value_type: str, e: int, i: int) -> object:
    if value_type == "long":
        return (e * 31 + i) % 1000
    if value_type == "double":
        return ((e * 17 + i) % 10_000) / 4
    if value_type == "string":
        return f"m{(e + i) % 500:04d}"
    return (e + i) % 2 == 0


def seed(settings: Any, entities: int) -> tuple[list[str], list[str]]:
    """Definitions into the settings' DB and one window of values per (entity, feature) into its keyspace."""
    from registry.core.request_features import RequestFeature
    from registry.definition_store import DefinitionStore
    from sinks.cassandra.writer import OnlineWriter
    from sinks.factory import connect_cassandra
    from sinks.records import FeatureRow

    definitions = _definitions()
    store = DefinitionStore(settings.definitions_db)
    for d in definitions:
        store.register(d)
    request = RequestFeature.model_validate(
        {
            "name": REQUEST_FEATURE,
            "entity": ENTITY,
            "version": 1,
            "owner": "bench",
            "value_type": "double",
            "function": "bench.request_fns:amount_per_count",
            "inputs": ["bench_count_000@v1"],
            "request_fields": [{"name": "amount", "value_type": "double"}],
        }
    )
    store.register_all([], [request])
    cluster, session = connect_cassandra(settings)
    try:
        writer = OnlineWriter(session, settings.cassandra_keyspace, concurrency=128)
        end = time.time_ns() // 1_000_000 // (5 * MIN_MS) * 5 * MIN_MS
        ids = [f"u{e:06d}" for e in range(entities)]
        for e, eid in enumerate(ids):
            for i, d in enumerate(definitions):
                writer.add(FeatureRow.of(d, eid, _value(d.value_type, e, i), end - 60 * MIN_MS, end))  # type: ignore[arg-type]
            if (e + 1) % 200 == 0:
                writer.flush()
        writer.flush()
    finally:
        cluster.shutdown()
    return ids, [d.name for d in definitions]


def drop_keyspace(settings: Any) -> None:
    from sinks.factory import connect_cassandra

    cluster, session = connect_cassandra(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    finally:
        cluster.shutdown()
