"""The registry CLI held to what README.md and docs/design.md say of it (plan, apply, definition files)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import registry.plan
from registry import cli
from registry.core.catalog import DEFAULT_FOLDER
from registry.definition_store import DefinitionStore

SHIPPED = DEFAULT_FOLDER / "user_transactions.toml"


def _store_and_folder(tmp_path: Path) -> tuple[Path, Path]:
    """An empty definition store and an empty definitions folder under ``tmp_path``."""
    db = tmp_path / "d.db"
    DefinitionStore(db)
    folder = tmp_path / "defs"
    folder.mkdir()
    return db, folder


def _header_line(text: str, name: str) -> int:
    """The line (1-based) of the ``[[feature]]``/``[[request_feature]]`` header of the entry named ``name``."""
    lines = text.splitlines()
    at = lines.index(f'name = "{name}"')
    return max(i for i in range(at) if lines[i].startswith("[[")) + 1


def test_cli_apply_plans_the_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`apply` planned the folder twice (once for its printout, once inside `apply`): the same output, one plan."""
    real = registry.plan.plan_all
    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(registry.plan, "plan_all", counting)
    monkeypatch.setattr(cli, "plan_all", counting, raising=False)
    db = str(tmp_path / "d.db")
    assert cli.main(["--db", db, "apply"]) == 0
    assert len(calls) == 1
    assert capsys.readouterr().out == (
        "created          user.txn_amount_sum_1h v1 (active v1)\n"
        "created          user.txn_count_1h v1 (active v1)\n"
        "created          request feature user.amount_vs_mean_1h v1 (udfs.request:amount_vs_mean_1h)\n"
    )
    calls.clear()
    assert cli.main(["--db", db, "apply"]) == 0
    assert len(calls) == 1
    assert capsys.readouterr().out == (
        "unchanged        user.txn_amount_sum_1h v1 (active v1)\n"
        "unchanged        user.txn_count_1h v1 (active v1)\n"
        "unchanged        request feature user.amount_vs_mean_1h v1 (udfs.request:amount_vs_mean_1h)\n"
    )


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_version_defined_in_two_files_names_both_files_and_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """ "defined more than once in the folder" named neither file: the one error line names both, with lines."""
    db, folder = _store_and_folder(tmp_path)
    text = SHIPPED.read_text()
    shutil.copy(SHIPPED, folder / "a.toml")
    other = text.split("# A request-time feature")[0].replace('ttl = "2h"', 'ttl = "3h"')
    (folder / "b.toml").write_text("# another copy, another TTL\n\n" + other)
    assert cli.main(["--db", str(db), command, str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    line = _header_line(text, "txn_count_1h")
    assert (
        f"user.txn_count_1h v1: defined more than once in the folder ({folder / 'a.toml'}:{line} and "
        f"{folder / 'b.toml'}:{line + 2}), with different transform or TTL; keep one definition per version"
    ) in err
    assert "user.txn_amount_sum_1h v1: defined more than once in the folder (" in err
    assert DefinitionStore(db).change_seq() == 0


def test_a_version_defined_twice_in_one_file_names_both_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, folder = _store_and_folder(tmp_path)
    text = SHIPPED.read_text()
    twice = text.replace(
        "# A request-time feature",
        '[[feature]]\nname = "txn_count_1h"\nversion = 1\ndescription = "again"\naggregation = { function = "count" }\n\n'
        "# A request-time feature",
    )
    (folder / "x.toml").write_text(twice)
    assert cli.main(["--db", str(db), "plan", str(folder)]) == 1
    err = capsys.readouterr().err
    first, second = _header_line(text, "txn_count_1h"), _header_line(text, "amount_vs_mean_1h") - 2
    path = folder / "x.toml"
    assert (
        f"user.txn_count_1h v1: defined more than once in the folder ({path}:{first} and {path}:{second}), "
        "with different metadata; keep one definition per version"
    ) in err


def test_a_request_feature_defined_in_two_files_names_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, folder = _store_and_folder(tmp_path)
    text = SHIPPED.read_text()
    shutil.copy(SHIPPED, folder / "a.toml")
    request = '[defaults]\nentity = "user"\nowner = "risk-team"\n\n' + text[text.index("[[request_feature]]") :]
    (folder / "b.toml").write_text(
        request.replace('value_type = "double"\ndescription', 'value_type = "long"\ndescription')
    )
    assert cli.main(["--db", str(db), "plan", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        f"request feature user.amount_vs_mean_1h v1: defined more than once in the folder "
        f"({folder / 'a.toml'}:{_header_line(text, 'amount_vs_mean_1h')} and {folder / 'b.toml'}:5), with a different "
        "function, inputs, request fields or type; keep one definition per version"
    ) in err


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ("ttl = 5\n", "feature a: ttl: duration must be text like '5m' or '1h', got 5"),
        ('colour = "red"\n', "feature a: colour: Extra inputs are not permitted"),
        ("version = 2147483648\n", "feature a: version: Input should be less than or equal to 2147483647"),
        ('ttl = "630720001s"\n', "feature a: `ttl` is at most 7300d (20 years, the longest TTL"),
        ('ttl = "0s"\nfreshness_slo = "0s"\n', "feature a: `ttl` and `freshness_slo` must be positive"),
        ('window = { size = "7m" }\n', "feature a: window: a sliding window's `size` must be a whole"),
    ],
)
def test_an_invalid_feature_in_a_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], feature: str, message: str
) -> None:
    """A field of the wrong type, an unknown field, a value out of its bounds: one `error:` line naming the file,
    the feature and the field, exit 1 (it was pydantic's four-line dump, with a URL and the input's repr)."""
    body = feature if "version" in feature else "version = 1\n" + feature
    folder = tmp_path / "defs"
    folder.mkdir()
    defaults = SHIPPED.read_text().split("\n[[feature]]")[0] + "\n"
    (folder / "x.toml").write_text(f'{defaults}[[feature]]\nname = "a"\n{body}aggregation = {{ function = "count" }}\n')
    db = tmp_path / "d.db"
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'x.toml'}: {message}") and err.count("\n") == 1, err
    assert not db.exists() or DefinitionStore(db).change_seq() == 0


