"""A definition's TTL as long as the registry takes (7300d, 20 years, Cassandra's longest TTL) on the real online
store: Cassandra 5.0 in its default storage compatibility mode refuses any cell expiring after
2038-01-19T03:14:06Z (``InvalidRequest``: "exceeds maximum supported expiration date"), so the writer cuts each
cell's TTL, and the progress rows', to end by then (``sinks.cassandra.layout.ttl_cap_s``); the write used to fail.
"""

from __future__ import annotations

import time

import pytest

from registry.core.definitions import FeatureDefinition
from registry.core.settings import Settings
from sinks.cassandra import layout
from sinks.cassandra.job_progress import hold_version_progress
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow
from tests.conftest import isolated

pytestmark = pytest.mark.integration


def test_a_twenty_year_ttl_is_written_and_read(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = isolated(it_settings, "longttl", tmp_path_factory.mktemp("longttl"))
    d = FeatureDefinition.model_validate(
        {
            "name": "lifetime_count",
            "entity": "user",
            "version": 1,
            "owner": "it",
            "value_type": "long",
            "source": {
                "topic": "long_ttl_events",
                "event_schema": "card_transaction",
                "subject": "long_ttl_events-value",
                "entity_key": "user_id",
                "timestamp_field": "event_time",
            },
            "window": {"kind": "tumbling", "size": "1h"},
            "aggregation": {"function": "count"},
            "freshness_slo": "1h",
            "ttl": "7300d",
        }
    )
    cluster, session = connect_cassandra(settings)
    keyspace = settings.cassandra_keyspace
    try:
        now_ms = time.time_ns() // 1_000_000
        end = now_ms // 3_600_000 * 3_600_000
        writer = OnlineWriter(session, keyspace)  # records progress too (writer "0")
        writer.add(FeatureRow.of(d, "u1", 7, end - 3_600_000, end))
        writer.flush()
        assert writer.written == 1
        hold_version_progress(session, keyspace, [d])
        stored = OnlineReader(session, keyspace, timeout_s=5.0).read("user", "u1")
        assert stored[("lifetime_count", 1)].value == 7
        (row,) = session.execute(
            f"SELECT cells FROM {keyspace}.{layout.TABLE} WHERE entity_type = 'user' AND entity_id = 'u1'"
        )
        (key,) = row.cells
        (ttl,) = session.execute(
            f"SELECT ttl(cells[%s]) FROM {keyspace}.{layout.TABLE} WHERE entity_type = 'user' AND entity_id = 'u1'",
            (key,),
        ).one()
        # Cut to end an hour before 2038-01-19T03:14:06Z, not 20 years on
        assert 0 < ttl <= layout.LAST_EXPIRY_S - layout.EXPIRY_MARGIN_S - now_ms // 1000
        assert ttl >= layout.LAST_EXPIRY_S - layout.EXPIRY_MARGIN_S - time.time() - 5
        ttls = [r[0] for r in session.execute(f"SELECT ttl(closed_through) FROM {keyspace}.{layout.PROGRESS_TABLE}")]
        assert len(ttls) == 3 and max(ttls) <= layout.LAST_EXPIRY_S - now_ms // 1000  # writer 0, `*`, the held key
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        cluster.shutdown()
