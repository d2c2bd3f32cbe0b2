"""Window results to the Python writer in batches, keyed by bucket in the JVM (``jobs/java/batch``).

``featurestore.job.BatchWindowResults`` (compiled once per edit against PyFlink's ``flink-dist`` by
``jobs.java_build``) runs chained to the window operator: it drops the changelog's retractions, turns the window
bounds into epoch milliseconds, computes each result's bucket and hands the writer one element per bucket per
watermark from each window subtask (design §2.4). So no Python runs per window result on the way to the writer:
neither a key selector nor a call of the writer.
"""

from __future__ import annotations

from pathlib import Path

from pyflink.common import Types
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import DataStream, KeyedStream

from jobs.java_build import flink_dist, java_jar
from registry.core.definitions import FeatureDefinition
from registry.core.settings import Settings

MAX_ROWS = 5_000
"""Results per element at most: a bounded run's final watermark closes every open window at once."""
MAX_DELAY_MS = 100
"""How long a result waits for a watermark at most (a late update between watermarks, an idle source)."""

_VALUE_TYPES = {"long": Types.LONG(), "double": Types.DOUBLE(), "string": Types.STRING(), "boolean": Types.BOOLEAN()}


def batch_jar(settings: Settings) -> Path:
    """The batching operator's jar (built first if missing), for ``pipeline.jars``."""
    return java_jar("batch", settings.flink_jars_dir.parent / "job", [flink_dist()])


def value_types(features: tuple[FeatureDefinition, ...]) -> list[str]:
    """Each feature's column type in the query: its value type, or text for a ``last`` aggregate
    (``jobs.sql.decode_last``)."""
    return ["string" if d.aggregation.function == "last" else d.value_type for d in features]


def batch_type(columns: list[str]) -> TypeInformation:
    """One batch as the writer gets it: columns entity_ids, window starts and ends (epoch ms), revisions, then one
    per feature (``value_types``), each a Python sequence."""
    longs = Types.PRIMITIVE_ARRAY(Types.LONG())
    values = [Types.BASIC_ARRAY(_VALUE_TYPES[t]) for t in columns]
    return Types.ROW([Types.BASIC_ARRAY(Types.STRING()), longs, longs, longs, *values])


def batches(
    changelog: DataStream,
    columns: list[str],
    buckets: int,
    *,
    max_rows: int = MAX_ROWS,
    max_delay_ms: int = MAX_DELAY_MS,
) -> DataStream:
    """A window group's changelog (``t_env.to_changelog_stream``; ``columns``: its features' ``value_types``) as
    ``Row(bucket, batch)``, batch of ``batch_type``: PyFlink's own shape of a keyed stream's elements."""
    from pyflink.java_gateway import get_gateway

    keyed = Types.ROW([Types.INT(), batch_type(columns)])
    operator = get_gateway().jvm.featurestore.job.BatchWindowResults(buckets, ",".join(columns), max_rows, max_delay_ms)
    return DataStream(changelog._j_data_stream.transform("batch window results", keyed.get_java_type_info(), operator))


def batched_by_bucket(changelog: DataStream, columns: list[str], buckets: int) -> KeyedStream:
    """``batches`` keyed by bucket: ``.process`` a ``KeyedProcessFunction`` on it; it gets the batches."""
    from pyflink.java_gateway import get_gateway

    batched = batches(changelog, columns, buckets)
    by_bucket = batched._j_data_stream.keyBy(
        get_gateway().jvm.KeyByKeySelector(), Types.ROW([Types.INT()]).get_java_type_info()
    )
    return KeyedStream(by_bucket, batch_type(columns), batched)
