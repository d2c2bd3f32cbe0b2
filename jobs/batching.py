"""Window results to the Python writer in batches, keyed by bucket in the JVM (``jobs/java/batch``).

``featurestore.job.BatchWindowResults`` (compiled once per edit against PyFlink's ``flink-dist`` by
``jobs.java_build``) runs chained to the window operator: it drops the changelog's retractions, turns the window
bounds into epoch milliseconds, computes each result's bucket (a key inside the key-group range of the writer
subtask of that number, at the writer's max parallelism, which the job sets explicitly) and hands the writer one
element per bucket per watermark from each window subtask (design §2.4): an empty one (a marker) for a bucket
without results, so every writer key hears of each watermark and records its progress from it (design §5.5). So
no Python runs per window result on the way to the writer: neither a key selector nor a call of the writer.
"""

from __future__ import annotations

from pathlib import Path

from pyflink.common import Types
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import DataStream, KeyedStream, StreamExecutionEnvironment

from jobs.java_build import flink_dist, java_jar
from registry.core.definitions import FeatureDefinition
from registry.core.settings import Settings

MAX_ROWS = 5_000
"""Results per element at most: a bounded run's final watermark closes every open window at once."""
MAX_DELAY_MS = 100
"""How long a result waits for a watermark at most (a late update between watermarks, an idle source)."""

NO_REACH = -(2**63)
"""A batch's ``reach`` before its window subtask had any result (Java's ``Long.MIN_VALUE``)."""

_VALUE_TYPES = {"long": Types.LONG(), "double": Types.DOUBLE(), "string": Types.STRING(), "boolean": Types.BOOLEAN()}


def batch_jar(settings: Settings) -> Path:
    """The batching operator's jar (built first if missing), for ``pipeline.jars``."""
    return java_jar("batch", settings.flink_jars_dir.parent / "job", [flink_dist()])


def value_types(features: tuple[FeatureDefinition, ...]) -> list[str]:
    """Each feature's column type in the query: its value type, or text for a ``last`` aggregate
    (``jobs.sql.decode_last``)."""
    return ["string" if d.aggregation.function == "last" else d.value_type for d in features]


def batch_type(columns: list[str]) -> TypeInformation:
    """One batch as the writer gets it: columns entity_ids, window starts and ends (epoch ms), revisions, then
    ``reach`` (one number: the latest window end, epoch ms, of any result the sending window subtask has had, of
    any bucket; ``NO_REACH`` before its first), then one column per feature (``value_types``), each a Python
    sequence. A batch with no entity is a marker: its bucket had no results before a watermark."""
    longs = Types.PRIMITIVE_ARRAY(Types.LONG())
    values = [Types.BASIC_ARRAY(_VALUE_TYPES[t]) for t in columns]
    return Types.ROW([Types.BASIC_ARRAY(Types.STRING()), longs, longs, longs, Types.LONG(), *values])


def batches(
    changelog: DataStream,
    columns: list[str],
    buckets: int,
    *,
    max_rows: int = MAX_ROWS,
    max_delay_ms: int = MAX_DELAY_MS,
    max_parallelism: int = 0,
) -> DataStream:
    """A window group's changelog (``t_env.to_changelog_stream``; ``columns``: its features' ``value_types``) as
    ``Row(key, batch)``, batch of ``batch_type``: PyFlink's own shape of a keyed stream's elements; ``key`` is
    the bucket's key, one Flink assigns to the writer subtask of the bucket's number at ``max_parallelism`` (0:
    the configured one, else Flink's default)."""
    from pyflink.java_gateway import get_gateway

    keyed = Types.ROW([Types.INT(), batch_type(columns)])
    operator = get_gateway().jvm.featurestore.job.BatchWindowResults(
        buckets, ",".join(columns), max_rows, max_delay_ms, max_parallelism
    )
    return DataStream(changelog._j_data_stream.transform("batch window results", keyed.get_java_type_info(), operator))


def writer_max_parallelism(env: StreamExecutionEnvironment, buckets: int) -> int:
    """The writer's max parallelism: the configured one, else Flink's default for its parallelism (``buckets``).
    The job sets it on the writer explicitly, so the buckets' keys and the writer agree after a restore too."""
    from pyflink.java_gateway import get_gateway

    configured = env.get_max_parallelism()
    if configured > 0:
        return int(configured)
    assignment = get_gateway().jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    return int(assignment.computeDefaultMaxParallelism(buckets))


def bucket_keys(buckets: int, max_parallelism: int) -> list[int]:
    """Each bucket's key as ``batches`` gives it (``BatchWindowResults.bucketKeys``): bucket ``b``'s is the smallest
    whole number Flink assigns to writer subtask ``b`` of ``buckets`` at ``max_parallelism``."""
    from pyflink.java_gateway import get_gateway

    return [int(k) for k in get_gateway().jvm.featurestore.job.BatchWindowResults.bucketKeys(buckets, max_parallelism)]


def batched_by_bucket(changelog: DataStream, columns: list[str], buckets: int, max_parallelism: int = 0) -> KeyedStream:
    """``batches`` keyed by bucket: ``.process`` a ``KeyedProcessFunction`` on it, at parallelism ``buckets`` and
    max parallelism ``max_parallelism`` (``writer_max_parallelism``); it gets the batches."""
    from pyflink.java_gateway import get_gateway

    batched = batches(changelog, columns, buckets, max_parallelism=max_parallelism)
    by_bucket = batched._j_data_stream.keyBy(
        get_gateway().jvm.KeyByKeySelector(), Types.ROW([Types.INT()]).get_java_type_info()
    )
    return KeyedStream(by_bucket, batch_type(columns), batched)
