"""A value someone gave, named in an error, is cut past 1,000 characters (``shown``), and a usage error is one line
of at most 4,000 (design §6): these messages wrote it whole (`jobs.backfill "user.<5,000 q>@2"` a 10 KB line
naming it twice, `erasure --entity-type <5,000 q>`, `registry.access audit --since / --feature`, `create-token
--principal`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from jobs.feature_job import version_refs
from registry import access
from registry.access_store import check_team
from registry.audit import stored_instant
from registry.core.arguments import ArgumentParser
from registry.core.catalog import FeatureCatalog
from serving.offline.erasure_targets import _known_type

LONG = "q" * 5_000


@pytest.mark.parametrize(
    "check",
    [
        lambda: version_refs(f"user.{LONG}@2"),
        lambda: version_refs(f"user.txn_count_1h@1,user.{LONG}"),
        lambda: access._feature_target(LONG),
        lambda: stored_instant(LONG),
        lambda: check_team(LONG, "--principal"),
        lambda: _known_type(FeatureCatalog.from_folder(), LONG),
    ],
)
def test_a_long_value_is_named_by_its_start_and_length(check: Callable[[], object]) -> None:
    with pytest.raises((ValueError, argparse.ArgumentTypeError)) as caught:
        check()
    message = str(caught.value)
    assert len(message) < 1_300 and "...(5" in message, message[:200]


def test_a_usage_error_is_one_line_of_at_most_4000_characters(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(raw: str) -> str:
        raise argparse.ArgumentTypeError(f"not {raw}\nsecond line")

    parser = ArgumentParser(prog="p")
    parser.add_argument("--x", type=refuse)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--x", "z" * 10_000])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("p: error: argument --x: not zzz") and len(last) < 4_100, len(last)
    assert "second line" not in err  # past the 4,000 characters kept: not a line of its own
