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
