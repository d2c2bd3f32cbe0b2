"""A name or id argument that is not UTF-8 (bytes Python keeps as lone surrogates) is a usage error, exit 2, one
`error:` line: it reached SQLite, which refused it with a traceback (`registry.cli activate`, `training show`,
`link-model`)."""

from __future__ import annotations

import pytest

from registry import cli
from serving.offline import training

NOT_UTF8 = "\udcff"


@pytest.mark.parametrize(
    ("main", "argv", "names"),
    [
        (cli.main, ["activate", "user", NOT_UTF8, "1"], "argument name"),
        (cli.main, ["activate", NOT_UTF8, "a", "1"], "argument entity"),
        (training.main, ["show", "--id", NOT_UTF8], "argument --id"),
        (training.main, ["link-model", "--id", "x", "--model", NOT_UTF8, "--model-version", "1"], "argument --model"),
    ],
)
def test_an_argument_that_is_not_utf8_is_a_usage_error(
    main: object, argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        main(argv)  # type: ignore[operator]
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(f"error: {names}: must be UTF-8 text, not '\\udcff'")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        (
            "serving.offline.statistics",
            ["--since", "1h", "--training-set", NOT_UTF8],
            "argument --training-set: must be",
        ),
        ("sinks.archive", ["--topic", NOT_UTF8, "--once"], "argument --topic: topic '\\udcff' is not a Kafka topic"),
        ("sinks.serving_log", ["--topic", "x" * 250, "--once"], "argument --topic: topic 'xxx"),
    ],
)
def test_more_arguments_that_no_store_takes_are_usage_errors(
    module: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each reached SQLite or the Kafka client, whose refusal was a traceback (found by a CLI fuzzer)."""
    import importlib

    with pytest.raises(SystemExit) as ended:
        importlib.import_module(module).main(argv)
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[-1] and "Traceback" not in err, err
