"""Reading history decodes with the source's entity key fields, so an over-long key is refused there as the stream
dead-letters it (``bad_key``, design §5.3), not written offline to fail the online write."""

from __future__ import annotations

import pytest

from jobs import history
from registry.core.errors import DecodeError
from registry.core.settings import Settings
from tests.unit.test_events_table import NOW_MS, SOURCE

EVENT = {
    "transaction_id": "t",
    "user_id": "u",
    "merchant_id": "m",
    "amount": 1.0,
    "currency": "EUR",
    "event_time": NOW_MS,
}


@pytest.mark.parametrize(("entity_key", "field"), [("user_id", "user_id"), (("user_id", "merchant_id"), "merchant_id")])
def test_the_history_decoder_holds_every_key_field_to_256_characters(
    entity_key: str | tuple[str, ...], field: str
) -> None:
    source = SOURCE.model_copy(update={"entity_key": entity_key})
    decoder = history._decoder(Settings(), source, NOW_MS)  # the registry is not asked: no record is framed here
    decoder._validate({**EVENT, field: "x" * 256})
    with pytest.raises(DecodeError) as refused:
        decoder._validate({**EVENT, field: "x" * 257})
    assert (refused.value.reason, refused.value.detail) == (
        "bad_key",
        f"key field '{field}' is 257 characters (at most 256)",
    )
