"""README "The stream job": options are checked before anything connects (exit 2, one line naming the option);
``--versions`` takes ``entity.name@version`` references separated by commas. A reference without its entity or
version, or with spaces, is not one: refused by argparse, not looked up in the definitions (exit 1)."""

from __future__ import annotations

import pytest

from jobs import feature_job
from registry.core.errors import SettingsError


@pytest.mark.parametrize(
    "versions",
    ["user.txn_count_1h", "txn_count_1h@1", "user.txn_count_1h@", "user.a@1, user.b@1", "user.a@x", "user.a@1,b"],
)
def test_versions_that_are_not_entity_name_at_version_are_a_usage_error(
    versions: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        feature_job.main(["--versions", versions])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python -m jobs.feature_job: error: argument --versions: "), err


def test_well_formed_versions_pass_the_option_check() -> None:
    assert feature_job.version_refs("user.a@1,user.b@v2") == "user.a@1,user.b@v2"


def test_a_python_mode_from_the_environment_is_checked_before_anything_connects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """``FS_PYTHON_MODE`` is the default of ``--python-mode``: argparse checks the choices of a given option only,
    so a bad value from the environment reached the mini-cluster's start, after the Kafka and registry probes."""
    from registry.core.errors import SettingsError

    monkeypatch.setenv("FS_PYTHON_MODE", "threads")
    with pytest.raises(SettingsError, match="FS_PYTHON_MODE must be process or thread, not 'threads'"):
        feature_job.main([])


def test_an_empty_python_mode_is_refused_not_taken_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """README: a variable that is set is checked even when empty: FS_PYTHON_MODE="" is not the default mode."""

    monkeypatch.setenv("FS_PYTHON_MODE", "")
    with pytest.raises(SettingsError, match="FS_PYTHON_MODE must be process or thread, not ''"):
        feature_job.main(["--bounded"])
