"""Store objects created by several processes at the same moment: every one of them succeeds.

The stream job's writers, the API's workers and the registry's processes open their stores at once
on a fresh machine; whoever loses a "check, then create" race must see success, not an error.
Processes (not threads), because that is how the job's Python workers and the services run.
"""

from __future__ import annotations

import traceback
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from registry.core.settings import Settings
from tests.processes import race

PROCESSES = 6
ROUNDS = 12


def _settings(base: Path, round_: int) -> Settings:
    return Settings(
        iceberg_catalog_uri=f"sqlite:///{base / f'catalog{round_}.db'}",
        iceberg_warehouse=(base / f"warehouse{round_}").as_uri(),
    )


def _ensure_offline_table(base: Path, rounds: int, barrier: Barrier, errors: Any) -> None:
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import ensure_table

    for round_ in range(rounds):
        barrier.wait(timeout=120)
        try:
            table = ensure_table(connect_iceberg(_settings(base, round_)), "fs")
            assert "revision" in table.schema().column_names
        except BaseException:  # reported to the parent, which asserts on it
            errors.put(traceback.format_exc())


def _open_registry_stores(base: Path, rounds: int, barrier: Barrier, errors: Any) -> None:
    from registry.definition_store import DefinitionStore
    from registry.feature_services import FeatureServiceStore
    from registry.schema_registry.store import SchemaStore
    from registry.training_sets import TrainingSetStore

    for round_ in range(rounds):
        barrier.wait(timeout=120)
        try:
            DefinitionStore(base / f"definitions{round_}.db").catalog()
            FeatureServiceStore(base / f"services{round_}.db")
            TrainingSetStore(base / f"training_sets{round_}.db")
            SchemaStore(base / f"schemas{round_}.db").subjects()
        except BaseException:
            errors.put(traceback.format_exc())


@pytest.mark.timeout(600)
def test_processes_ensuring_one_new_offline_table_together_all_succeed(tmp_path: Path) -> None:
    failures = race(_ensure_offline_table, tmp_path, ROUNDS, processes=PROCESSES)
    assert not failures, f"{len(failures)} of {PROCESSES * ROUNDS} failed; first:\n{failures[0]}"


@pytest.mark.timeout(600)
def test_processes_opening_new_registry_databases_together_all_succeed(tmp_path: Path) -> None:
    failures = race(_open_registry_stores, tmp_path, ROUNDS, processes=PROCESSES)
    assert not failures, f"{len(failures)} of {PROCESSES * ROUNDS} failed; first:\n{failures[0]}"
