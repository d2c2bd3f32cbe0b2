"""The follower (``jobs.follow``, design §3.8) against what its section states: a plan file it cannot read or run is
one ``error:`` line, exit 1, nothing started."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobs.follow import load_plan
from registry.core.errors import FeatureStoreError


def test_a_plan_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    """A UnicodeDecodeError traceback."""
    (tmp_path / "plan.json").write_bytes(b'\xff{"jobs": []}')
    with pytest.raises(FeatureStoreError, match="is not a follower's plan"):
        load_plan(tmp_path)


def _raised_within(
    call: Callable[[], object], timeout_s: float, unblock: Callable[[], None], waited: str
) -> list[BaseException]:
    """Run ``call`` on a thread; the store errors it raised, or ``unblock`` it and fail if it still waits."""
    said: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except FeatureStoreError as exc:
            said.append(exc)

    running = threading.Thread(target=target, daemon=True)
    running.start()
    running.join(timeout=timeout_s)
    if running.is_alive():  # let the blocked call end
        unblock()
        pytest.fail(waited)
    return said


def test_a_plan_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """The follower hung reading a FIFO at the plan's path for as long as nothing wrote to it."""
    os.mkfifo(tmp_path / "plan.json")

    def unblock() -> None:
        with (tmp_path / "plan.json").open("w"):
            pass

    said = _raised_within(lambda: load_plan(tmp_path), 10, unblock, "load_plan waited on a FIFO")
    assert len(said) == 1 and "cannot read it (not a regular file" in str(said[0])


