"""The streaming feature job: Kafka -> decode -> event-time windows (Flink SQL) -> Cassandra + Iceberg.

Run ``python -m jobs.feature_job`` (unbounded, checkpointed) or with ``--bounded`` to process what
the topics hold now and stop: tests, the demo and backfills use that. With ``--events LOCATION`` the
events come from a table (Parquet files, an Iceberg table: ``jobs.events_table``) instead of the
topic, through the same windows and writer: a batch run. ``flink run -m <jobmanager>
--python jobs/feature_job.py`` submits the same job, unchanged, to a Flink cluster.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from py4j.protocol import Py4JJavaError
from pyflink.common import Types
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink
from pyflink.table import DataTypes, Schema, StreamTableEnvironment

from jobs.batch_input import check_since, one_source, read_events_input, until_operator, window_range
from jobs.batching import batched_by_bucket, bucket_keys, value_types, writer_max_parallelism
from jobs.decoder import decode
from jobs.flink_environment import checkpoint_options_problem, create_environment, table_environment
from jobs.functions import WriteWindowResults
from jobs.sql import (
    aggregate_sql,
    dedup_sql,
    ident,
    interval,
    source_ddl,
    source_lateness,
    source_select,
    window_groups,
)
from registry.core.arguments import ArgumentParser, group_id, host, instant, location, refs, whole
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition, Source
from registry.core.errors import FeatureStoreError, SettingsError
from registry.core.refs import parse_ref
from registry.core.settings import Settings, settings_for_command
from registry.core.shown import error_line, shown
from registry.definition_store import DefinitionStore
from schemas import field_type, load_schema
from sinks.cassandra.job_progress import NO_START, JobStart

_AVRO_TO_FLINK = {
    "string": Types.STRING(),
    "double": Types.DOUBLE(),
    "float": Types.FLOAT(),
    "long": Types.LONG(),
    "int": Types.INT(),
    "boolean": Types.BOOLEAN(),
}


_ARROW_TO_SQL = {  # jobs.events_table's column types
    "string": DataTypes.STRING(),
    "double": DataTypes.DOUBLE(),
    "float": DataTypes.FLOAT(),
    "int64": DataTypes.BIGINT(),
    "int32": DataTypes.INT(),
    "bool": DataTypes.BOOLEAN(),
}


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def _row_type(schema: dict[str, Any]) -> Any:
    names, types = [], []
    for field in schema["fields"]:
        avro_type = field_type(field)
        if avro_type not in _AVRO_TO_FLINK:
            raise FeatureStoreError(f"event field {field['name']!r}: Avro type {avro_type!r} is not supported yet")
        names.append(field["name"])
        types.append(_AVRO_TO_FLINK[avro_type])
    return Types.ROW_NAMED(names, types)


def _dead_letter_sink(settings: Settings, topic: str) -> KafkaSink:
    return (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(dead_letter_topic(topic))
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .build()
    )


def _decoded(
    t_env: StreamTableEnvironment,
    settings: Settings,
    source: Source,
    lateness: timedelta,
    *,
    bounded: bool,
    group_id: str,
) -> DataStream:
    """A topic's decoded, watermarked events (read and decoded once per job, judged too late again behind a
    shuffle by the windows' watermark: ``jobs.decoder.decode``); its dead letters wired."""
    schema = load_schema(source.event_schema)
    raw_table = f"raw_{source.slug}"
    t_env.execute_sql(
        source_ddl(raw_table, source, lateness, bootstrap=settings.kafka_bootstrap, group_id=group_id, bounded=bounded)
    )
    raw = t_env.to_data_stream(t_env.sql_query(source_select(raw_table, lateness)))
    decoded, dead_letters = decode(raw, settings, source, schema, _row_type(schema), lateness)
    dead_letters.sink_to(_dead_letter_sink(settings, source.topic)).name(f"dead-letter:{source.topic}")
    return decoded


def _table_events(t_env: StreamTableEnvironment, events: pa.Table) -> DataStream:
    """A table of events (``jobs.events_table``, sorted by event time) as a stream of rows, read in Java.

    ``from_pandas`` hands Flink the columns as Arrow record batches: no Python call per record. One
    split, so the rows keep their time order and no record is ever behind the watermark. An integer
    column with nulls (an optional field) goes as Python objects, so that it stays exact (pandas would
    make it a double)."""
    row = DataTypes.ROW([DataTypes.FIELD(f.name, _ARROW_TO_SQL[str(f.type)]) for f in events.schema])
    table = t_env.from_pandas(events.to_pandas(integer_object_nulls=True), row, splits_num=1)
    return t_env.to_data_stream(table)


