"""The online writer packs several entities into one request and stays below Cassandra's batch-size warning.

Cassandra sends a client warning with the response to a batch larger than ``batch_size_warn_threshold``
(5 KiB by default), and the Python driver logs it (``Server warning: ...``). A flush of wide vectors with
long keys and ids must draw none, while an unpacked batch of the same cells does (so the check can see
one), and every value must read back as written."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.settings import Settings
from sinks.cassandra import layout as online_layout
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.records import FeatureRow, Value
from tests.conftest import string_feature

pytestmark = pytest.mark.integration

MIN = 60_000
T0 = (1_900_000_000_000 // (60 * MIN)) * 60 * MIN  # years ahead: TTLs from the wall clock stay positive


def _server_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Server warning" in r.getMessage()]


def test_a_packed_flush_draws_no_batch_size_warning(it_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    from cassandra.query import BatchStatement, BatchType

    from sinks.factory import connect_cassandra

    shipped = FeatureCatalog.from_folder()
    count, total = shipped.get("user", "txn_count_1h"), shipped.get("user", "txn_amount_sum_1h")
    long_name = "a_rather_long_feature_name_for_the_packing_check"
    features = [
        *(count.model_copy(update={"name": f"{long_name}_l{i:02d}"}) for i in range(30)),
        *(total.model_copy(update={"name": f"{long_name}_d{i:02d}"}) for i in range(30)),
        *(string_feature(f"{long_name}_s{i:02d}") for i in range(10)),
    ]
    entities = [f"packing-é-{uuid.uuid4()}" for _ in range(60)]  # 46 bytes each, one of them two bytes long
    text = "merchant-" + "ü" * 40

    def value(i: int, kind: str) -> Value:
        values: dict[str, Value] = {"long": i, "double": i + 0.5, "string": f"{text}{i}"}
        return values[kind]

    cluster, session = connect_cassandra(it_settings)
    caplog.set_level(logging.WARNING, logger="cassandra")
    try:
        writer = OnlineWriter(session, it_settings.cassandra_keyspace)
        for e, entity in enumerate(entities):
            for i, d in enumerate(features):
                writer.add(FeatureRow.of(d, entity, value(e * 100 + i, d.value_type), T0 - 60 * MIN, T0, 1))
        writer.flush()
        assert writer.written == len(entities) * len(features)
        assert writer.requests < writer.written / 30  # packed: dozens of cells a request
        assert _server_warnings(caplog) == []

        # The same kind of cells, unpacked: one batch of 40 entities' updates draws the warning.
        update = session.prepare(online_layout.update_cells_cql(it_settings.cassandra_keyspace))
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for entity in entities[:40]:
            cells = {
                online_layout.cell_key(d.name, d.version, d.value_type): online_layout.encode_cell(
                    d.value_type, value(0, d.value_type), T0
                )
                for d in features[:3]
            }
            batch.add(update, (T0 * 1000 + 1, 7200, cells, "user", entity))
        session.execute(batch, timeout=30)
        deadline = time.monotonic() + 5
        while not _server_warnings(caplog) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("exceeding specified threshold" in w for w in _server_warnings(caplog))

        reader = OnlineReader(session, it_settings.cassandra_keyspace, timeout_s=10)
        for e, entity in enumerate(entities[40:], start=40):
            stored = reader.read("user", entity)
            assert {name: stored[(name, 1)].value for name in (d.name for d in features)} == {
                d.name: value(e * 100 + i, d.value_type) for i, d in enumerate(features)
            }
    finally:
        cluster.shutdown()


def test_narrow_vectors_go_ten_entities_a_request_without_warnings(
    it_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Two cells an entity: a request holds ten entities (Cassandra warns on an UNLOGGED batch over more
    partitions than ``unlogged_batch_across_partitions_warn_threshold``, 10 by default), no warning at all."""
    from sinks.cassandra.writer import PARTITIONS_PER_REQUEST
    from sinks.factory import connect_cassandra

    shipped = FeatureCatalog.from_folder()
    features = [shipped.get("user", "txn_count_1h"), shipped.get("user", "txn_amount_sum_1h")]
    entities = [f"narrow-{uuid.uuid4()}" for _ in range(205)]
    cluster, session = connect_cassandra(it_settings)
    caplog.set_level(logging.WARNING, logger="cassandra")
    try:
        writer = OnlineWriter(session, it_settings.cassandra_keyspace)
        for e, entity in enumerate(entities):
            writer.add(FeatureRow.of(features[0], entity, e, T0 - 60 * MIN, T0, 1))
            writer.add(FeatureRow.of(features[1], entity, e + 0.25, T0 - 60 * MIN, T0, 1))
        writer.flush()
        assert _server_warnings(caplog) == []
        assert (writer.written, writer.requests) == (2 * len(entities), -(-len(entities) // PARTITIONS_PER_REQUEST))
        reader = OnlineReader(session, it_settings.cassandra_keyspace, timeout_s=10)
        for e in (0, 9, 10, 204):
            stored = reader.read("user", entities[e])
            assert (stored[(features[0].name, 1)].value, stored[(features[1].name, 1)].value) == (e, e + 0.25)
    finally:
        cluster.shutdown()


def test_a_feature_in_several_cells_reads_from_the_newest(it_settings: Settings) -> None:
    """A row holding one feature in several cells (a pack of the group, a pack of one feature written later
    as a backfill would, and cells of one feature from the layout before packs) reads, per feature, the value
    of the cell with the greatest write time, through the Python and the C++ driver alike."""
    import asyncio

    from sinks.cassandra.native_reader import NativeOnlineReader
    from sinks.factory import connect_cassandra

    shipped = FeatureCatalog.from_folder()
    count, total = shipped.get("user", "txn_count_1h"), shipped.get("user", "txn_amount_sum_1h")
    entity = f"several-{uuid.uuid4()}"
    cluster, session = connect_cassandra(it_settings)
    try:
        writer = OnlineWriter(session, it_settings.cassandra_keyspace)
        writer.add(FeatureRow.of(count, entity, 5, T0 - 65 * MIN, T0 - 5 * MIN, 2))  # the group's pack
        writer.add(FeatureRow.of(total, entity, 1.5, T0 - 65 * MIN, T0 - 5 * MIN, 2))
        writer.flush()
        writer.add(FeatureRow.of(total, entity, 2.5, T0 - 70 * MIN, T0 - 10 * MIN, 9))  # older: loses
        writer.flush()
        writer.add(FeatureRow.of(count, entity, 7, T0 - 60 * MIN, T0, 0))  # a pack of one, newer: wins
        writer.flush()
        update = session.prepare(online_layout.update_cells_cql(it_settings.cassandra_keyspace))
        for d, value, end in ((count, 3, T0 - 15 * MIN), (total, 9.5, T0 - 5 * MIN)):  # cells of one feature
            cell = {
                online_layout.cell_key(d.name, d.version, d.value_type): online_layout.encode_cell(
                    d.value_type, value, end
                )
            }
            session.execute(update, (end * 1000, 3600, cell, "user", entity), timeout=10)
        # total: the group's pack (written at T0 - 5 min + 2 µs) beats the old cell of the same end (at + 0)
        expected = {(count.name, count.version): (7, T0), (total.name, total.version): (1.5, T0 - 5 * MIN)}
        python = OnlineReader(session, it_settings.cassandra_keyspace, timeout_s=10)
        assert {k: (v.value, v.feature_ts_ms) for k, v in python.read("user", entity).items()} == expected
        native = NativeOnlineReader(
            it_settings.cassandra_hosts, it_settings.cassandra_port, it_settings.cassandra_keyspace, timeout_s=10.0
        )

        async def read() -> Any:
            try:
                return await native.read_many_async("user", [entity])
            finally:
                await native.close()

        (vector,) = asyncio.run(read())
        assert dict(vector) == expected
        cells = session.execute(
            f"SELECT cells FROM {it_settings.cassandra_keyspace}.{online_layout.TABLE} "
            "WHERE entity_type = 'user' AND entity_id = %s",
            (entity,),
            timeout=10,
        )
        assert online_layout.count_values(cells) == 6  # 2 + 1 + 1 in packs, 2 cells of one feature
    finally:
        cluster.shutdown()
