"""The schema registry through confluent-kafka's own SchemaRegistryClient and Avro serdes on a real uvicorn server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore
from tests.http_server import serving
from tests.unit.test_schema_registry_api import CARD, CARD_BAD, CARD_V2, SUBJECT, db, store

__all__ = ["db", "store"]  # the fixtures, used by name


# ---------------------------------------------------------------------------------------------
# confluent-kafka's own client and Avro serdes against a real server
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def registry_url(store: SchemaStore) -> Iterator[str]:
    with serving(create_schema_registry_app(store)) as url:
        yield url


TXN = {
    "transaction_id": "t-1",
    "user_id": "u-1",
    "merchant_id": "m-1",
    "amount": 12.5,
    "currency": "EUR",
    "event_time": datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC),
}


def test_confluent_serdes_round_trip_and_evolution(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    ctx = SerializationContext("card_transactions", MessageField.VALUE)

    written_v1 = AvroSerializer(client, CARD)(TXN, ctx)
    assert written_v1 is not None and written_v1[:5] == b"\x00\x00\x00\x00\x01"  # magic byte + schema id 1
    assert AvroDeserializer(client)(written_v1, ctx) == TXN

    written_v2 = AvroSerializer(client, CARD_V2)({**TXN, "channel": "web"}, ctx)
    assert written_v2 is not None and written_v2[:5] == b"\x00\x00\x00\x00\x02"
    assert client.get_versions(SUBJECT) == [1, 2]
    # a consumer pinned to the old reader schema keeps reading what the new producer writes
    assert AvroDeserializer(client, CARD)(written_v2, ctx) == TXN
    # and a consumer on the new schema reads old records, filling the default
    assert AvroDeserializer(client, CARD_V2)(written_v1, ctx) == {**TXN, "channel": None}

    with pytest.raises(SchemaRegistryError) as refused:
        AvroSerializer(client, CARD_BAD)({**TXN, "amount": "12.5"}, ctx)
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "field `amount`" in refused.value.error_message
    assert client.get_versions(SUBJECT) == [1, 2]


def test_confluent_client_admin_calls(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    assert client.register_schema(SUBJECT, Schema(CARD, "AVRO")) == 1
    assert client.get_schema_types() == ["AVRO"]
    assert client.lookup_schema(SUBJECT, Schema(CARD, "AVRO")).version == 1
    assert client.get_latest_version(SUBJECT).schema_id == 1
    assert json.loads(client.get_version(SUBJECT, 1).schema.schema_str or "") == json.loads(CARD)

    assert client.test_compatibility(SUBJECT, Schema(CARD_V2, "AVRO")) is True
    assert client.test_compatibility(SUBJECT, Schema(CARD_BAD, "AVRO")) is False
    assert client.test_compatibility(SUBJECT, Schema(CARD_BAD, "AVRO"), version=1, verbose=True) is False
    assert client.test_compatibility_all_versions(SUBJECT, Schema(CARD_V2, "AVRO")) is True

    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(SUBJECT, "none") == {"compatibility": "NONE"}
    assert client.get_compatibility(SUBJECT) == "NONE"
    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(level="FULL") == {"compatibility": "FULL"}
    assert client.get_compatibility() == "FULL"
    with pytest.raises(SchemaRegistryError) as invalid:
        client.set_compatibility(level="SIDEWAYS")
    assert (invalid.value.http_status_code, invalid.value.error_code) == (422, 42203)

    assert client.register_schema(SUBJECT, Schema(CARD_BAD, "AVRO")) == 2  # NONE on this subject
    assert client.get_subjects() == [SUBJECT]
    assert client.get_subjects_by_schema_id(2) == [SUBJECT]
    assert [(v.subject, v.version) for v in client.get_schema_versions(1)] == [(SUBJECT, 1)]

    assert client.delete_version(SUBJECT, 2) == 2
    assert client.delete_subject(SUBJECT) == [1]
    assert client.get_subjects() == []
    assert client.get_subjects(deleted=True) == [SUBJECT]
    assert client.delete_subject(SUBJECT, permanent=True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_versions(SUBJECT)
    assert (gone.value.http_status_code, gone.value.error_code) == (404, 40401)
    fresh = SchemaRegistryClient({"url": registry_url})  # no cache: an id no version holds is gone, as in Confluent
    with pytest.raises(SchemaRegistryError) as forgotten:
        fresh.get_schema(2)
    assert (forgotten.value.http_status_code, forgotten.value.error_code) == (404, 40403)


def test_latest_with_metadata_finds_no_version_as_confluent_answers_for_versions_without_metadata(
    registry_url: str,
) -> None:
    """``get_latest_with_metadata`` (serializers with ``use.latest.with.metadata``) asks ``GET /subjects/{s}/metadata``:
    it was our 404 without a Confluent error code (no such route). No version here has metadata, and Confluent matches
    none then: 40403 for a subject with a version, 40401 for one without (found by an audit)."""
    client = SchemaRegistryClient({"url": registry_url})
    client.register_schema(SUBJECT, Schema(CARD, "AVRO"))

    def code(subject: str, **metadata: str) -> tuple[int, int]:
        with pytest.raises(SchemaRegistryError) as refused:
            client.get_latest_with_metadata(subject, metadata)
        return refused.value.http_status_code, refused.value.error_code

    assert code(SUBJECT, owner="risk") == (404, 40403)
    assert code(SUBJECT) == (404, 40403)
    assert code("nope", owner="risk") == (404, 40401)
    client.delete_subject(SUBJECT)
    assert code(SUBJECT, owner="risk") == (404, 40401)
    with pytest.raises(SchemaRegistryError) as deleted:
        client.get_latest_with_metadata(SUBJECT, {"owner": "risk"}, deleted=True)
    assert (deleted.value.http_status_code, deleted.value.error_code) == (404, 40403)
