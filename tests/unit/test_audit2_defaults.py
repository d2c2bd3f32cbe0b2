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