def test_an_invalid_request_feature_in_a_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    text = SHIPPED.read_text().replace('function = "udfs.request', 'colour = "red"\nfunction = "udfs.request')
    (folder / "x.toml").write_text(text)
    assert cli.main(["--db", str(tmp_path / "d.db"), "apply", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'x.toml'}: request feature amount_vs_mean_1h: colour: Extra inputs")
    assert err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("", "model: Field required; features: Field required"),
        ('model = "fraud"\nfeatures = []\n', "features: Tuple should have at least 1 item after validation, not 0"),
        ('model = "fraud"\ncolour = "red"\nfeatures = []\n', "colour: Extra inputs are not permitted"),
    ],
)
def test_a_gate_model_file_with_bad_fields_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, message: str
) -> None:
    db = str(tmp_path / "d.db")
    assert cli.main(["--db", db, "apply"]) == 0
    capsys.readouterr()
    (tmp_path / "m.toml").write_text(model)
    assert cli.main(["--db", db, "gate", str(tmp_path / "m.toml"), "--no-schema-check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'm.toml'}: not a valid model file: ") and err.count("\n") == 1, err
    assert message in err


def test_cli_activate_all_refuses_two_versions_of_one_feature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`activate-all user.f@2 user.f@1` printed "v2 is active" and then "v1 is active" (the last won): which one
    serves is not for argument order to decide. Refused, nothing moved."""
    db = tmp_path / "d.db"
    assert cli.main(["--db", str(db), "apply"]) == 0
    store = DefinitionStore(db)
    v1 = store.catalog().get("user", "txn_count_1h", 1)
    store.register(v1.model_copy(update={"version": 2, "ttl": v1.ttl * 2}))
    seq = store.change_seq()
    capsys.readouterr()
    assert cli.main(["--db", str(db), "activate-all", "user.txn_count_1h@2", "user.txn_count_1h@1"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: user.txn_count_1h is named twice, at v2 and v1: activate one version per feature\n"
    assert store.change_seq() == seq
    assert cli.main(["--db", str(db), "activate-all", "user.txn_count_1h@2", "user.txn_count_1h@2"]) == 0
    assert capsys.readouterr().out == "user.txn_count_1h: v2 is active\n"
    assert store.catalog().get("user", "txn_count_1h").version == 2


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def amount(:\n", "cannot import contract_fn_syntax:amount: SyntaxError: "),
        ("raise RuntimeError('boom')\n", "cannot import contract_fn_raises:amount: RuntimeError: boom"),
    ],
    ids=["syntax", "raises"],
)
def test_a_request_feature_whose_module_fails_to_import_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], source: str, message: str
) -> None:
    """A function's module with a syntax error, or one that raises on import, was a traceback from `plan`/`apply`
    (only ImportError and AttributeError were caught): the deploying code cannot run it, named in one line."""
    module = "contract_fn_syntax" if "def" in source else "contract_fn_raises"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "x.toml").write_text(SHIPPED.read_text().replace("udfs.request:amount_vs_mean_1h", f"{module}:amount"))
    db = tmp_path / "d.db"
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert DefinitionStore(db).change_seq() == 0


def test_a_request_feature_repeated_identically_is_planned_and_applied_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An identical repeat is no conflict (as for stored features), and one change: `plan` listed it twice
    ("4 change(s)") and `apply` printed it twice."""
    db, folder = _store_and_folder(tmp_path)
    text = SHIPPED.read_text()
    shutil.copy(SHIPPED, folder / "a.toml")
    defaults = '[defaults]\nentity = "user"\nowner = "risk-team"\ntags = ["risk", "payments"]\n\n'
    (folder / "b.toml").write_text(defaults + text[text.index("[[request_feature]]") :])
    assert cli.main(["--db", str(db), "plan", str(folder)]) == 2
    out = capsys.readouterr().out
    assert out.count("+ request feature user.amount_vs_mean_1h v1") == 1 and out.endswith("3 change(s)\n")
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    assert capsys.readouterr().out.count("request feature user.amount_vs_mean_1h v1") == 1


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_definitions_file_nested_too_deeply_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """TOML nested thousands of levels deep was a RecursionError traceback from Python's TOML parser."""
    db, folder = _store_and_folder(tmp_path)
    (folder / "x.toml").write_text("feature = " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert cli.main(["--db", str(db), command, str(folder)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {folder / 'x.toml'}: cannot read definitions: nested too deeply\n"


def test_a_gate_model_file_nested_too_deeply_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "d.db")
    assert cli.main(["--db", db, "apply"]) == 0
    capsys.readouterr()
    (tmp_path / "m.toml").write_text("model = " + "{a = " * 20_000 + "1" + "}" * 20_000 + "\n")
    assert cli.main(["--db", db, "gate", str(tmp_path / "m.toml"), "--no-schema-check"]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'm.toml'}: not a valid model file: nested too deeply\n"


class _Answer:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self) -> bytes:
        return self.body


@pytest.mark.parametrize(
    "body",
    [b"<html>proxy error</html>", b'{"subject": "s"}', b'{"schema": "{not json"}', b"[1]"],
    ids=["html", "no-schema", "schema-not-json", "not-an-object"],
)
def test_a_schema_registry_answer_that_is_not_a_schema_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], body: bytes
) -> None:
    """`gate` with the schema check: an answer that is not the registry's JSON (a proxy's HTML page, JSON without
    `schema`, a schema that is not JSON) was a JSONDecodeError or KeyError traceback."""
    db = str(tmp_path / "d.db")
    assert cli.main(["--db", db, "apply"]) == 0
    capsys.readouterr()
    (tmp_path / "m.toml").write_text(
        'model = "fraud"\nfeatures = [{ entity = "user", name = "txn_count_1h", version = 1 }]\n'
    )
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: _Answer(body))
    code = cli.main(["--db", db, "gate", str(tmp_path / "m.toml"), "--schema-registry", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: schema registry http://127.0.0.1:9: ") and err.count("\n") == 1, err
    assert "card_transactions-value" in err


@pytest.mark.parametrize(
    ("table", "label"),
    [("feature", "feature #1 ('a\\nb')"), ("request_feature", "request feature #1 ('a\\nb')")],
)
def test_an_invalid_name_is_quoted_in_the_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, label: str
) -> None:
    """The entry's `name` went into the message as written: a name with a line break broke the one line."""
    db, folder = _store_and_folder(tmp_path)
    (folder / "x.toml").write_text(f'[[{table}]]\nname = "a\\nb"\nversion = 1\n')
    assert cli.main(["--db", str(db), "plan", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'x.toml'}: {label}: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("{tmp}/" + "x" * 300, "{tmp}/" + "x" * 300 + ": cannot list definition files: File name too long"),
        ("{tmp}/a\x00b", "'{tmp}/a\\x00b': not a folder of definition files (*.toml)"),
        ("{tmp}/a\nb", "'{tmp}/a\\nb': not a folder of definition files (*.toml)"),
        ("{tmp}/none", "{tmp}/none: not a folder of definition files (*.toml)"),
        ("{tmp}/file.toml", "{tmp}/file.toml: not a folder of definition files (*.toml)"),
    ],
    ids=["long", "nul", "newline", "missing", "file"],
)
def test_a_folder_argument_that_is_not_a_folder_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, folder: str, message: str
) -> None:
    """A name too long was an OSError traceback, a NUL byte a ValueError one, and a missing folder or a file
    "no *.toml feature definitions in ..." (a line break in the name split the line)."""
    db = tmp_path / "d.db"
    DefinitionStore(db)
    shutil.copy(SHIPPED, tmp_path / "file.toml")
    assert cli.main(["--db", str(db), command, folder.format(tmp=tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: {message.format(tmp=tmp_path)}\n"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("m\x00.toml", "error: 'm\\x00.toml': not a valid model file: embedded null byte\n"),
        ("m\n.toml", "error: 'm\\n.toml': not a valid model file: [Errno 2] No such file or directory: 'm\\n.toml'\n"),
    ],
    ids=["nul", "newline"],
)
def test_a_gate_model_path_that_cannot_be_a_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, message: str
) -> None:
    """A NUL byte in the path was a ValueError traceback; a line break in it split the error line."""
    db = str(tmp_path / "d.db")
    assert cli.main(["--db", db, "apply"]) == 0
    capsys.readouterr()
    assert cli.main(["--db", db, "gate", model, "--no-schema-check"]) == 1
    assert capsys.readouterr().err == message