@pytest.mark.parametrize(
    "text",
    [
        '{"jobs": [{"name": 5, "versions": ["user.a@1"], "progress": "stream", "group_id": "g"}]}',
        '{"jobs": [{"name": null, "versions": ["user.a@1"], "progress": "stream", "group_id": "g"}]}',
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["name-a-number", "name-null", "nested-too-deeply"],
)
def test_a_plan_of_the_wrong_shape_is_refused_in_one_line(text: str, tmp_path: Path) -> None:
    """An AttributeError traceback (a name that is no text) and a RecursionError traceback."""
    (tmp_path / "plan.json").write_text(text)
    with pytest.raises(FeatureStoreError, match="is not a follower's plan"):
        load_plan(tmp_path)


def test_an_added_job_whose_fork_is_refused_is_said_as_an_added_job_that_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """Design §3.8: a process that cannot be started at all is handled as an added job that ended, whose line ends
    `its versions wait for the next change of the definitions: <versions>`; it said `... next change: ['user.b@1']`
    (a Python list). The follower and its first job go on."""
    import time

    from jobs import follow
    from registry.definition_store import DefinitionStore
    from tests.unit.test_version_progress import _FakeJob, _follower

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    follower = _follower(tmp_path, monkeypatch, store)

    def popen(cmd: list[str], **kwargs: Any) -> _FakeJob:
        if "user.b@1" in cmd:
            raise OSError(12, "Cannot allocate memory")
        return _FakeJob(cmd, **kwargs)

    monkeypatch.setattr(follow.subprocess, "Popen", popen)

    def activation() -> None:
        deadline = time.monotonic() + 60
        while not _FakeJob.launched and time.monotonic() < deadline:
            time.sleep(0.01)
        store.register(make_definition(name="b"))
        while "cannot start job add-1" not in follower._out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        follower.stop_requested = True

    registering = threading.Thread(target=activation)
    registering.start()
    assert follower.run(0.05) == 0
    registering.join(timeout=60)
    said = follower._out.getvalue()
    assert "[follow] error: cannot start job add-1 ([Errno 12] Cannot allocate memory)" in said
    assert "; its versions wait for the next change of the definitions: user.b@1\n" in said
    assert [j.name for j in follower.jobs] == ["base"] and _FakeJob.launched == ["user.a@1"]


def test_a_plan_of_more_jobs_than_max_jobs_starts_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Design §3.8: at most --max-jobs jobs run, the first included. Restarted with a smaller --max-jobs than its plan
    holds, the follower started every planned job (three Flink JVMs under --max-jobs 2)."""
    from jobs.follow import PlannedJob
    from registry.definition_store import DefinitionStore
    from tests.unit.test_version_progress import _FakeJob, _follower

    follower = _follower(tmp_path, monkeypatch, DefinitionStore(tmp_path / "d.db"))
    follower._max_jobs = 2
    follower.jobs = [
        PlannedJob("base", ("user.a@1",), "stream", "g-base"),
        PlannedJob("add-1", ("user.b@1",), "version", "g-add-1"),
        PlannedJob("add-2", ("user.c@1",), "version", "g-add-2"),
    ]
    stopping = threading.Timer(5, lambda: setattr(follower, "stop_requested", True))  # before the fix: it ran them
    stopping.start()
    try:
        with pytest.raises(FeatureStoreError, match=r"3 jobs, more than --max-jobs 2"):
            follower.run(0.05)
    finally:
        stopping.cancel()
    assert _FakeJob.launched == [] and follower._out.getvalue() == ""


def test_a_plan_the_follower_cannot_write_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """A plan it could not write when adding a job (a folder where its temporary file goes; the state directory
    removed, the disk full) ended the follower in an IsADirectoryError traceback, not its one `error:` line."""
    import time

    from registry.definition_store import DefinitionStore
    from tests.unit.test_version_progress import _FakeJob, _follower

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    follower = _follower(tmp_path, monkeypatch, store)

    def activation() -> None:
        deadline = time.monotonic() + 60
        while not _FakeJob.launched and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "state" / "plan.json.partial").mkdir()
        store.register(make_definition(name="b"))

    threading.Thread(target=activation).start()
    stopping = threading.Timer(30, lambda: setattr(follower, "stop_requested", True))
    stopping.start()
    try:
        with pytest.raises(FeatureStoreError, match=r"plan\.json: cannot write it \("):
            follower.run(0.05)
    finally:
        stopping.cancel()


def test_a_job_that_ended_with_its_log_gone_is_still_one_error_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_definition: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first job ending, its log removed meanwhile (the state directory cleaned up under a running follower),
    ended the follower in a FileNotFoundError traceback instead of `error: job base ended (exit <code>): ...`."""
    from jobs import follow
    from registry.definition_store import DefinitionStore
    from tests.unit.test_version_progress import _FakeJob, _follower

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="bad"))  # the first job ends at once
    follower = _follower(tmp_path, monkeypatch, store)

    def popen(cmd: list[str], **kwargs: Any) -> _FakeJob:
        job = _FakeJob(cmd, **kwargs)
        (tmp_path / "state" / "base.log").unlink()
        return job

    monkeypatch.setattr(follow.subprocess, "Popen", popen)
    assert follower.run(0.05) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: job base ended (exit 1): its log cannot be read (") and err.count("\n") == 1


def test_a_version_whose_job_ended_stays_apart_when_cassandra_refuses_a_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """Design §3.8: versions whose job ended get a job of their own, versions activated meanwhile another one, so a
    version that cannot start never takes them down with it. With Cassandra down at the change that brought the
    new version (the hold refused, tried again at the next poll), the ended version's mark was already dropped: the
    next poll started both in one job (`user.bad@1,user.good@1`), which ended with `bad`."""
    import time

    from jobs import follow
    from registry.core.errors import StoreUnavailableError
    from registry.definition_store import DefinitionStore
    from tests.unit.test_version_progress import _FakeJob, _follower

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    follower = _follower(tmp_path, monkeypatch, store)
    refusals = [StoreUnavailableError("Cassandra at 127.0.0.1:9042 unavailable")]

    def hold(self: Any, versions: list[str]) -> None:
        if "user.good@1" in versions and refusals:
            raise refusals.pop()

    monkeypatch.setattr(follow.Follower, "_hold_progress", hold)

    def activations() -> None:
        deadline = time.monotonic() + 60
        while not _FakeJob.launched and time.monotonic() < deadline:
            time.sleep(0.01)
        store.register(make_definition(name="bad"))  # its job ends at once
        while "job add-1 ended" not in follower._out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        store.register(make_definition(name="good"))
        while not any("good" in v for v in _FakeJob.launched) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the retried version's job, started at the same poll
        follower.stop_requested = True

    registering = threading.Thread(target=activations)
    registering.start()
    assert follower.run(0.05) == 0
    registering.join(timeout=60)
    assert "cannot start a job for" in follower._out.getvalue()
    assert "user.good@1" in _FakeJob.launched
    assert all(versions in ("user.a@1", "user.bad@1", "user.good@1") for versions in _FakeJob.launched)


def test_an_outage_is_said_once_not_at_every_poll_and_again_after_it_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """Design §3.8: while Cassandra refuses the hold the follower says `cannot start a job for <versions> yet` and
    tries again at its next poll. It said that line at every poll (about once a second for a whole outage); now once
    an outage, and again for an outage after the versions started."""
    import time

    from jobs import follow
    from registry.core.errors import StoreUnavailableError
    from registry.definition_store import DefinitionStore
    from tests.unit.test_version_progress import _FakeJob, _follower

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    follower = _follower(tmp_path, monkeypatch, store)
    down = threading.Event()
    refused = [0]

    def hold(self: Any, versions: list[str]) -> None:
        if down.is_set():
            refused[0] += 1
            raise StoreUnavailableError("Cassandra at 127.0.0.1:9042 unavailable")

    monkeypatch.setattr(follow.Follower, "_hold_progress", hold)

    def wait_for(done: Any) -> None:
        deadline = time.monotonic() + 60
        while not done() and time.monotonic() < deadline:
            time.sleep(0.01)

    def outages() -> None:
        wait_for(lambda: _FakeJob.launched)
        for name in ("b", "c"):  # two outages, each over many polls, each cleared by a started job
            down.set()
            store.register(make_definition(name=name))
            wait_for(lambda at=refused[0] + 10: refused[0] >= at)
            down.clear()
            wait_for(lambda name=name: any(name in versions for versions in _FakeJob.launched))
        follower.stop_requested = True

    registering = threading.Thread(target=outages)
    registering.start()
    assert follower.run(0.01) == 0
    registering.join(timeout=60)
    said = [line for line in follower._out.getvalue().splitlines() if "cannot start a job for" in line]
    assert refused[0] >= 20
    assert said == [
        "[follow] error: cannot start a job for user.b@1 yet: Cassandra at 127.0.0.1:9042 unavailable",
        "[follow] error: cannot start a job for user.c@1 yet: Cassandra at 127.0.0.1:9042 unavailable",
    ]


def test_a_version_refused_at_max_jobs_is_not_grouped_with_versions_whose_job_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """Design §3.8: versions activated past --max-jobs are tried again at the next change, and versions whose job
    ended go in a job of their own, so one that cannot start never takes the others down. A version refused at
    --max-jobs was marked as one whose job ended: once slots were free it was started with them (`c,x,y`)."""
    import time

    from registry.definition_store import DefinitionStore
    from tests.unit.test_version_progress import _FakeJob, _follower

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    follower = _follower(tmp_path, monkeypatch, store)
    follower._max_jobs = 4
    deadline = time.monotonic() + 60

    def until(done: Callable[[], bool]) -> None:
        while not done() and time.monotonic() < deadline:
            time.sleep(0.01)

    def steps() -> None:
        for started, name in enumerate(("x", "y", "z"), start=1):
            until(lambda started=started: len(_FakeJob.launched) >= started)  # type: ignore[misc]
            store.register(make_definition(name=name))
        until(lambda: len(_FakeJob.launched) == 4)
        store.register(make_definition(name="c"))  # past --max-jobs
        until(lambda: "--max-jobs 4" in follower._out.getvalue())
        for job in ("add-1", "add-2"):  # x's and y's jobs end
            follower.procs[job].code = 1
        until(lambda: "job add-2 ended" in follower._out.getvalue() and "job add-1 ended" in follower._out.getvalue())
        store.register(make_definition(name="d"))
        until(lambda: any("user.d@1" in v for v in _FakeJob.launched))
        time.sleep(0.3)
        follower.stop_requested = True

    stepping = threading.Thread(target=steps)
    stepping.start()
    assert follower.run(0.05) == 0
    stepping.join(timeout=60)
    assert any("user.c@1" in v for v in _FakeJob.launched), _FakeJob.launched
    assert not any("user.c@1" in v and "user.x@1" in v for v in _FakeJob.launched), _FakeJob.launched


@pytest.mark.parametrize("group", ["   ", "a\nb", "a\x00b", "\ud800"], ids=["blank", "newline", "nul", "surrogate"])
def test_a_plan_whose_group_id_is_no_group_name_is_refused(tmp_path: Path, group: str) -> None:
    """Design §3.8: "a consumer group that is not a name" is one `error:` line, nothing started. Only an empty one
    was refused: a blank one started the job, which failed on its own --group-id check; NUL and a lone surrogate
    (legal JSON) raised inside Popen, a traceback after `base` had started."""
    import json

    plan = {"jobs": [{"name": "base", "versions": ["user.a@1"], "progress": "stream", "group_id": group}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(FeatureStoreError, match="group_id must be a consumer group's name"):
        load_plan(tmp_path)


@pytest.mark.parametrize("where", ["follow.lock", "base.log"])
def test_a_fifo_at_the_lock_or_a_jobs_log_is_refused_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_definition: Any, where: str
) -> None:
    """A FIFO at `follow.lock` or at a planned job's log held the follower in `open` for good, waiting for a
    reader, and SIGTERM could not end it (Python retries the call): one `error:` line now."""
    from jobs.follow import PlannedJob
    from registry.definition_store import DefinitionStore
    from tests.unit.test_version_progress import _FakeJob, _follower

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    follower = _follower(tmp_path, monkeypatch, store)
    follower.jobs = [PlannedJob("base", ("user.a@1",), "stream", "g-base")]
    follower._state_dir.mkdir(parents=True)
    os.mkfifo(follower._state_dir / where)

    def unblock() -> None:
        os.open(follower._state_dir / where, os.O_RDONLY | os.O_NONBLOCK)
        follower.stop_requested = True

    said = _raised_within(lambda: follower.run(0.05), 20, unblock, f"the follower waited on a FIFO at {where}")
    assert len(said) == 1 and str(said[0]).startswith(
        "--state-dir " if where == "follow.lock" else "cannot start job base: "
    ), said
    assert _FakeJob.launched == []


def test_versions_whose_job_ended_stay_apart_from_new_ones_across_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_definition: Any
) -> None:
    """Design §3.8: a version whose job ended gets a job of its own, apart from versions activated meanwhile. The
    follower kept which versions had failed in memory only: restarted, it started them in one job with a version
    activated while it was down, which then failed with them at every change. The plan keeps them now."""
    import time

    from jobs.follow import load_failed
    from registry.definition_store import DefinitionStore
    from tests.unit.test_version_progress import _FakeJob, _follower

    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(name="a"))
    first = _follower(tmp_path, monkeypatch, store)

    def bad_then_stop(follower: Any) -> None:
        deadline = time.monotonic() + 60
        while "user.a@1" not in _FakeJob.launched and time.monotonic() < deadline:
            time.sleep(0.01)
        store.register(make_definition(name="bad"))
        while "ended" not in follower._out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        follower.stop_requested = True

    registering = threading.Thread(target=bad_then_stop, args=(first,))
    registering.start()
    assert first.run(0.05) == 0
    registering.join(timeout=60)
    assert load_failed(tmp_path / "state") == ["user.bad@1"]
    store.register(make_definition(name="good"))  # activated while the follower is down
    again = _follower(tmp_path, monkeypatch, store)
    again.jobs = first.jobs
    again._failed = dict.fromkeys(load_failed(tmp_path / "state"), -1)  # what Follower.__init__ loads
    stopping = threading.Timer(3, lambda: setattr(again, "stop_requested", True))
    stopping.start()
    try:
        assert again.run(0.05) == 0
    finally:
        stopping.cancel()
    assert "user.good@1" in _FakeJob.launched  # its own job
    assert all("bad" not in versions or versions == "user.bad@1" for versions in _FakeJob.launched), _FakeJob.launched


