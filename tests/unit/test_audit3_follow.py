"""The follower (``jobs.follow``, design §3.8) against what its section states: a plan file it cannot read or run is
one ``error:`` line, exit 1, nothing started."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from jobs.follow import load_plan
from registry.core.errors import FeatureStoreError


def test_a_plan_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    """A UnicodeDecodeError traceback."""
    (tmp_path / "plan.json").write_bytes(b'\xff{"jobs": []}')
    with pytest.raises(FeatureStoreError, match="is not a follower's plan"):
        load_plan(tmp_path)


def test_a_plan_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """The follower hung reading a FIFO at the plan's path for as long as nothing wrote to it."""
    os.mkfifo(tmp_path / "plan.json")
    said: list[BaseException] = []

    def load() -> None:
        try:
            load_plan(tmp_path)
        except FeatureStoreError as exc:
            said.append(exc)

    reading = threading.Thread(target=load, daemon=True)
    reading.start()
    reading.join(timeout=10)
    if reading.is_alive():  # let the blocked read end
        with (tmp_path / "plan.json").open("w"):
            pass
        pytest.fail("load_plan waited on a FIFO")
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
