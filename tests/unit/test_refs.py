"""One syntax for references to versions: ``[entity.]name[@[v]N]`` (registry.core.refs)."""

from __future__ import annotations

import pytest

from registry.core.refs import SERVICE_NAME_PATTERN, Ref, parse_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("txn_count_1h", Ref(None, "txn_count_1h", None)),
        ("txn_count_1h@3", Ref(None, "txn_count_1h", 3)),
        ("txn_count_1h@v3", Ref(None, "txn_count_1h", 3)),
        ("txn_count_1h@v2147483647", Ref(None, "txn_count_1h", 2**31 - 1)),
        ("txn_count_1h@v0", None),
        ("txn_count_1h@v2147483648", None),
        ("txn_count_1h@", None),
        ("txn_count_1h@v", None),
        ("txn_count_1h@-1", None),
        ("txn_count_1h@vv1", None),
        ("Txn", None),
        ("", None),
        ("user.txn_count_1h@3", None),  # no entity expected here
        ("txn_count_1h\n@3", None),
    ],
)
def test_feature_refs(text: str, expected: Ref | None) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user.txn_count_1h@3", Ref("user", "txn_count_1h", 3)),
        ("user.txn_count_1h@v3", Ref("user", "txn_count_1h", 3)),
        ("user.txn_count_1h", Ref("user", "txn_count_1h", None)),
        ("txn_count_1h@3", None),
        ("User.txn@1", None),
        ("user.a.b@1", None),
        ("user\n.txn_count_1h@1", None),
    ],
)
def test_refs_with_an_entity(text: str, expected: Ref | None) -> None:
    assert parse_ref(text, with_entity=True) == expected


def test_service_names_may_hold_hyphens_and_refs_print_one_way() -> None:
    assert parse_ref("fraud-model@v2", name_pattern=SERVICE_NAME_PATTERN) == Ref(None, "fraud-model", 2)
    assert parse_ref("fraud-model@v2") is None
    assert str(Ref("user", "txn_count_1h", 3)) == "user.txn_count_1h@v3"
    assert str(Ref(None, "fraud", None)) == "fraud"


@pytest.mark.parametrize(
    "text",
    [
        " txn_count_1h@v2147483647 ",
        "txn_count_1h@1\n",
        "txn_count_1h\n",
        " txn_count_1h",
        "txn_count_1h ",
        "txn_count_1h@ 1",
        "txn_count_1h @1",
        "\ttxn_count_1h@v1",
        "txn_count_1h@1\r\n",
    ],
)
def test_whitespace_anywhere_makes_a_reference_malformed(text: str) -> None:
    """The grammar matches the whole value: no strip, so a trailing newline or a space is refused."""
    assert parse_ref(text) is None
    assert parse_ref(f"user.{text}", with_entity=True) is None
    assert parse_ref(text.replace("txn_count_1h", "fraud-model"), name_pattern=SERVICE_NAME_PATTERN) is None
