"""A ``[defaults]`` key that is no definition field is refused by name, whether or not a table of its file inherits
it (docs/design.md §4): a misspelt default in a file of request features only, or of no features, was dropped
without a word, while the same key inherited by a ``[[feature]]`` was refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.core.catalog import load_folder_at, load_request_folder_at
from registry.core.errors import DefinitionError

REQUEST = '[[request_feature]]\nname = "r"\n'


@pytest.mark.parametrize("tables", ["", REQUEST], ids=["no-tables", "request-features-only"])
@pytest.mark.parametrize("load", [load_folder_at, load_request_folder_at], ids=["features", "request-features"])
def test_an_unknown_default_is_refused_by_name(tmp_path: Path, tables: str, load: object) -> None:
    (tmp_path / "a.toml").write_text(f'[defaults]\nentity = "user"\nownr = "risk"\n\n{tables}')
    with pytest.raises(DefinitionError, match=r"a\.toml: defaults: unknown field\(s\) \['ownr'\]"):
        load(tmp_path)  # type: ignore[operator]


def test_known_defaults_still_load(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[defaults]\nentity = "user"\nowner = "risk"\ntags = ["t"]\n')
    assert load_folder_at(tmp_path) == []
    assert load_request_folder_at(tmp_path) == []


_SHIPPED = (Path(__file__).resolve().parents[2] / "registry" / "features" / "user_transactions.toml").read_text()


def test_a_count_takes_no_field_from_the_defaults(tmp_path: Path) -> None:
    """A default ``aggregation = { function = "sum", field = "amount" }`` gave a ``count`` feature its ``field``
    (TOML has no null to clear it): "`count` counts events and takes no `field`", blamed on the feature."""
    text = _SHIPPED.replace(
        "[defaults.window]", '[defaults.aggregation]\nfunction = "sum"\nfield = "amount"\n\n[defaults.window]'
    )
    (tmp_path / "a.toml").write_text(text)
    by_name = {d.name: d for d, _ in load_folder_at(tmp_path)}
    assert by_name["txn_count_1h"].aggregation.field is None
    assert by_name["txn_amount_sum_1h"].aggregation.field == "amount"
    # another function keeps the default's field, as before: a `max` of the default's amount
    (tmp_path / "a.toml").write_text(
        text.replace('aggregation = { function = "count" }', 'aggregation = { function = "max" }')
    )
    assert {d.name: d for d, _ in load_folder_at(tmp_path)}["txn_count_1h"].aggregation.field == "amount"


def test_hidden_files_are_not_definitions(tmp_path: Path) -> None:
    """``glob("*.toml")`` matches ``.x.toml``: a hidden copy was registered and activated unseen, and an editor's
    dangling lock link ``.#x.toml`` stopped plan and apply."""
    (tmp_path / "a.toml").write_text(_SHIPPED)
    (tmp_path / ".hidden.toml").write_text(_SHIPPED.replace('name = "txn_count_1h"', 'name = "hidden_count"'))
    (tmp_path / ".#a.toml").symlink_to(tmp_path / "gone@host.1234")
    assert sorted(d.name for d, _ in load_folder_at(tmp_path)) == ["txn_amount_sum_1h", "txn_count_1h"]


def test_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("\ufeff" + _SHIPPED, encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"a\.toml: starts with a UTF-8 byte order mark \(BOM\)"):
        load_folder_at(tmp_path)


def test_a_bare_carriage_return_is_tomls_error_not_a_newline(tmp_path: Path) -> None:
    """Read in universal-newlines mode, a lone CR in a description became a newline and was stored; TOML (and the
    registry's own rule: no carriage return in a description) refuses it. A CRLF file still reads."""
    described = 'description = "Number of card transactions by the user in the last hour (5-minute slide)."'
    assert described in _SHIPPED
    (tmp_path / "a.toml").write_bytes(_SHIPPED.replace(described, 'description = """A\rB"""').encode())
    with pytest.raises(DefinitionError, match="cannot read definitions"):
        load_folder_at(tmp_path)
    (tmp_path / "a.toml").write_bytes(_SHIPPED.replace("\n", "\r\n").encode())
    assert len(load_folder_at(tmp_path)) == 2
