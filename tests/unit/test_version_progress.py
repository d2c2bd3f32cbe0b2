"""Progress of its own for a version computed by a job of its own (#12 item 6, design §5.5).

A job that computes some versions beside another job on the same stream (a backfill, a job ``jobs.follow``
adds) writes their progress under each version's own key (``layout.version_stream``). Serving judges such a
version by that key and every other feature by its stream's key. These tests check the keys' parsing and the
vectors the API assembles against the rule applied feature by feature with each feature's own progress.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, ClassVar

import pytest

from jobs.follow import PlannedJob, latest_checkpoint, load_plan, main, save_plan
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import FeatureStoreError
from registry.core.request_features import RequestFeature
from registry.core.timeline import Rule, judge
from serving.online.plans import Plan
from serving.online.request_values import request_values
from serving.online.vectors import ColumnWriter, Tally, features_object, format_ms
from sinks.cassandra import layout as online_layout
from sinks.cassandra.layout import LAST_KNOWN_WRITER, Progress, stream_progress, version_stream
from sinks.cassandra.reader import PackedVector, _vector
from tests.unit.test_vector_assembly import NOW_US, _definitions

MIN_MS = 60_000


def _own(d: FeatureDefinition) -> str:
    return version_stream(d.stream, d.entity, d.name, d.version)


def test_a_versions_key_names_its_stream_and_version_and_is_its_own_progress() -> None:
    assert version_stream("card/user/sliding(1h/5m)", "user", "txn_count_1h", 2) == (
        "card/user/sliding(1h/5m)|user.txn_count_1h@2"
    )
    rows = [
        ("s", "0", 50),
        ("s|user.a@2", "0", 30),
        ("s|user.a@2", "1", 20),  # the lowest of its writers
        ("s|user.a@2", LAST_KNOWN_WRITER, 45),  # not while a writer's row is left
        ("s|user.b@1", LAST_KNOWN_WRITER, 10),  # alone: it decides
        ("t", "0", 7),
    ]
    progress = stream_progress(rows)
    assert isinstance(progress, Progress)
    assert dict(progress) == {"s": 50, "s|user.a@2": 20, "s|user.b@1": 10, "t": 7}
    assert progress.own == {("user", "a", 2), ("user", "b", 1)}
    assert stream_progress([("s", "0", 5)]).own == frozenset()


def test_a_plan_is_itself_when_no_version_of_it_has_its_own_progress() -> None:
    definitions = _definitions()
    plan = Plan.of("user", [d.name for d in definitions], definitions)
    assert plan.under({d.stream: 1 for d in definitions}) is plan  # a plain mapping: no own keys
    assert plan.under(Progress({definitions[0].stream: 1, "s|other.x@1": 1})) is plan  # another entity's version
    own = Progress({_own(definitions[3]): 1})
    judged = plan.under(own)
    assert judged is not plan and plan.under(own) is judged  # built once, then reused
    assert plan.under(Progress({_own(definitions[3]): 2})) is judged  # the same versions: the same plan


def _progress(
    rng: random.Random, definitions: list[FeatureDefinition], own: list[FeatureDefinition]
) -> tuple[Progress, dict[tuple[str, int], int]]:
    """Random stream progress and, for ``own``, progress of their own (or none yet); each feature's point."""
    points = {d.stream: NOW_US // 1000 - rng.choice([0, 3, 7, 12, 40]) * MIN_MS for d in definitions}
    for d in own:
        points[_own(d)] = NOW_US // 1000 - rng.choice([0, 5, 20, 90, 600]) * MIN_MS
    progress = stream_progress((key, "0", closed) for key, closed in points.items())
    return progress, {(d.name, d.version): points[_own(d) if d in own else d.stream] for d in definitions}


def _reference(
    definitions: list[FeatureDefinition], stored: dict[tuple[str, int], tuple[Any, int]], point: dict[Any, int]
) -> tuple[list[Any], list[str | None], list[str], Tally]:
    values: list[Any] = []
    times: list[str | None] = []
    statuses: list[str] = []
    tally: Tally = {}
    for d in definitions:
        cut = Rule.of(d).cut(min(NOW_US, point[(d.name, d.version)] * 1000), NOW_US, unit_us=1000)
        hit = stored.get((d.name, d.version))
        value, ts, status = judge(cut, None, None) if hit is None else judge(cut, hit[1], hit[0])
        values.append(value)
        times.append(None if ts is None else format_ms(ts))
        statuses.append(status)
        if status != "present":
            tally[((d.entity, d.name, d.version), status)] = tally.get(((d.entity, d.name, d.version), status), 0) + 1
    return values, times, statuses, tally


@pytest.mark.parametrize("packed", [False, True], ids=["cells", "pack"])
def test_vectors_judge_each_version_by_its_own_progress_and_the_rest_by_their_streams(packed: bool) -> None:
    rng = random.Random(31 + packed)
    definitions = _definitions()
    plan = Plan.of("user", [d.name for d in definitions], definitions)
    for case in range(300):
        own = rng.sample(definitions, rng.choice([0, 1, 3, 8]))
        progress, point = _progress(rng, definitions, own)
        # Window ends around the stream's cut and the own one: the case where the two keys disagree.
        ends = {
            (d.name, d.version): point[(d.name, d.version)] // (5 * MIN_MS) * (5 * MIN_MS)
            + rng.choice([-10, -5, 0, 5]) * MIN_MS
            for d in definitions
        }
        if packed:  # one pack, one window end for all
            end = rng.choice(list(ends.values()))
            order = online_layout.pack_order([(d.name, d.version, d.value_type) for d in definitions])
            layout = online_layout.pack(tuple(order))
            values = {(d.name, d.version, d.value_type): _value(rng, d) for d in definitions}
            stored: Any = _vector([({layout.key: layout.encode(end * 1000 + 1, end, [values[m] for m in order])},)])
            assert isinstance(stored, PackedVector)
            reference_stored = dict(stored.items())
        else:
            reference_stored = {(d.name, d.version): (_value(rng, d), ends[(d.name, d.version)]) for d in definitions}
            stored = reference_stored
        values_, times, statuses, tally = _reference(definitions, reference_stored, point)
        column_tally: Tally = {}
        row = ColumnWriter(plan, NOW_US, column_tally).row("e", stored, progress)
        assert (row["values"], row["feature_timestamps"], row["statuses"], column_tally) == (
            values_,
            times,
            statuses,
            tally,
        ), case
        object_tally: Tally = {}
        answer = features_object(plan, stored, progress, NOW_US, object_tally)
        assert [answer[k]["value"] for k in plan.keys] == values_
        assert [answer[k]["status"] for k in plan.keys] == statuses and object_tally == tally


def _value(rng: random.Random, d: FeatureDefinition) -> Any:
    return {"long": rng.randrange(1, 5), "double": rng.random() + 0.5, "string": f"m{rng.randrange(9)}"}[d.value_type]


def test_a_request_features_inputs_are_judged_by_their_own_progress() -> None:
    catalog = FeatureCatalog.from_folder()
    request = catalog.request_feature("user", "amount_vs_mean_1h")
    assert isinstance(request, RequestFeature)
    count, total = catalog.get("user", "txn_count_1h"), catalog.get("user", "txn_amount_sum_1h")
    plan = Plan.mixed(catalog, "user", ["amount_vs_mean_1h"], [request])
    step = 5 * MIN_MS
    stream_at = NOW_US // 1000 // step * step
    stored = {
        (count.name, count.version): (4, stream_at - 2 * step),
        (total.name, total.version): (8.0, stream_at - 2 * step),
    }
    # Both inputs by the stream: their windows are behind its progress, so both read the empty window (count 0:
    # no mean, a null answer, present at the stream's point).
    by_stream = Progress({count.stream: stream_at})
    [[(value, ts, status, _)]] = request_values(plan, [(stored, by_stream)], {"amount": [2.0]}, NOW_US, {})
    assert (value, ts, status) == (None, stream_at, "present")
    # The same progress for the stream, but both versions with progress of their own at their stored windows:
    # the stored values stand (8.0 / 4 = 2.0 a transaction; 2.0 / 2.0 = 1.0).
    own = Progress({count.stream: stream_at, _own(count): stream_at - 2 * step, _own(total): stream_at - 2 * step})
    [[(value, ts, status, _)]] = request_values(plan, [(stored, own)], {"amount": [2.0]}, NOW_US, {})
    assert (value, ts) == (1.0, stream_at - 2 * step)


def test_a_followers_plan_is_kept_whole_and_a_foreign_one_is_refused(tmp_path: Any) -> None:
    assert load_plan(tmp_path) == []
    jobs = [
        PlannedJob("base", ("user.a@1", "user.b@1"), "stream", "g-base"),
        PlannedJob("add-1", ("user.c@2",), "version", "g-add-1"),
    ]
    save_plan(tmp_path, jobs)
    assert load_plan(tmp_path) == jobs
    assert not list(tmp_path.glob("*.partial"))
    (tmp_path / "plan.json").write_text('{"jobs": [{"name": "x"}]}')
    with pytest.raises(FeatureStoreError, match="is not a follower's plan"):
        load_plan(tmp_path)


def test_the_latest_completed_checkpoint_is_restored(tmp_path: Any) -> None:
    import os

    assert latest_checkpoint(tmp_path) is None
    # j2 restored from j1's chk-3, so it numbers its checkpoints from 4 (Flink's checkpoint coordinator)
    for i, (job, n) in enumerate([("j1", 3), ("j2", 4), ("j2", 5)]):
        chk = tmp_path / job / f"chk-{n}"
        chk.mkdir(parents=True)
        (chk / "_metadata").write_bytes(b"x")
        os.utime(chk / "_metadata", ns=(10**18 + i, 10**18 + i))
    (tmp_path / "j2" / "chk-9").mkdir()  # in progress: no _metadata yet
    assert latest_checkpoint(tmp_path) == tmp_path / "j2" / "chk-5"


@pytest.mark.parametrize("bad", ["0", "0.009", "-1", "nan", "inf", "1_0", " 1", "3600.5"])
def test_the_poll_interval_must_be_a_number_of_seconds_from_a_hundredth_to_an_hour(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--poll-interval-s", bad])
    assert exited.value.code == 2
    assert f"--poll-interval-s: must be a number from 0.01 to 3600, not {bad!r}" in capsys.readouterr().err


def test_a_version_activated_or_a_feature_added_is_missing_until_a_job_computes_it(
    tmp_path: Any, make_definition: Any
) -> None:
    """What the follower starts a job for: active versions no planned job computes, whatever made them active
    (a version activated, a feature added); a version no longer active is not asked for again."""
    from jobs.follow import missing_versions
    from registry.definition_store import DefinitionStore

    store = DefinitionStore(tmp_path / "d.db")
    a1 = make_definition(name="a")
    store.register(a1)
    store.register(make_definition(name="b"))
    assert missing_versions(store, []) == ["user.a@1", "user.b@1"]
    base = [PlannedJob("base", ("user.a@1", "user.b@1"), "stream", "g-base")]
    assert missing_versions(store, base) == []
    store.register(
        a1.model_copy(update={"version": 2, "window": a1.window.model_copy(update={"size": a1.window.size * 2})})
    )
    assert missing_versions(store, base) == []  # registered, not active: nothing to compute yet
    store.activate("user", "a", 2)
    store.register(make_definition(name="c"))
    assert missing_versions(store, base) == ["user.a@2", "user.c@1"]
    added = [*base, PlannedJob("add-1", ("user.a@2", "user.c@1"), "version", "g-add-1")]
    assert missing_versions(store, added) == []
    store.activate("user", "a", 1)  # rolled back: v1's job still runs, v2's too
    assert missing_versions(store, added) == []


def test_a_follower_without_a_definition_store_says_so_and_starts_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "absent.db"))
    assert main(["--state-dir", str(tmp_path / "follow")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "absent.db" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "absent.db").exists() and not (tmp_path / "follow").exists()


def test_a_held_key_outlives_one_window_step_by_a_day(make_definition: Any) -> None:
    from sinks.cassandra.job_progress import hold_ttl_s
    from sinks.cassandra.layout import PROGRESS_TTL_S

    NOW_MS = 1_796_534_455_000  # 2026-12-06
    five_minutes = make_definition(window={"kind": "sliding", "size": "1h", "slide": "5m"})
    assert hold_ttl_s(five_minutes, NOW_MS) == PROGRESS_TTL_S + 300
    two_days = make_definition(window={"kind": "tumbling", "size": "2d"}, ttl="30d")
    assert hold_ttl_s(two_days, NOW_MS) == PROGRESS_TTL_S + 2 * 86_400  # a step longer than a day: still a day past it
    session = make_definition(window={"kind": "session", "gap": "30m"})
    assert hold_ttl_s(session, NOW_MS) == PROGRESS_TTL_S


def test_a_second_follower_on_one_state_directory_is_refused(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fcntl

    from registry.definition_store import DefinitionStore

    DefinitionStore(tmp_path / "d.db")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    state = tmp_path / "follow"
    state.mkdir()
    with (state / "follow.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running follower holds it
        assert main(["--state-dir", str(state)]) == 1
    assert capsys.readouterr().err.strip() == f"error: another follower runs on {state}"
    assert not (state / "plan.json").exists()


@pytest.mark.parametrize(
    "job",
    [
        {"name": "add-1", "versions": ["user.a@1"], "progress": "stremm", "group_id": "g"},
        {"name": "add-x", "versions": ["user.a@1"], "progress": "version", "group_id": "g"},
        {"name": "abcd1", "versions": ["user.a@1"], "progress": "version", "group_id": "g"},
        {"name": "base", "versions": "user.a@1", "progress": "stream", "group_id": "g"},
        {"name": "base", "versions": ["user.a@1"], "progress": "stream"},
    ],
)
def test_a_plan_entry_the_follower_cannot_run_is_refused_not_dropped(tmp_path: Any, job: dict[str, Any]) -> None:
    import json

    (tmp_path / "plan.json").write_text(json.dumps({"jobs": [job]}))
    with pytest.raises(FeatureStoreError, match="is not a follower's plan"):
        load_plan(tmp_path)


def test_a_state_directory_the_follower_cannot_use_is_one_error_line(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file in its place ended in a FileExistsError traceback; a plan.json that is a folder in IsADirectoryError."""
    from registry.definition_store import DefinitionStore

    DefinitionStore(tmp_path / "d.db")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    (tmp_path / "a_file").write_text("x")
    assert main(["--state-dir", str(tmp_path / "a_file")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --state-dir {tmp_path / 'a_file'}: cannot use it (") and err.count("\n") == 1, err
    (tmp_path / "state" / "plan.json").mkdir(parents=True)
    assert main(["--state-dir", str(tmp_path / "state")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'state' / 'plan.json'}: cannot read it (") and err.count("\n") == 1


def test_a_stop_asked_for_ends_the_pause_between_polls_at_once(tmp_path: Any) -> None:
    """The follower slept its whole --poll-interval-s (up to an hour) before it saw SIGTERM's flag."""
    import threading
    import time

    from jobs.follow import Follower

    follower = Follower.__new__(Follower)  # only the pause: no store, no jobs
    follower.stop_requested = False
    follower.procs = {}
    threading.Timer(0.2, lambda: setattr(follower, "stop_requested", True)).start()
    started = time.monotonic()
    follower._pause(3600)
    assert time.monotonic() - started < 5


class _FakeJob:
    """A job process: it ends at once (exit 1) when one of its versions is named ``bad``, else runs until stopped."""

    launched: ClassVar[list[str]] = []

    def __init__(self, cmd: list[str], **kwargs: Any) -> None:
        versions = cmd[cmd.index("--versions") + 1]
        _FakeJob.launched.append(versions)
        self.pid = 10_000 + len(_FakeJob.launched)
        self.code: int | None = 1 if "bad" in versions else None
        kwargs["stdout"].write(b"error: topic missing\n" if self.code else b"running\n")

    def poll(self) -> int | None:
        return self.code

    def wait(self, timeout: float | None = None) -> int:
        self.code = -15 if self.code is None else self.code
        return self.code


def _follower(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, store: Any) -> Any:
    import io

    from jobs import follow

    _FakeJob.launched = []
    monkeypatch.setattr(follow.subprocess, "Popen", _FakeJob)
    monkeypatch.setattr(follow, "_signal_group", lambda proc, sig: None)
    monkeypatch.setattr(follow.Follower, "_hold_progress", lambda self, versions: None)
    monkeypatch.setattr(follow, "absolute", lambda settings: type("Env", (), {"to_env": lambda self: {}})())
    follower = follow.Follower.__new__(follow.Follower)
    follower._settings = None  # type: ignore[assignment]  # unused: the hold and the environment are stubbed
    follower._state_dir = tmp_path / "state"
    follower._group_id, follower._parallelism, follower._metrics_port = "g", 1, 9249
    follower._bind_host, follower._out = "127.0.0.1", io.StringIO()
    follower._store, follower.jobs, follower.procs = store, [], {}
    follower._log_start, follower._failed, follower.stop_requested, follower._lock_fd = {}, {}, False, None
    follower._max_jobs, follower._said_error = follow.DEFAULT_MAX_JOBS, None
    return follower


def test_a_version_that_cannot_start_never_takes_later_activations_down_with_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """Every missing version went into one job, the failed ones with the new: once `bad` could not start, each
    later activation was started beside it and ended with it (add-2 [bad, good], add-3 [bad, good, good2])."""
    import threading
    import time

    from registry.definition_store import DefinitionStore

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    follower = _follower(tmp_path, monkeypatch, store)

    def launched(name: str) -> bool:
        return any(f"user.{name}@1" in versions for versions in _FakeJob.launched)

    def activations() -> None:
        """Each activation once the one before it has a job (seen by the follower in a poll of its own, however
        slowly a loaded machine runs it), then stop."""
        deadline = time.monotonic() + 60
        for before, name in (("a", "bad"), ("bad", "good"), ("good", "good2"), ("good2", None)):
            while not launched(before) and time.monotonic() < deadline:
                time.sleep(0.01)
            if name is not None:
                store.register(make_definition(name=name))
        follower.stop_requested = True

    registering = threading.Thread(target=activations)
    registering.start()
    assert follower.run(0.05) == 0
    registering.join(timeout=60)
    assert _FakeJob.launched[0] == "user.a@1"
    assert "user.good@1" in _FakeJob.launched and "user.good2@1" in _FakeJob.launched
    assert all("bad" not in versions or versions == "user.bad@1" for versions in _FakeJob.launched)


def test_the_first_job_ending_is_seen_within_the_poll_not_after_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """The follower looked at its jobs once per --poll-interval-s (up to an hour): a dead first job went unseen."""
    import time

    from registry.definition_store import DefinitionStore

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="bad"))  # the first job ends at once
    follower = _follower(tmp_path, monkeypatch, store)
    started = time.monotonic()
    assert follower.run(3600) == 1
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "jobs",
    [
        [{"name": "add-1", "versions": ["user.a@1"], "progress": "version", "group_id": "g"}],  # no base first
        [
            {"name": "base", "versions": ["user.a@1"], "progress": "stream", "group_id": "g"},
            {"name": "base", "versions": ["user.b@1"], "progress": "stream", "group_id": "h"},
        ],
        [
            {"name": "base", "versions": ["user.a@1"], "progress": "stream", "group_id": "g"},
            {"name": "add-01", "versions": ["user.b@1"], "progress": "version", "group_id": "h"},
        ],
        [  # add-0: its metrics port was base's
            {"name": "base", "versions": ["user.a@1"], "progress": "stream", "group_id": "g"},
            {"name": "add-0", "versions": ["user.b@1"], "progress": "version", "group_id": "h"},
        ],
        [
            {"name": "base", "versions": ["user.a@1"], "progress": "stream", "group_id": "g"},
            {"name": "add-1", "versions": ["user.a@1"], "progress": "version", "group_id": "h"},
        ],
        [{"name": "base", "versions": [], "progress": "stream", "group_id": "g"}],
        [{"name": "base", "versions": ["nonsense"], "progress": "stream", "group_id": "g"}],
        [{"name": "base", "versions": ["user.a@2147483648"], "progress": "stream", "group_id": "g"}],
        [{"name": "base", "versions": ["user.a@v1"], "progress": "stream", "group_id": "g"}],
        [{"name": "base", "versions": ["user.a@01"], "progress": "stream", "group_id": "g"}],
        [{"name": "base", "versions": ["user.a@1"], "progress": "stream", "group_id": 5}],
        [{"name": "base", "versions": ["user.a@1"], "progress": "version", "group_id": "g"}],
    ],
)
def test_a_plan_the_follower_could_start_but_not_run_is_refused(tmp_path: Any, jobs: list[dict[str, Any]]) -> None:
    """Each was accepted: jobs then started and failed, a name twice lost one process from stop(), a version twice
    was computed by two jobs, a group_id of 5 failed in Popen after earlier jobs had started."""
    import json

    (tmp_path / "plan.json").write_text(json.dumps({"jobs": jobs}))
    with pytest.raises(FeatureStoreError, match="is not a follower's plan"):
        load_plan(tmp_path)


@pytest.mark.parametrize("raw", ["", "  "])
def test_an_empty_state_dir_is_a_usage_error(raw: str, capsys: pytest.CaptureFixture[str]) -> None:
    """It was the current folder: the plan, the logs and every checkpoint were written there."""
    with pytest.raises(SystemExit) as ended:
        main(["--state-dir", raw])
    assert ended.value.code == 2 and "--state-dir: must be a folder path" in capsys.readouterr().err


def test_versions_activated_past_max_jobs_get_no_job_and_are_said(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """Each activation that no job computes started one more job (a Flink JVM), without end: registering and
    activating definitions could fork the host out of memory. At most --max-jobs run; the rest wait, said."""
    import threading
    import time

    from registry.definition_store import DefinitionStore

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    follower = _follower(tmp_path, monkeypatch, store)
    follower._max_jobs = 2

    def activations() -> None:
        deadline = time.monotonic() + 60
        for before, name in (("a", "b"), ("b", "c"), ("c", None)):
            while before != "c" and not any(f"user.{before}@1" in v for v in _FakeJob.launched):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            if name is not None:
                store.register(make_definition(name=name))
        while "--max-jobs 2" not in follower._out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        follower.stop_requested = True

    registering = threading.Thread(target=activations)
    registering.start()
    assert follower.run(0.05) == 0
    registering.join(timeout=60)
    assert _FakeJob.launched == ["user.a@1", "user.b@1"]  # the base job and one more: c waits
    said = follower._out.getvalue()
    assert "error: 2 jobs run already (--max-jobs 2): no job for user.c@1; they wait for the next change" in said


@pytest.mark.parametrize("unusable", ["base", "add-1"])
def test_a_planned_job_that_cannot_start_is_one_error_and_starts_none(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, unusable: str
) -> None:
    """A planned job's log that is a folder ended the follower in an IsADirectoryError traceback, after the jobs
    before it had started and said so (`[follow] job base started ...` before the traceback)."""
    from registry.definition_store import DefinitionStore

    follower = _follower(tmp_path, monkeypatch, DefinitionStore(tmp_path / "d.db"))
    follower.jobs = [
        PlannedJob("base", ("user.a@1",), "stream", "g-base"),
        PlannedJob("add-1", ("user.b@1",), "version", "g-add-1"),
    ]
    (tmp_path / "state" / f"{unusable}.log").mkdir(parents=True)
    with pytest.raises(FeatureStoreError, match=f"^cannot start job {unusable}: .*Is a directory"):
        follower.run(0.05)
    assert _FakeJob.launched == [] and follower._out.getvalue() == ""


def test_each_job_logs_flink_into_a_folder_of_its_own(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """A job's restarts and their causes are only in its Flink log, which pyflink keeps in one file for every local
    job of the machine and empties whenever one starts: the follower's second job emptied the first's."""
    from jobs.follow import PlannedJob
    from registry.definition_store import DefinitionStore

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    follower = _follower(tmp_path, monkeypatch, store)
    given: list[str] = []
    fake = _FakeJob

    def recording(cmd: list[str], **kwargs: Any) -> _FakeJob:
        given.append(kwargs["env"]["FLINK_LOG_DIR"])
        return fake(cmd, **kwargs)

    monkeypatch.setattr("jobs.follow.subprocess.Popen", recording)
    for job in (
        PlannedJob("base", ("user.a@1",), "stream", "g-base"),
        PlannedJob("add-1", ("user.b@1",), "version", "g1"),
    ):
        follower._launch(job)
    state = (tmp_path / "state").resolve()
    assert given == [str(state / "base" / "flink-log"), str(state / "add-1" / "flink-log")]
    assert all(Path(folder).is_dir() for folder in given)
