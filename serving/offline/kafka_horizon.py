"""When Kafka deletes what an erasure cannot (``serving.offline.erasure``, step 5): per topic, the latest time its
current records are gone by retention, from the topic's configuration and the brokers'.

Kafka deletes by time whole segments, oldest first, once ``now - (the segment's largest record timestamp) >
retention.ms``, checked every ``log.retention.check.interval.ms`` (a broker setting, 5 min by default); it then
removes the segment's files ``file.delete.delay.ms`` (1 min) later. A segment stops taking records at the first one
whose timestamp is more than ``segment.ms`` past the segment's first batch (the roll is decided on record
timestamps, when a record arrives; a segment no record follows is deleted by retention all the same). With
``message.timestamp.type = CreateTime`` (the default: the producer's timestamp, our event time) the broker takes a
record up to ``message.timestamp.after.max.ms`` (1 h in Kafka 4) ahead of its clock, and such a record holds back
its segment and every later one. So a record appended before ``erased_at`` is gone from Kafka at the latest
``erased_at + after.max.ms (0 with LogAppendTime) + segment.ms + retention.ms + the check interval + the file
delay``; ``retention.ms + segment.ms`` alone was short by 1 h 6 min with Kafka 4's defaults (a record stamped 50 min
ahead outlived it by 50 min, any record by up to the check interval)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from registry.core.errors import StoreUnavailableError

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient


# Kafka's defaults, for a setting a broker's or topic's description leaves out.
_DEFAULTS = {
    "log.retention.check.interval.ms": 300_000,
    "file.delete.delay.ms": 60_000,
    "message.timestamp.after.max.ms": 3_600_000,
}


def _ms(configs: dict[str, Any], name: str) -> int:
    entry = configs.get(name)
    return int(entry.value) if entry is not None and entry.value is not None else _DEFAULTS[name]


def _check_interval_ms(admin: AdminClient, brokers: list[int]) -> int:
    """The longest ``log.retention.check.interval.ms`` of the brokers (each runs its own retention check)."""
    from confluent_kafka.admin import ConfigResource

    resources = [ConfigResource(ConfigResource.Type.BROKER, str(b)) for b in brokers]
    futures = admin.describe_configs(resources) if resources else {}
    return max(
        (_ms(futures[r].result(timeout=10), "log.retention.check.interval.ms") for r in resources),
        default=_DEFAULTS["log.retention.check.interval.ms"],
    )


def kafka_horizon(bootstrap: str, topics: list[str], now: datetime) -> list[dict[str, str]]:
    """Per topic, the latest time its current records (the entity's events among them) are deleted."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    from sinks.topics import require_reachable

    out: list[dict[str, str]] = []
    try:
        require_reachable(bootstrap)
    except StoreUnavailableError as exc:
        return [{"where": f"Kafka topics {', '.join(topics)}", "until": "unknown", "why": str(exc)}]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        metadata = admin.list_topics(timeout=10)
        existing = set(metadata.topics)
    except KafkaException as exc:
        return [{"where": f"Kafka topics {', '.join(topics)}", "until": "unknown", "why": f"Kafka unreachable: {exc}"}]
    try:
        check_ms = _check_interval_ms(admin, sorted(metadata.brokers))
    except (KafkaException, TimeoutError) as exc:
        why = f"the brokers' retention check interval: {exc or 'no answer within 10 s'}"
        return [{"where": f"Kafka topics {', '.join(topics)}", "until": "unknown", "why": why}]
    for topic in sorted(set(topics) & existing):
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        try:
            configs = admin.describe_configs([resource])[resource].result(timeout=10)
        except KafkaException as exc:
            out.append({"where": f"Kafka topic {topic}", "until": "unknown", "why": str(exc)})
            continue
        except TimeoutError:  # concurrent.futures' (an OSError): the stores are erased by now, only this is unknown
            out.append(
                {"where": f"Kafka topic {topic}", "until": "unknown", "why": "Kafka sent no topic configs within 10 s"}
            )
            continue
        retention_ms = int(configs["retention.ms"].value)
        segment_ms = int(configs["segment.ms"].value)
        policy = configs["cleanup.policy"].value if "cleanup.policy" in configs else "delete"
        if "delete" not in [p.strip() for p in (policy or "").split(",")]:
            # Compaction deletes nothing by age: each key's latest record stays until a newer one (or a tombstone).
            until, why = (
                "never",
                f"cleanup.policy {policy} (no deletion by age): compaction keeps each key's latest record",
            )
        elif retention_ms < 0:
            until, why = "never", "retention.ms = -1 (kept forever): delete the records or compact the topic"
        else:
            # A record stamped ahead of the broker's clock (CreateTime: the producer's timestamp) holds its segment
            # back by as much; with LogAppendTime the broker stamps it.
            log_append = (configs["message.timestamp.type"].value if "message.timestamp.type" in configs else "") == (
                "LogAppendTime"
            )
            ahead_ms = 0 if log_append else _ms(configs, "message.timestamp.after.max.ms")
            delay_ms = _ms(configs, "file.delete.delay.ms")
            terms = (
                f"retention.ms {retention_ms} + segment.ms {segment_ms} + message.timestamp.after.max.ms {ahead_ms}"
                f"{' (LogAppendTime)' if log_append else ''} + log.retention.check.interval.ms {check_ms}"
                f" + file.delete.delay.ms {delay_ms}"
            )
            why = f"events age out: {terms} (whole segments, by their newest record timestamp)"
            try:
                # From the erasure's instant as the report gives it (whole ms): a cut to the second would name a
                # time up to a second before the latest one.
                at = now.replace(microsecond=now.microsecond // 1000 * 1000) + timedelta(
                    milliseconds=retention_ms + segment_ms + ahead_ms + check_ms + delay_ms
                )
                until = at.isoformat(timespec="seconds" if at.microsecond == 0 else "milliseconds")
            except OverflowError:  # e.g. retention.ms = 2^63-1, Kafka's "forever" short of -1: past the year 9999
                until = "never"
                why = f"{terms} reaches past the year 9999"
        out.append({"where": f"Kafka topic {topic}", "until": until, "why": why})
    return out
