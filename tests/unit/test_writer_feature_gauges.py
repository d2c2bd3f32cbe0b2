"""The stream writer's per-feature gauges (``jobs.functions.WriteWindowResults``, docs/design.md §7): one series per
feature *version*, labelled ``entity_type``, ``feature`` and ``version`` (as the API's and parity's metrics), so two versions of a feature or two entity types' features of one
name never share (and the freshest never hides the others' staleness in the freshness alert's ``max by (feature)``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jobs.functions import WriteWindowResults
from registry.core.catalog import FeatureCatalog
from registry.core.settings import Settings


class _Group:
    """Flink's metric group as the writer uses it: key-value groups and gauges (name -> value function)."""

    def __init__(self, path: tuple[tuple[str, str], ...] = ()) -> None:
        self.path = path
        self.gauges: dict[tuple[tuple[tuple[str, str], ...], str], Callable[[], int]] = {}

    def add_group(self, key: str, value: str) -> _Group:
        child = _Group((*self.path, (key, value)))
        child.gauges = self.gauges  # one registry, as Flink's reporter has
        return child

    def gauge(self, name: str, value: Callable[[], int]) -> None:
        key = (self.path, name)
        assert key not in self.gauges, f"two gauges registered as {key}: one would hide the other"
        self.gauges[key] = value


def test_each_feature_version_has_its_own_series_labelled_with_entity_type_name_and_version(tmp_path: Path) -> None:
    shipped = FeatureCatalog.from_folder().get("user", "txn_count_1h")
    v2 = shipped.model_copy(update={"version": 2, "freshness_slo": shipped.freshness_slo * 2})
    merchant = shipped.model_copy(update={"entity": "merchant"})
    writer = WriteWindowResults(Settings(definitions_db=tmp_path / "d.db"), (shipped, v2, merchant))
    group = _Group()
    writer._feature_gauges(group)  # what open() registers on the operator's metric group
    # the groups' keys in this order make the metric's name (Flink's reporter): ..._operator_entity_type_feature_version_*
    assert {tuple(k for k, _ in path) for path, _ in group.gauges} == {("entity_type", "feature", "version")}
    labels = {tuple(v for _, v in path) for path, _ in group.gauges}
    assert labels == {("user", "txn_count_1h", "1"), ("user", "txn_count_1h", "2"), ("merchant", "txn_count_1h", "1")}
    assert len(group.gauges) == 3 * 3  # window end, lag and SLO per version
    slo = {
        tuple(v for _, v in path): value() for (path, name), value in group.gauges.items() if name == "freshness_slo_ms"
    }
    assert slo[("user", "txn_count_1h", "1")] == 600_000
    assert slo[("user", "txn_count_1h", "2")] == 1_200_000  # each version judged by its own definition


def test_progress_goes_under_the_stream_and_the_own_keys_of_carried_versions(tmp_path: Path) -> None:
    """Design §3.8: a job computing versions with their stream writes the stream's progress and, for a version that
    had a key of its own when it started (``JobStart.carried``: a backfill's), that key too, so serving keeps judging the
    version by what was written of it; a job computing versions alone writes their own keys only."""
    from sinks.cassandra.job_progress import JobStart
    from sinks.cassandra.layout import version_stream

    count = FeatureCatalog.from_folder().get("user", "txn_count_1h")
    total = FeatureCatalog.from_folder().get("user", "txn_amount_sum_1h")
    assert count.stream == total.stream
    settings = Settings(definitions_db=tmp_path / "d.db")
    recorded: list[tuple[str, int, str]] = []

    class Online:
        def record_progress(self, stream: str, closed_ms: int, writer_id: str, longest_ttl_ms: int) -> None:
            recorded.append((stream, closed_ms, writer_id))

    def keys(**options: object) -> set[str]:
        writer = WriteWindowResults(settings, (count, total), bucket_of={7: 3}, **options)  # type: ignore[arg-type]
        writer._online = Online()  # type: ignore[assignment]
        writer._reach, writer._progress_step = {7: 2**62}, {}  # as open() leaves them: reach past the watermark
        recorded.clear()
        writer._record_progress(7, 1_700_000_000_000)
        assert {(closed, writer_id) for _, closed, writer_id in recorded} == {(1_700_000_000_001, "3")}
        return {stream for stream, _, _ in recorded}

    own = {d.key: version_stream(d.stream, *d.key) for d in (count, total)}
    assert keys() == {count.stream}
    assert keys(start=JobStart(frozenset({count.key}), frozenset())) == {count.stream, own[count.key]}
    assert keys(progress_per_version=True) == {own[count.key], own[total.key]}
    # a run that ends records nothing under a key for a writer the key did not have at its start (design §3.8)
    silent = JobStart(frozenset({count.key}), frozenset({(count.stream, "3")}))
    assert keys(start=silent) == {own[count.key]}
    assert keys(start=JobStart(frozenset(), frozenset({(count.stream, "0")}))) == {count.stream}  # another writer
