"""What an online layout costs per read: ``python -m bench.online_layout`` (issue #19 item 1).

On the running local stack (``make up``), in a keyspace of its own (dropped at the end), it writes
``--entities`` entities x 100 double features in both layouts and reads each entity's vector
``--reads`` times, sequentially and with 32 reads in flight (as the API does), printing wall time,
this process's CPU (the driver and the decoding) and Cassandra's CPU per read:

- ``rows``: the layout before (``online_feature_values``): one clustering row per feature version,
  value columns per type, decoded as the reader did;
- ``map``: one row per entity, ``cells map<text, blob>``, one cell per feature version with its own write
  time and TTL (the layout between the two), decoded by ``sinks.cassandra.reader``;
- ``pack``: today's (``sinks.cassandra.layout``): the same row, the 100 values of one window in one cell
  (a pack), decoded by ``sinks.cassandra.reader``;
- ``one``: one clustering row of the old table (the floor of a single-partition read).
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from bench.cli import require_stack, run_main
from bench.serving_server import cassandra_pid, cpu_seconds
from registry.core.arguments import whole

FEATURES = 100


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    from cassandra.concurrent import execute_concurrent_with_args
    from cassandra.query import tuple_factory

    from registry.core.settings import settings_for_command
    from registry.core.value_types import VALUE_COLUMNS
    from sinks.cassandra import layout
    from sinks.cassandra.reader import _vector, select_vector_cql
    from sinks.factory import connect_cassandra

    parser = argparse.ArgumentParser(prog="python -m bench.online_layout", description=__doc__)
    parser.add_argument("--entities", type=whole(1), default=1000, help="entities written, 100 values each")
    parser.add_argument("--reads", type=whole(1), default=3000, help="reads per layout and mode")
    args = parser.parse_args(argv)
    keyspace = f"bench_layout_{uuid.uuid4().hex[:8]}"
    settings = settings_for_command().model_copy(update={"cassandra_keyspace": keyspace})
    require_stack(settings, cassandra=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    try:
        cluster, session = connect_cassandra(settings)  # creates the keyspace and today's tables
    except BaseException:  # the keyspace may exist already (its tables failed, or Ctrl-C)
        from bench.stream_support import drop_keyspace

        with suppress(Exception):
            drop_keyspace(settings)
        raise
    session.row_factory = tuple_factory
    cassandra = cassandra_pid()
    try:
        session.execute(layout.legacy_table_ddl(keyspace), timeout=30)
        now_ms = time.time_ns() // 1_000_000
        end = datetime.fromtimestamp(now_ms / 1000, UTC)
        insert = session.prepare(
            f"INSERT INTO {keyspace}.{layout.LEGACY_TABLE} (entity_type, entity_id, feature_name, feature_version, "
            "value_double, feature_ts) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL 7200"
        )
        update = session.prepare(layout.update_cells_cql(keyspace))
        ids = [f"u{e}" for e in range(args.entities)]
        rows = [
            ("user", i, f"f{f:03d}", 1, e * 1.5 + f, end, now_ms * 1000)
            for e, i in enumerate(ids)
            for f in range(FEATURES)
        ]
        cells = [
            (
                now_ms * 1000,
                7200,
                {layout.cell_key(f"f{f:03d}", 1, "double"): layout.encode_cell("double", e * 1.5 + f, now_ms)},
                "user",
                i,
            )
            for e, i in enumerate(ids)
            for f in range(FEATURES)
        ]
        one_pack = layout.pack(tuple(layout.pack_order([(f"f{f:03d}", 1, "double") for f in range(FEATURES)])))
        packs = [
            (
                now_ms * 1000,
                7200,
                {one_pack.key: one_pack.encode(now_ms * 1000, now_ms, [e * 1.5 + f for f in range(FEATURES)])},
                "packed",
                i,
            )
            for e, i in enumerate(ids)
        ]
        started = time.monotonic()
        execute_concurrent_with_args(session, insert, rows, concurrency=64, raise_on_first_error=True)
        execute_concurrent_with_args(session, update, cells, concurrency=64, raise_on_first_error=True)
        execute_concurrent_with_args(session, update, packs, concurrency=64, raise_on_first_error=True)
        print(
            f"keyspace {keyspace}: {args.entities} entities x {FEATURES} features = {args.entities * FEATURES:,} "
            f"values written in each layout (rows: {len(rows):,} rows, one value each; map: {args.entities:,} rows "
            f"of {FEATURES} cells; pack: {args.entities:,} rows of one {FEATURES}-value cell) in "
            f"{time.monotonic() - started:.0f} s; {args.reads} reads per row below"
        )
        cols = ", ".join(VALUE_COLUMNS.values())
        legacy_select = (
            f"SELECT feature_name, feature_version, {cols}, toUnixTimestamp(feature_ts) FROM {keyspace}.{layout.LEGACY_TABLE} "
            "WHERE entity_type = ? AND entity_id = ?"
        )

        def decode_rows(result: Any) -> dict[tuple[str, int], tuple[object, int]]:  # the reader's decoding before
            return {
                (name, version): (a if a is not None else b if b is not None else c if c is not None else d, ts)
                for name, version, a, b, c, d, ts in result
            }

        select = session.prepare(select_vector_cql(keyspace))
        layouts: list[tuple[str, Any, Callable[[Any], Any], int, str]] = [
            ("rows", session.prepare(legacy_select), decode_rows, FEATURES, "user"),
            ("map", select, _vector, FEATURES, "user"),
            ("pack", select, _vector, FEATURES, "packed"),
            ("one", session.prepare(legacy_select + " AND feature_name = 'f001'"), decode_rows, 1, "user"),
        ]
        print(f"{'layout':7}{'mode':12}{'wall us/read':>14}{'client cpu us':>15}{'cassandra cpu us':>18}")
        for mode in ("sequential", "32 in flight"):
            for name, statement, decode, size, entity_type in layouts:
                params = [(entity_type, ids[i % len(ids)]) for i in range(args.reads)]
                c0, k0, t0 = _cpu(), cpu_seconds(cassandra), time.perf_counter()
                if mode == "sequential":
                    vectors = [decode(session.execute(statement, p)) for p in params]
                else:
                    results = execute_concurrent_with_args(session, statement, params, concurrency=32)
                    vectors = [decode(r.result_or_exc) for r in results]
                c1, k1, t1 = _cpu(), cpu_seconds(cassandra), time.perf_counter()
                assert all(len(v) == size for v in vectors), name
                server = (
                    f"{1e6 * (k1 - k0) / args.reads:18.0f}" if k0 is not None and k1 is not None else f"{'n/a':>18}"
                )
                print(
                    f"{name:7}{mode:12}{1e6 * (t1 - t0) / args.reads:14.0f}{1e6 * (c1 - c0) / args.reads:15.0f}{server}"
                )
    finally:
        try:
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        except Exception as exc:  # the error that ended the run, if any, follows
            print(f"could not drop keyspace {keyspace}: {exc}", file=sys.stderr, flush=True)
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
