"""The stream job's decoder, run in the JVM: Confluent-framed Avro -> rows, bad records -> dead letters.

The classes are in ``jobs/java/decode`` (``featurestore.job.DecodeEvents``), compiled once per edit against
PyFlink's ``flink-dist`` and the fetched ``flink-sql-avro`` (Avro, shaded in one jar) by ``jobs.java_build``.
Its rules, reasons and order are ``udfs.decode.EventDecoder``'s, which stays the reference (the batch path
checks tables of events by the same rules, ``udfs.decode.check_events``); no Python runs per event.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyflink.common import WatermarkStrategy
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import DataStream

from jobs.java_build import flink_dist, java_jar
from registry.core.definitions import Source
from registry.core.durations import to_millis
from registry.core.errors import FeatureStoreError
from registry.core.settings import Settings
from udfs.decode import MAX_FUTURE_MS


def decoder_jar(settings: Settings) -> Path:
    """The decoder's jar (built first if missing), for ``pipeline.jars``."""
    avro = sorted(settings.flink_jars_dir.glob("flink-sql-avro-*.jar"))
    if not avro:
        raise FeatureStoreError(
            f"no flink-sql-avro jar in {settings.flink_jars_dir}; run `python -m infra fetch flink`"
        )
    return java_jar("decode", settings.flink_jars_dir.parent / "job", [flink_dist(), avro[0]])


def event_decoder(
    settings: Settings,
    reader_schema: dict[str, Any],
    timestamp_field: str,
    key_fields: tuple[str, ...] = (),
) -> Any:
    """A ``featurestore.job.EventDecoder`` Java object (its jar must be on ``pipeline.jars``): the rules
    without the operator, which the parity test drives directly. ``key_fields``: the source's entity key
    fields (``Source.key_fields``), whose string values longer than ``MAX_KEY_CHARS`` are ``bad_key``."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import to_jarray

    gateway = get_gateway()
    return gateway.jvm.featurestore.job.EventDecoder(
        json.dumps(reader_schema),
        timestamp_field,
        to_jarray(gateway.jvm.String, list(key_fields)),
        settings.schema_registry_url,
        settings.token or "",
        MAX_FUTURE_MS,
    )


def decode(
    raw: DataStream,
    settings: Settings,
    source: Source,
    reader_schema: dict[str, Any],
    row_type: TypeInformation,
    lateness: timedelta,
) -> tuple[DataStream, DataStream]:
    """``raw`` (payload, kafka_ts, too_late, late, kafka_partition) of ``source`` decoded in the JVM:
    ``(events, dead_letters)``, the dead letters (JSON text: topic, reason, detail, payload_b64,
    dead_lettered_at_ms) timestamped when they were dead-lettered.

    The operator (``DecodeOperator``, uid ``decode:<source slug>``: two sources may read one topic) keeps each
    Kafka partition's event-time progress in its checkpoints (``PartitionProgress``: the source's watermark
    expression, hence ``max_out_of_orderness`` and ``MAX_FUTURE_MS``, and its ``idle_timeout``); restored, it
    dead-letters what a run that never stopped would find too late (``lateness``, the source's allowed lateness)
    and sends that run's watermark downstream (design §5.3).

    The events are then keyed by entity and judged too late once more by the watermark the windows will see
    (``LatenessGate``, uid ``late-gate:<source slug>``): at parallelism 2 or more a record a source subtask back
    from idleness passed, behind the other subtasks, is dead-lettered there, not dropped by its windows. The gate
    runs at parallelism 1 too (where it never finds a record too late that the source passed), so that the job's
    graph, and the operator ids Flink derives from it for the SQL operators' state, is the same at every
    parallelism and a checkpoint restores at another one."""
    from pyflink.common.typeinfo import Types
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import to_jarray

    jvm = get_gateway().jvm
    decoder = event_decoder(settings, reader_schema, source.timestamp_field, source.key_fields)
    function = jvm.featurestore.job.DecodeEvents(
        source.topic,
        decoder,
        to_millis(lateness),
        to_millis(source.max_out_of_orderness),
        MAX_FUTURE_MS,
        to_millis(source.idle_timeout),
    )
    names = [f["name"] for f in reader_schema["fields"]]
    decoded_type = Types.ROW_NAMED(
        [*names, "__payload"], [*row_type.get_field_types(), Types.PRIMITIVE_ARRAY(Types.BYTE())]
    )
    j_events = raw._j_data_stream.transform(
        f"decode:{source.topic}", decoded_type.get_java_type_info(), jvm.featurestore.job.DecodeOperator(function)
    ).uid(f"decode:{source.slug}")
    j_letters = j_events.getSideOutput(jvm.featurestore.job.DecodeEvents.deadLetterTag())
    keys = to_jarray(jvm.int, [names.index(f) for f in source.key_fields])
    j_events = (
        j_events.keyBy(jvm.featurestore.job.LatenessGate.EntityKey(keys))
        .process(jvm.featurestore.job.LatenessGate(source.topic, to_millis(lateness)), row_type.get_java_type_info())
        .uid(f"late-gate:{source.slug}")
        .name(f"late-gate:{source.topic}")
    )
    late = j_events.getSideOutput(jvm.featurestore.job.DecodeEvents.deadLetterTag())
    j_letters = j_letters.union(to_jarray(jvm.org.apache.flink.streaming.api.datastream.DataStream, [late]))
    at = WatermarkStrategy.no_watermarks()._j_watermark_strategy.withTimestampAssigner(
        jvm.featurestore.job.DeadLetteredAt()
    )
    return DataStream(j_events), DataStream(j_letters.assignTimestampsAndWatermarks(at))