def test_a_state_dir_in_a_symlink_loop_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RuntimeError traceback (``Path.resolve`` on Python 3.11)."""
    from jobs.follow import main

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    assert main(["--state-dir", str(tmp_path / "a"), "--metrics-port", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --state-dir {tmp_path / 'a'}: cannot use it"), err


def test_the_state_dir_defaults_to_the_stacks_state_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was ``.state/follow`` under the folder it ran in: FS_STATE_DIR (the compose image's volume) was not
    followed, and a follower started from another folder began a new plan beside the old one's checkpoints."""
    from jobs.follow import main

    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "follow").symlink_to(tmp_path / "state" / "follow")  # unusable: said, with its path
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    monkeypatch.chdir(tmp_path)
    assert main(["--metrics-port", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --state-dir {tmp_path / 'state' / 'follow'}: cannot use it"), (
        err
    )


def test_a_plan_left_in_the_old_default_folder_is_named_not_started_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the default followed FS_STATE_DIR it was ``.state/follow`` under the folder run in: a follower
    restarted after the change would find no plan in the new default and start every job again from scratch."""
    from jobs.follow import main

    (tmp_path / ".state" / "follow").mkdir(parents=True)
    (tmp_path / ".state" / "follow" / "plan.json").write_text("{}")
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    monkeypatch.chdir(tmp_path)
    assert main(["--metrics-port", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: a follower's plan is in {tmp_path / '.state' / 'follow'} (the default before it was "
        f"<FS_STATE_DIR>/follow), not in {tmp_path / 'state' / 'follow'}: give --state-dir "
        f"{tmp_path / '.state' / 'follow'}, or move that folder there (or --state-dir {tmp_path / 'state' / 'follow'} "
        "to start anew)"
    ]