def _events_view(t_env: StreamTableEnvironment, events: DataStream, source: Source, *, from_table: bool) -> str:
    """Register a source's events, deduplicated by event id, as a view of ``t_env``.

    Event time: the record timestamp and the source's watermarks for the decoded topic; for a table of
    events (sorted), the timestamp field and a watermark 2 ms behind the latest event, so windows
    close as the sorted events pass them and none is late: a window ending at ``e`` closes once an event
    after ``e`` has come, when no event at ``e`` is left to come (one at ``e`` may still extend a session
    ending there; 1 ms behind, the session closed at the first event at ``e``, another entity's)."""
    schema = load_schema(source.event_schema)
    builder = Schema.new_builder()
    if from_table:
        ts = ident(source.timestamp_field)
        builder = builder.column_by_expression("rowtime", f"TO_TIMESTAMP_LTZ({ts}, 3)").watermark(
            "rowtime", f"rowtime - {interval(timedelta(milliseconds=2))}"
        )
    else:
        builder = builder.column_by_metadata("rowtime", "TIMESTAMP_LTZ(3)").watermark("rowtime", "SOURCE_WATERMARK()")
    table = t_env.from_data_stream(events, builder.column_by_expression("proctime", "PROCTIME()").build())
    view = f"events_{source.slug}"
    t_env.create_temporary_view(f"{view}_all", table)
    if source.event_id_field is None:
        return f"{view}_all"
    columns = [f["name"] for f in schema["fields"]]
    t_env.create_temporary_view(view, t_env.sql_query(dedup_sql(f"{view}_all", source, columns)))
    return view


def prepare_stores(
    settings: Settings,
    computing: Sequence[FeatureDefinition] = (),
    registered: Sequence[FeatureDefinition] = (),
    *,
    per_version: bool = False,
    writers: Sequence[str] = ("0",),
    bounded: bool = False,
) -> JobStart:
    """Create the online schema and the offline table once, here in the client, before any writer starts.

    The writers (one per subtask, each in its own Python worker) then only load them, so no two
    processes race to create a namespace, table or keyspace, however many the job runs.

    ``computing``: the versions this job computes, with progress per version (``per_version``) or per stream;
    ``registered``: every registered version; ``writers``: the ids its writers record progress under (its bucket
    numbers); ``bounded``: a run that ends. Returns what its writers need of the progress rows found
    (``sinks.cassandra.job_progress.start_job_progress``).
    """
    from sinks.cassandra.job_progress import start_job_progress
    from sinks.factory import connect_cassandra, connect_iceberg
    from sinks.iceberg.writer import ensure_table

    cluster, session = connect_cassandra(settings)  # the online schema made here
    try:
        keyspace = settings.cassandra_keyspace
        start = start_job_progress(
            session, keyspace, computing, registered, per_version=per_version, writers=writers, bounded=bounded
        )
    finally:
        cluster.shutdown()
    ensure_table(connect_iceberg(settings), settings.iceberg_namespace)
    return start


