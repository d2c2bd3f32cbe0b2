"""README.md's ``/v1/vectors``: a part takes ``request_data`` with one value per field (not a GET's query
parameters, nor a batch's list per field); a part that lacks it is told that form, with ``fields`` listing
the missing ones (docs/design.md §3.3), where it was once told the batch's "a list with one value per entity id"."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.core.catalog import FeatureCatalog
from tests.unit.test_request_features import Source, client_for, store_with, vector


@pytest.mark.parametrize("request_data", [None, "12.5", [12.5]])
def test_a_part_without_its_request_data_is_told_the_parts_form(
    tmp_path: Path, shipped_catalog: FeatureCatalog, request_data: object
) -> None:
    client = client_for(store_with(tmp_path / "d.db", shipped_catalog), Source({"u1": vector(4, 10.0)}))
    part: dict[str, object] = {"entity_type": "user", "entity_id": "u1", "names": ["amount_vs_mean_1h"]}
    if request_data is not None:
        part["request_data"] = request_data
    r = client.post("/v1/vectors", json={"entities": [part]})
    assert (r.status_code, r.json()["error"]) == (400, "bad_request_data"), r.text
    assert r.json()["fields"] == ["amount"]
    message = r.json()["message"]
    assert message.startswith("entities[0]: ") and "one value per field" in message
    assert "entity id" not in message
    part["request_data"] = {"amount": 5}
    served = client.post("/v1/vectors", json={"entities": [part]})
    assert served.status_code == 200 and served.json()["vectors"][0]["features"]["amount_vs_mean_1h"]["value"] == 2.0
