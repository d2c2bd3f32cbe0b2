"""When Kafka deletes what an erasure cannot (``serving.offline.erasure``, step 5): per topic, the latest time its
current records are gone by retention, from the topic's configuration."""

from __future__ import annotations

from datetime import datetime, timedelta

from registry.core.errors import StoreUnavailableError


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
        existing = set(admin.list_topics(timeout=10).topics)
    except KafkaException as exc:
        return [{"where": f"Kafka topics {', '.join(topics)}", "until": "unknown", "why": f"Kafka unreachable: {exc}"}]
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
            why = f"events age out: retention.ms {retention_ms} + segment.ms {segment_ms} (whole segments)"
            try:
                # From the erasure's instant as the report gives it (whole ms): a cut to the second would name a
                # time up to a second before the latest one.
                at = now.replace(microsecond=now.microsecond // 1000 * 1000) + timedelta(
                    milliseconds=retention_ms + segment_ms
                )
                until = at.isoformat(timespec="seconds" if at.microsecond == 0 else "milliseconds")
            except OverflowError:  # e.g. retention.ms = 2^63-1, Kafka's "forever" short of -1: past the year 9999
                until = "never"
                why = f"retention.ms {retention_ms} + segment.ms {segment_ms} reaches past the year 9999"
        out.append({"where": f"Kafka topic {topic}", "until": until, "why": why})
    return out