def build(
    env: StreamExecutionEnvironment,
    settings: Settings,
    definitions: list[FeatureDefinition],
    *,
    bounded: bool,
    group_id: str = "featurestore-job",
    events: pa.Table | None = None,
    window_range_ms: tuple[int, int] | None = None,
    progress_per_version: bool = False,
    progress_start: JobStart = NO_START,
) -> None:
    """Add the whole pipeline for the given definitions to env (the stores must exist: ``prepare_stores``).

    ``progress_per_version``: the writers record each version's progress under its own key
    (``sinks.cassandra.layout.version_stream``), not the stream's (design §5.5); ``progress_start``: what the
    progress rows at the job's start ask of them (``prepare_stores``).

    ``events``: the events of the definitions' one source, from a table (``jobs.events_table``), read
    instead of its topic (a batch run: bounded, no dead-letter output; the caller keeps the rejected).
    ``window_range_ms``: ``(since, until)``, epoch ms: only windows inside ``[since, until]`` are
    written (``window_start >= since`` and ``window_end <= until``), so none is cut off by the range
    (the events must be those in ``[since, until)``: ``in_range``); a session only when it ends before
    ``until`` (``until_operator``).

    Late firing (a window re-emitted for each late event within the allowed lateness) is one setting
    of a table environment, and Flink refuses it for session windows (which take no lateness, see
    ``registry.core.definitions.Window``). So session groups are computed in a table environment of their
    own without it, fed by the same decoded events: a session feature and a feature with allowed
    lateness can run in one job.
    """
    lateness = source_lateness(definitions)
    if events is not None:
        one_source(definitions)
    most = max(lateness.values(), default=timedelta(0))
    environments: dict[bool, StreamTableEnvironment] = {}  # late firing on -> its table environment
    decoded: dict[Source, DataStream] = {}
    views: dict[tuple[bool, Source], str] = {}
    buckets = env.get_parallelism()
    max_parallelism = writer_max_parallelism(env, buckets)
    bucket_of = {key: bucket for bucket, key in enumerate(bucket_keys(buckets, max_parallelism))}
    for group in window_groups(definitions):
        late_fire = most > timedelta(0) and group.window.kind != "session"
        if late_fire not in environments:
            environments[late_fire] = table_environment(env, most if late_fire else None)
        t_env = environments[late_fire]
        if group.source not in decoded:
            decoded[group.source] = (
                _table_events(t_env, events)
                if events is not None
                else _decoded(t_env, settings, group.source, lateness[group.source], bounded=bounded, group_id=group_id)
            )
        if (late_fire, group.source) not in views:
            views[(late_fire, group.source)] = _events_view(
                t_env, decoded[group.source], group.source, from_table=events is not None
            )
        query = aggregate_sql(group, views[(late_fire, group.source)])
        if window_range_ms is not None:
            since, until = window_range_ms
            query = (
                f"SELECT * FROM ({query})\nWHERE window_start >= TO_TIMESTAMP_LTZ({since}, 3)"
                f" AND window_end {until_operator(group.window)} TO_TIMESTAMP_LTZ({until}, 3)"
            )
        result = t_env.sql_query(query)
        names = ",".join(d.name for d in group.features)
        # Keyed into one bucket per subtask only so the writer can keep state and use timers as commit points.
        batched = batched_by_bucket(
            t_env.to_changelog_stream(result), value_types(group.features), buckets, max_parallelism
        )
        writer = WriteWindowResults(
            settings,
            group.features,
            bucket_of=bucket_of,
            progress_per_version=progress_per_version,
            start=progress_start,
        )
        batched.process(writer).set_max_parallelism(max_parallelism).name(f"write:{group.entity}[{names}]")


def require_no_offsets_without_state(bootstrap: str, group_id: str, topics: list[str]) -> None:
    """FeatureStoreError when consumer group ``group_id`` has committed offsets on ``topics``: an unbounded run that
    is not restored would resume at them with no window state, and write every window open at that point from
    the part of its events after it (wrong values, online and offline, and the too-late decisions of a fresh
    watermark). The group's offsets are committed with its job's checkpoints, so that job's checkpoint is the way
    to resume; a new group replays the topics (design §5.4)."""
    from sinks.topics import committed_offsets

    committed = committed_offsets(bootstrap, group_id, topics)
    if not committed:
        return
    where = "; ".join(f"{t}: partitions {', '.join(map(str, sorted(p)))}" for t, p in sorted(committed.items()))
    raise FeatureStoreError(
        f"consumer group {group_id!r} has committed offsets ({where}) and no --restore-from was given: resumed there "
        "without its windows' state, the job would write the windows open at that point from part of their events. "
        "Restore the checkpoint of the job that committed them (--restore-from <checkpoint dir>/<job id>/chk-<n>; "
        "--checkpoint-dir keeps them), or replay the topics in a new consumer group (--group-id <a new name>)"
    )


def resolve_ref(catalog: FeatureCatalog, ref: str) -> FeatureDefinition:
    """``entity.name@version`` -> that registered version (UnknownFeatureError names it if missing)."""
    parsed = parse_ref(ref, with_entity=True)
    if parsed is None or parsed.entity is None or parsed.version is None:
        raise FeatureStoreError(f"{ref!r} is not entity.name@version")
    return catalog.get(parsed.entity, parsed.name, parsed.version)


def resolve_refs(catalog: FeatureCatalog, raw: str) -> list[FeatureDefinition]:
    """``--versions`` -> the registered versions, each once, in the order first named: ``x@1,x@v1`` name one
    version (twice, it would be two columns of one name in Flink SQL: ``Column 'x' is ambiguous``)."""
    return list({d.key: d for d in (resolve_ref(catalog, ref) for ref in raw.split(","))}.values())


