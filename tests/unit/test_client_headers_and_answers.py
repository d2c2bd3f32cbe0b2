"""The Python client against README "Online serving": it "refuses one [header value] that holds a control character
... with ``ValueError`` before sending" (a control character is Unicode's category Cc, C1 included, as everywhere in
the project, e.g. a definition's ``owner``), and every failure is a ``FeatureStoreError``, a 2xx answer of another
shape included."""

from __future__ import annotations

import pytest

from serving.online.client import FeatureClient


@pytest.mark.parametrize("value", ["a\x85b", "a\x9fb", "a\x80b", "a\x7fb"])
def test_a_c1_control_character_in_caller_or_token_is_a_value_error(value: str) -> None:
    with pytest.raises(ValueError, match="caller"):
        FeatureClient("http://127.0.0.1:1", caller=value)
    with pytest.raises(ValueError, match="token"):
        FeatureClient("http://127.0.0.1:1", token=value)


@pytest.mark.parametrize("value", ["équipe", "a\xa0b", "日本", "a\u2028b"])
def test_text_without_control_characters_is_accepted(value: str) -> None:
    FeatureClient("http://127.0.0.1:1", caller=value, token=value)


@pytest.mark.parametrize("body", [{}, [], {"names": 1, "versions": [], "results": [{}]}, {"features": []}, "x"])
def test_a_2xx_answer_of_another_shape_is_a_request_error_on_every_read(body: object) -> None:
    """README: every failure is a FeatureStoreError. A 200 of another shape (another server on the port) raised a
    bare KeyError or TypeError."""
    import httpx

    from registry.core.errors import RequestError
    from serving.online.client import FeatureClient

    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    with FeatureClient(client=httpx.Client(base_url="http://api", transport=transport)) as fs:
        for read in (
            lambda: fs.get_features("user", "u1", ["f"]),
            lambda: fs.get_features_batch("user", ["u1"], ["f"]),
            lambda: fs.get_vectors([{"entity_type": "user", "entity_id": "u1", "names": ["f"]}]),
        ):
            with pytest.raises(RequestError, match="unexpected shape") as caught:
                read()
            assert caught.value.code == "bad_answer"
