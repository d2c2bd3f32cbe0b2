"""The schema registry's SQLite file deleted under the running server: every route still answers 50002 (the store
unavailable), and no empty store is made in its place: a restart on an empty file would hand out ids 1, 2, ...
again for other schemas, and consumers that cached the old ids would decode with the wrong schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.core.errors import StoreUnavailableError
from registry.schema_registry.store import SchemaStore


def test_a_store_file_deleted_under_the_server_is_not_made_again(tmp_path: Path) -> None:
    db = tmp_path / "schemas.db"
    store = SchemaStore(db)
    store.register("s", '"string"', ())
    for f in tmp_path.iterdir():
        f.unlink()
    with pytest.raises(StoreUnavailableError):
        store.subjects(deleted=False, deleted_only=False, prefix="")
    with pytest.raises(StoreUnavailableError):
        store.register("s", '"int"', ())
    assert sorted(p.name for p in tmp_path.iterdir()) == []