def require_free_port(bind_host: str, port: int, option: str) -> None:
    """FeatureStoreError naming ``option`` if ``bind_host:port`` cannot be listened on (another process holds it)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM's listeners: TIME_WAIT is no owner
        try:
            probe.bind((bind_host, port))
        except OSError:
            raise FeatureStoreError(f"{option} {port}: {bind_host}:{port} is in use or not ours to listen on") from None


def version_refs(raw: str) -> str:
    """``--versions``: ``entity.name@version`` references separated by commas, each one whole (checked before
    anything connects; that they exist is the catalog's to say)."""
    refs(raw)
    for part in raw.split(","):
        parsed = parse_ref(part, with_entity=True)
        if parsed is None or parsed.version is None:
            raise argparse.ArgumentTypeError(
                f"must be entity.name@version references separated by commas, not {shown(part, quoted=True)}"
            )
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m jobs.feature_job", description=__doc__)
    parser.add_argument("--bounded", action="store_true", help="process the topics' current contents, then stop")
    parser.add_argument("--parallelism", type=whole(1), default=1)
    parser.add_argument("--group-id", type=group_id, default="featurestore-job")
    parser.add_argument("--checkpoint-dir", type=Path, help="where checkpoints are kept (retained on cancel)")
    parser.add_argument("--checkpoint-interval-ms", type=whole(1), help="default: 10000 unbounded, off bounded")
    parser.add_argument("--restore-from", help="a retained checkpoint (…/chk-N) to resume from")
    parser.add_argument(
        "--metrics-port", type=whole(0, 65_535), default=9249, help="Prometheus endpoint of the job's metrics (0: none)"
    )
    parser.add_argument(
        "--bind-host",
        type=host,
        default="127.0.0.1",
        help="where a local run's Flink, Python-worker and metrics ports listen",
    )
    parser.add_argument(
        "--python-mode",
        choices=("process", "thread"),
        default=os.environ.get("FS_PYTHON_MODE"),  # set but empty is refused below, as any other value
        help="where the job's Python functions run: threads in the JVM (PemJa; the default for an unbounded run: "
        "lower latency, no Python worker ports) or Python worker processes (Beam; the default for a bounded run: "
        "less CPU per event). Default also from FS_PYTHON_MODE",
    )
    parser.add_argument(
        "--versions",
        type=version_refs,
        help="compute these versions (entity.name@v, comma-separated) instead of the active ones: a backfill",
    )
    parser.add_argument(
        "--progress",
        choices=("stream", "version"),
        help="where the online progress rows go: `stream`, the streams' own (the job computes their active versions "
        "together; also under the own key of each version that has one at start) or `version`, each version's own (it computes them "
        "beside another job: a backfill, a job jobs.follow adds). Default: version with --versions, else stream",
    )
    parser.add_argument(
        "--events",
        metavar="LOCATION",
        type=location,
        help="read the source's events from a table instead of its topic (implies --bounded): a Parquet file or "
        "directory, iceberg:<namespace>.<table>, or `archive` (the topic's archive, then the topic from where the "
        "archive ends: jobs.history); the definitions must share one source",
    )
    parser.add_argument(
        "--since",
        type=instant,
        help="with --events: only events at or after this time, and only windows starting at or after it "
        "(ISO-8601 with a zone, or epoch ms)",
    )
    parser.add_argument(
        "--until",
        type=instant,
        help="with --events: only events before this time, and only windows ending at or before it "
        "(ISO-8601 with a zone, or epoch ms)",
    )
    parser.add_argument(
        "--rejected",
        type=Path,
        help="with --events: where the records the decoder would dead-letter are written, with their reason "
        "(Parquet; default: batch-rejected-<time>-<random>.parquet beside the definitions database)",
    )
    args = parser.parse_args(argv)
    try:
        window_range_ms = window_range(args.since, args.until)
    except FeatureStoreError as exc:
        parser.error(str(exc))
    if window_range_ms is not None and args.events is None:
        parser.error("--since and --until need --events (a run over a topic has no end)")
    if args.rejected is not None and args.events is None:
        parser.error("--rejected needs --events (a run over a topic dead-letters to <topic>.dlq)")
    if args.restore_from is not None and (args.bounded or args.events is not None):
        # design §5.4: a bounded source restored from a checkpoint never ends (its finished splits are not in the
        # checkpoint, and the restored enumerator never signals "no more splits"): refused, not a run that hangs
        parser.error(
            f"--restore-from resumes an unbounded run, not {'--bounded' if args.bounded else '--events'}: "
            "a bounded source restored from a checkpoint never ends"
        )
    problem = checkpoint_options_problem(args.checkpoint_dir, args.restore_from)
    if problem is not None:  # before the stores are prepared and the mini-cluster starts (Flink names no option)
        parser.error(problem)
    settings = settings_for_command()
    if args.python_mode not in (None, "process", "thread"):  # argparse checks choices on given options only
        raise SettingsError(f"FS_PYTHON_MODE must be process or thread, not {args.python_mode!r}")
    db = settings.definitions_db  # read only: a missing or foreign file is refused, never made a registry
    catalog = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}").catalog()
    if not len(catalog):
        raise FeatureStoreError(
            f"no feature definitions in {settings.definitions_db}; run `python -m registry.cli apply`"
        )
    definitions = catalog.active() if args.versions is None else resolve_refs(catalog, args.versions)
    check_since(definitions, args.since)
    if args.events == "archive":  # decoded with the registry's schemas (jobs.history): a stopped one is named first
        from jobs.registry_client import require_registry

        require_registry(settings.schema_registry_url, settings.token)
    # A table of events is read and checked before the mini-cluster starts: a bad one fails in a second.
    events = (
        None
        if args.events is None
        else read_events_input(settings, args.events, definitions, args.rejected, window_range_ms)
    )
    if events is not None and not events.num_rows:  # empty, every record rejected, or none in the range
        print("[events] no events to compute: nothing written", file=sys.stderr)
        return 0
    local = "PYFLINK_GATEWAY_PORT" not in os.environ  # under `flink run` the cluster's reporters apply
    if args.metrics_port and local:  # Flink's reporter would only log that the port is taken
        require_free_port(args.bind_host, args.metrics_port, "--metrics-port")
    if events is None:  # the job reads its topics: a stopped broker or registry is named now, not in the job
        from jobs.registry_client import require_registry
        from sinks.topics import ensure_topics, require_reachable, require_topics

        require_reachable(settings.kafka_bootstrap)
        require_registry(settings.schema_registry_url, settings.token)
        # The broker creates no topic on first use: a missing dead-letter topic would block the first bad
        # record's send for a minute and fail the run (an unbounded job would restart forever).
        topics = sorted({d.source.topic for d in definitions})
        require_topics(settings.kafka_bootstrap, topics)
        ensure_topics(settings.kafka_bootstrap, [dead_letter_topic(t) for t in topics])
        if not args.bounded and args.restore_from is None:
            require_no_offsets_without_state(settings.kafka_bootstrap, args.group_id, topics)
    bounded = args.bounded or events is not None
    checkpoint_ms = args.checkpoint_interval_ms if args.checkpoint_interval_ms else (None if bounded else 10_000)
    env = create_environment(
        settings,
        parallelism=args.parallelism,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_interval_ms=checkpoint_ms,
        restore_from=args.restore_from,
        metrics_port=args.metrics_port,
        bind_host=args.bind_host,
        python_mode=args.python_mode or ("process" if bounded else "thread"),
        bounded=bounded,
        sources=len({d.source.topic for d in definitions}),
    )
    per_version = (args.progress or ("stream" if args.versions is None else "version")) == "version"
    writers = [str(bucket) for bucket in range(env.get_parallelism())]  # as ``build`` numbers its buckets
    start = prepare_stores(
        settings, definitions, list(catalog), per_version=per_version, writers=writers, bounded=bounded
    )
    try:
        build(
            env,
            settings,
            definitions,
            bounded=bounded,
            group_id=args.group_id,
            events=events,
            window_range_ms=window_range_ms,
            progress_per_version=per_version,
            progress_start=start,
        )
        env.execute("feature-store: window features")
    except Py4JJavaError as exc:  # planned or run, it failed inside Flink: its cause in one line, not the JVM's trace
        from jobs.failures import job_failure

        raise job_failure(exc, settings) from None
    return 0


def _main(argv: list[str] | None = None) -> int:
    """``main`` with this project's errors (bad definitions, an unreadable table of events) as one line."""
    try:
        return main(argv)
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(_main, None))
