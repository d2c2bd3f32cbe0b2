"""The streaming feature job: Kafka -> decode -> event-time windows (Flink SQL) -> Cassandra + Iceberg.

Run ``python -m jobs.feature_job`` (unbounded, checkpointed) or with ``--bounded`` to process what
the topics hold now and stop: tests, the demo and backfills use that. ``flink run -m <jobmanager>
--python jobs/feature_job.py`` submits the same job, unchanged, to a Flink cluster.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from typing import Any

from pyflink.common import Configuration, Duration, Types, WatermarkStrategy
from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.table import Schema, StreamTableEnvironment

from infra.artifacts import verify_manifest
from jobs.functions import DEAD_LETTER, DecodeEvents, WriteWindowResults
from jobs.sql import aggregate_sql, window_groups
from registry.definition_store import DefinitionStore
from registry.definitions import FeatureDefinition, Source
from registry.durations import to_millis
from registry.errors import FeatureStoreError
from registry.settings import Settings
from schemas import load_schema

_AVRO_TO_FLINK = {"string": Types.STRING(), "double": Types.DOUBLE(), "float": Types.FLOAT(),
                  "long": Types.LONG(), "int": Types.INT(), "boolean": Types.BOOLEAN()}  # fmt: skip


def _bucket(row: Any) -> int:
    return zlib.crc32(str(row[0]).encode()) % 16


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def _row_type(schema: dict[str, Any]) -> Any:
    names, types = [], []
    for field in schema["fields"]:
        avro_type = field["type"]["type"] if isinstance(field["type"], dict) else field["type"]
        if avro_type not in _AVRO_TO_FLINK:
            raise FeatureStoreError(f"event field {field['name']!r}: Avro type {avro_type!r} is not supported yet")
        names.append(field["name"])
        types.append(_AVRO_TO_FLINK[avro_type])
    return Types.ROW_NAMED(names, types)


def create_environment(settings: Settings, *, parallelism: int = 1) -> StreamExecutionEnvironment:
    jars = sorted(settings.flink_jars_dir.glob("*.jar"))
    if not jars:
        raise FeatureStoreError(
            f"no Flink connector jars in {settings.flink_jars_dir}; run `python -m infra fetch flink`"
        )
    config = Configuration()
    manifest = settings.flink_jars_dir.parent / "manifest.txt"
    if manifest.exists():  # fetched by infra: check the jars against their recorded SHA-256 first
        verify_manifest(settings.flink_jars_dir, manifest)
    config.set_string("pipeline.jars", ";".join(j.resolve().as_uri() for j in jars))
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    config.set_string("table.local-time-zone", "UTC")
    # Run locally this builds a mini-cluster; under `flink run -m <jobmanager> --python jobs/feature_job.py`
    # the same call returns the cluster's environment, so the job is submitted unchanged.
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(parallelism)
    return env


def _events_view(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, settings: Settings,
                 source: Source, *, bounded: bool, group_id: str) -> str:  # fmt: skip
    """Register the decoded, watermarked events of a topic as a view; wire its dead-letter sink."""
    schema = load_schema(source.event_schema)
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_topics(source.topic)
        .set_group_id(group_id)
        .set_starting_offsets(KafkaOffsetsInitializer.committed_offsets())
        .set_value_only_deserializer(ByteArraySchema())
        .set_property("auto.offset.reset", "earliest")
    )
    if bounded:
        builder = builder.set_starting_offsets(KafkaOffsetsInitializer.earliest()).set_bounded(
            KafkaOffsetsInitializer.latest()
        )
    # Watermarks are made inside the source, per Kafka partition, from the record timestamp (the
    # producer contract: Kafka timestamp = event time; the decoder dead-letters records that break
    # it). A watermark made after the partitions merge would run ahead on the partition read first
    # and turn the other partitions' events late.
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(to_millis(source.max_out_of_orderness))
    ).with_idleness(Duration.of_millis(to_millis(source.idle_timeout)))
    raw = env.from_source(builder.build(), watermarks, f"kafka:{source.topic}")
    decoded = raw.process(
        DecodeEvents(settings, schema, source.timestamp_field, source.topic), output_type=_row_type(schema)
    ).name(f"decode:{source.topic}")
    dlq_sink = (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(dead_letter_topic(source.topic))
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .build()
    )
    decoded.get_side_output(DEAD_LETTER).sink_to(dlq_sink).name(f"dead-letter:{source.topic}")
    table = t_env.from_data_stream(
        decoded,
        Schema.new_builder()
        .column_by_metadata("rowtime", "TIMESTAMP_LTZ(3)")
        .watermark("rowtime", "SOURCE_WATERMARK()")
        .build(),
    )
    view = f"events_{source.topic.replace('.', '_').replace('-', '_')}"
    t_env.create_temporary_view(view, table)
    return view


def build(env: StreamExecutionEnvironment, settings: Settings, definitions: list[FeatureDefinition],
          *, bounded: bool, group_id: str = "featurestore-job") -> None:  # fmt: skip
    """Add the whole pipeline for the given definitions to env."""
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    views: dict[Source, str] = {}
    for group in window_groups(definitions):
        if group.source not in views:
            views[group.source] = _events_view(env, t_env, settings, group.source, bounded=bounded, group_id=group_id)
        result = t_env.sql_query(aggregate_sql(group, views[group.source]))
        names = ",".join(d.name for d in group.features)
        # Keyed into a few buckets by entity only so the writer can use event-time timers as commit points.
        t_env.to_data_stream(result).key_by(_bucket, key_type=Types.INT()).process(
            WriteWindowResults(settings, group.features)
        ).name(f"write:{group.entity}[{names}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.feature_job", description=__doc__)
    parser.add_argument("--bounded", action="store_true", help="process the topics' current contents, then stop")
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--group-id", default="featurestore-job")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    catalog = DefinitionStore(settings.definitions_db).catalog()
    if not len(catalog):
        raise FeatureStoreError(
            f"no feature definitions in {settings.definitions_db}; run `python -m registry.cli apply`"
        )
    env = create_environment(settings, parallelism=args.parallelism)
    if not args.bounded:
        env.enable_checkpointing(10_000)
    build(env, settings, catalog.active(), bounded=args.bounded, group_id=args.group_id)
    env.execute("feature-store: window features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
