"""Record and field names across the two decoders (``tests/integration/test_java_decoder.py`` holds the rest): a
writer record resolves to the reader by unqualified name or a reader alias, namespaces ignored, and then the reader's
field aliases apply to it, in the JVM decoder as in ``udfs.decode`` (the reference), against the real registry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema

from jobs.registry_client import registry_client, schema_lookup
from registry.core.errors import DecodeError
from registry.core.settings import Settings
from schemas.wire import frame
from tests.integration.test_java_decoder import EVENT, EVENT_MS, READER, _body
from udfs.decode import EventDecoder

pytestmark = pytest.mark.integration


def _answers(
    settings: Settings, run_id: str, tag: str, reader: dict[str, Any], writers: dict[str, Any], event: dict[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """Per writer schema (registered under its own subject), ``event`` written with it and decoded with ``reader`` by
    the Python decoder and the JVM one: each answer the values in ``READER``'s field order, or the (reason, detail)
    of the refusal."""
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    from jobs.decoder import decoder_jar, event_decoder

    avro = sorted(settings.flink_jars_dir.glob("flink-sql-avro-*.jar"))
    add_jars_to_context_class_loader([decoder_jar(settings).as_uri(), avro[0].as_uri()])
    client = registry_client(settings.schema_registry_url, settings.token)
    subjects = {name: f"javadecoder-{tag}-{run_id}-{name}" for name in writers}
    ids = {name: client.register_schema(subjects[name], Schema(json.dumps(w), "AVRO")) for name, w in writers.items()}
    python = EventDecoder(
        schema_lookup(settings.schema_registry_url, settings.token), reader, timestamp_field="event_time"
    )
    java = event_decoder(settings, reader, "event_time")
    answers = {}
    for name, writer in writers.items():
        payload = frame(ids[name], _body(event, writer))
        try:
            py: Any = [python.decode_record(payload, EVENT_MS)[f["name"]] for f in READER["fields"]]
        except DecodeError as exc:
            py = (exc.reason, exc.detail)
        try:
            jv: Any = list(java.decode(payload, EVENT_MS))
        except Exception as exc:  # py4j's Py4JJavaError, carrying the Java exception
            jv = (str(exc.java_exception.reason()), str(exc.java_exception.detail()))  # type: ignore[attr-defined]
        answers[name] = (py, jv)
    for subject in subjects.values():
        client.delete_subject(subject, permanent=False)
    return answers


def test_a_reader_alias_resolves_by_unqualified_name_alike(it_settings: Settings, run_id: str) -> None:
    """A writer record resolves to a reader alias by unqualified name, namespaces ignored, as record names do:
    fastavro compared a qualified alias with the writer's full name only, the JVM decoder the unqualified ones."""
    reader = {**READER, "aliases": ["old.ns.Txn"]}
    no_namespace = {k: v for k, v in READER.items() if k != "namespace"}
    writers = {
        "alias_itself": {**READER, "name": "Txn", "namespace": "old.ns"},
        "other_namespace": {**READER, "name": "Txn", "namespace": "x.y"},
        "reader_namespace": {**READER, "name": "Txn"},
        "no_namespace": {**no_namespace, "name": "Txn"},
        "other_name": {**READER, "name": "Other", "namespace": "old.ns"},
    }
    answers = _answers(it_settings, run_id, "alias", reader, writers, EVENT)
    reasons = {name: tuple(a[1] if isinstance(a, list) else a[0] for a in pair) for name, pair in answers.items()}
    ok = (EVENT["user_id"], EVENT["user_id"])
    assert reasons == {**dict.fromkeys(writers, ok), "other_name": ("undecodable", "undecodable")}, answers


def test_reader_field_aliases_apply_to_a_writer_of_another_namespace_alike(it_settings: Settings, run_id: str) -> None:
    """A reader field renamed with an alias (``user_id`` once ``uid``, ``amount`` once ``amt`` with a default, the
    merchant optional once ``mid``): the JVM decoder applied the aliases only to a writer of the reader's full name,
    so a writer in another namespace or in none had ``user_id`` missing (dead-lettered), ``amount`` its default 0.0
    and the merchant null, while fastavro (backfills) read the values (audit, 2026-12-07). Both read them now, for a
    writer record of the reader's full name, another namespace, none, the name of a reader alias, and a union's
    record branch."""
    renamed = {
        "user_id": {"name": "user_id", "type": "string", "aliases": ["uid"]},
        "amount": {"name": "amount", "type": "double", "aliases": ["amt"], "default": 0.0},
        "merchant_id": {"name": "merchant_id", "type": ["null", "string"], "aliases": ["mid"], "default": None},
    }
    reader = {**READER, "aliases": ["Txn"], "fields": [renamed.get(f["name"], f) for f in READER["fields"]]}
    old = {"user_id": "uid", "amount": "amt", "merchant_id": "mid"}
    old_fields = [{"name": old.get(f["name"], f["name"]), "type": f["type"]} for f in READER["fields"]]
    record = {"type": "record", "name": READER["name"], "namespace": READER["namespace"], "fields": old_fields}
    no_namespace = {k: v for k, v in record.items() if k != "namespace"}
    writers: dict[str, Any] = {
        "reader_full_name": record,
        "other_namespace": {**record, "namespace": "x.y"},
        "no_namespace": no_namespace,
        "alias_name": {**record, "name": "Txn", "namespace": "old.ns"},
        "union_branch": ["null", {**record, "namespace": "x.y"}],
        # Two branches resolve: none is renamed (two of the reader's name were a union Avro refuses, every body
        # undecodable: the review's case); a body of the reader's own branch reads as before.
        "two_branches": [record, {**record, "namespace": "x.y"}],
    }
    answers = _answers(it_settings, run_id, "fieldalias", reader, writers, {old.get(k, k): v for k, v in EVENT.items()})
    expected = [EVENT[f["name"]] for f in READER["fields"]]
    assert answers == dict.fromkeys(writers, (expected, expected)), answers
