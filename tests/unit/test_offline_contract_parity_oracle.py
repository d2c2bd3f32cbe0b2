"""Parity (``serving.offline.parity``) against a brute-force reference written from docs/design.md §9 ("Online
evaluation") and README ("Serving log and parity"): each logged ``present`` or ``stale`` value is compared with the
training join's value (the batch oracle's reference, ``expected_value``) for the same entity and feature version at
label time = the logged feature timestamp; exact comparison (NaN equals NaN; a null logged equals a NaN or an
infinity offline); ``missing_offline`` where the join has no value but one was served; values served ``missing``
or ``expired``, or without a timestamp, are only counted; a record landed twice counts once."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from serving.offline.parity import parity_report
from sinks.iceberg.as_of import iso_us
from sinks.iceberg.writer import ensure_table
from sinks.serving_log import Batch, ensure_log_table
from tests.unit.test_offline_contract_batch_oracle import (
    STEP_US,
    T0_US,
    Row,
    _append,
    _rows,
    expected_value,
    oracle_catalog,
)

SERVED_MS = T0_US // 1000 + 3_600_000
FEATURES = [("user", "cnt", 1), ("user", "cnt", 2), ("user", "tot", 1), ("user", "last_m", 1), ("pair", "pcount", 1)]
STATUSES = ["present", "present", "present", "stale", "missing", "expired"]


@pytest.fixture(scope="module")
def catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    return oracle_catalog(make_definition)


def _iso(us: int) -> str:
    from serving.online.vectors import format_ms

    return format_ms(us // 1000)


def _same(online: Any, offline: Any) -> bool:
    if online is None:
        return offline is None or (isinstance(offline, float) and not math.isfinite(offline))
    if isinstance(online, float) and math.isnan(online):
        return isinstance(offline, float) and math.isnan(offline)
    if isinstance(online, bool) or isinstance(offline, bool):
        return online is offline
    return bool(online == offline)


def _served(rng: random.Random, truth: Any) -> Any:
    """What the log holds for a value whose offline truth is ``truth``: mostly the same, sometimes not."""
    roll = rng.random()
    if roll < 0.6:
        return truth
    if roll < 0.7:
        return None
    if isinstance(truth, str):
        return truth + "x"
    if isinstance(truth, float):
        return truth + 0.5
    return rng.choice([1, 3, 2**62 + 1, 0])


@pytest.mark.parametrize("seed", [11, 12])
def test_parity_equals_the_reference(tmp_path: Path, catalog: FeatureCatalog, seed: int) -> None:
    rng = random.Random(seed)
    iceberg = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    offline = ensure_table(iceberg, "fs")
    appends = _rows(rng, catalog, appends=2, per_append=150)
    for rows in appends:
        _append(offline, rows)
    visible: list[Row] = [r for rows in appends for r in rows]
    entities = {"user": [*sorted({r["entity_id"] for r in visible if r["d"].entity == "user"}), "nobody"]}
    entities["pair"] = [*sorted({r["entity_id"] for r in visible if r["d"].entity == "pair"}), "x|y"]

    log = ensure_log_table(iceberg, "fs")
    batch = Batch.empty()
    want: dict[tuple[str, str, int], Counter[str]] = {}
    served: dict[tuple[str, str, int], Counter[str]] = {}
    without_window = 0
    differing: dict[tuple[str, str, int], set[tuple[Any, ...]]] = {}
    for offset in range(300):
        entity_type, name, version = rng.choice(FEATURES)
        d = catalog.get(entity_type, name, version)
        entity = rng.choice(entities[entity_type])
        status = rng.choice(STATUSES)
        end_us = T0_US + STEP_US * rng.randint(-7, 7) + rng.choice([0, 0, 0, 1000, -1000])
        truth = expected_value(d, visible, entity, end_us)
        carries = status in ("present", "stale") and rng.random() < 0.95
        value = _served(rng, truth) if carries else None
        record = {
            "request_id": "r",
            "served_at": SERVED_MS,
            "entity_type": entity_type,
            "entity_id": entity,
            "names": [name],
            "versions": [version],
            "values": [value],
            "feature_timestamps": [_iso(end_us) if carries else None],
            "statuses": [status],
        }
        batch.add(orjson.dumps(record), "fs_serving_log", 0, offset)
        served.setdefault(d.key, Counter())[status] += 1
        if not carries:
            without_window += 1
            continue
        counts = want.setdefault(d.key, Counter())
        counts["checked"] += 1
        if truth is None and value is not None:
            kind = "missing_offline"
        elif not _same(value, truth):
            kind = "mismatched"
        else:
            continue
        counts[kind] += 1
        example = (
            "mismatch" if kind == "mismatched" else kind,
            entity,
            iso_us(end_us // 1000 * 1000),
            orjson.dumps(value),
            orjson.dumps(truth),
        )
        differing.setdefault(d.key, set()).add(example)
    log.append(batch.to_arrow())
    log.append(batch.to_arrow())  # landed twice: counted once

    report = parity_report(log, offline, catalog, SERVED_MS * 1000, SERVED_MS * 1000 + 1, examples=3)
    got = {
        (f.entity_type, f.feature, f.version): Counter(
            {"checked": f.checked, "mismatched": f.mismatched, "missing_offline": f.missing_offline}
        )
        for f in report.features
    }
    assert {k: +v for k, v in got.items()} == {k: +v for k, v in want.items()}
    for f in report.features:
        assert f.mismatch_ratio == f.mismatched / f.checked and f.missing_ratio == f.missing_offline / f.checked
    assert report.without_window == without_window
    # "examples: up to ``examples`` of each" kind, each one a value that differs as it says
    for f in report.features:
        key = (f.entity_type, f.feature, f.version)
        shown = [
            (e["kind"], e["entity_id"], e["feature_timestamp"], orjson.dumps(e["online"]), orjson.dumps(e["offline"]))
            for e in f.examples
        ]
        assert set(shown) <= differing.get(key, set())
        kinds = Counter(e[0] for e in shown)
        assert kinds == Counter(
            {"mismatch": min(3, want[key]["mismatched"]), "missing_offline": min(3, want[key]["missing_offline"])}
        ), key
    assert report.unknown_versions == []
    assert {(s["entity_type"], s["feature"], s["version"]): Counter(s["statuses"]) for s in report.served} == served
    assert sum(c["mismatched"] + c["missing_offline"] for c in want.values()) > 20  # the case is exercised
