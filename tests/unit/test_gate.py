"""The deployment gate refuses models whose pinned features are missing, changed or deprecated."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from registry import cli
from registry.core.catalog import FeatureCatalog, load_folder
from registry.core.errors import DefinitionError
from registry.definition_store import DefinitionStore
from registry.gate import Guardrails, ModelManifest, PinnedFeature, ServedHealth, check_model, load_model
from registry.plan import apply

TODAY = date(2026, 11, 21)


@pytest.fixture
def store(tmp_path: Path) -> DefinitionStore:
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    return store


def _model(*pins: PinnedFeature) -> ModelManifest:
    return ModelManifest(model="fraud", features=pins)


def _problems(catalog: FeatureCatalog, *pins: PinnedFeature) -> list[str]:
    return check_model(_model(*pins), catalog, None, today=TODAY)


def test_a_model_pinned_to_what_serves_passes(store: DefinitionStore) -> None:
    count = store.catalog().get("user", "txn_count_1h")
    pin = PinnedFeature(
        entity="user", name="txn_count_1h", version=1, value_type="long", identity_hash=count.identity_hash
    )
    assert _problems(store.catalog(), pin) == []


def test_missing_feature_or_version_is_refused(store: DefinitionStore) -> None:
    problems = _problems(
        store.catalog(),
        PinnedFeature(entity="user", name="txn_count_7d", version=1),
        PinnedFeature(entity="user", name="txn_count_1h", version=3),
    )
    assert problems == ["user.txn_count_7d@v1: not registered", "user.txn_count_1h@v3: not registered"]


def test_changed_type_transform_or_serving_version_is_refused(store: DefinitionStore) -> None:
    count = store.catalog().get("user", "txn_count_1h")
    assert _problems(
        store.catalog(), PinnedFeature(entity="user", name="txn_count_1h", version=1, value_type="double")
    ) == ["user.txn_count_1h@v1: trained on double, registered as long"]
    stale_hash = PinnedFeature(entity="user", name="txn_count_1h", version=1, identity_hash="0000000000000000")
    assert "transform/TTL changed since training" in _problems(store.catalog(), stale_hash)[0]
    store.register(count.model_copy(update={"version": 2, "ttl": timedelta(hours=6)}), activate=True)
    assert _problems(store.catalog(), PinnedFeature(entity="user", name="txn_count_1h", version=1)) == [
        "user.txn_count_1h@v1: v2 serves now, with a different transform; retrain on v2 or activate v1"
    ]


def test_deprecated_past_its_date_is_refused(store: DefinitionStore) -> None:
    count = store.catalog().get("user", "txn_count_1h")
    pin = PinnedFeature(entity="user", name="txn_count_1h", version=1)
    store.register(count.model_copy(update={"status": "deprecated", "deprecated_after": TODAY + timedelta(days=30)}))
    assert _problems(store.catalog(), pin) == []  # deprecated, but still within its date
    store.register(count.model_copy(update={"status": "deprecated", "deprecated_after": TODAY - timedelta(days=1)}))
    assert _problems(store.catalog(), pin) == ["user.txn_count_1h@v1: deprecated since 2026-11-20"]


def test_a_date_past_its_deprecation_refuses_whatever_the_status(store: DefinitionStore) -> None:
    """Only a version whose status said `deprecated` was refused: an active one past its `deprecated_after` passed
    (design §9: refused when "deprecated past their date (`deprecated_after` before today's date in UTC)")."""
    count = store.catalog().get("user", "txn_count_1h")
    pin = PinnedFeature(entity="user", name="txn_count_1h", version=1)
    store.register(count.model_copy(update={"deprecated_after": TODAY - timedelta(days=1)}))
    assert store.catalog().get("user", "txn_count_1h").status != "deprecated"
    assert _problems(store.catalog(), pin) == ["user.txn_count_1h@v1: deprecated since 2026-11-20"]
    store.register(count.model_copy(update={"deprecated_after": TODAY}))
    assert _problems(store.catalog(), pin) == []  # its last day: still served


def test_a_feature_pinned_twice_is_not_a_model_file(tmp_path: Path) -> None:
    """A model reads one version of a feature: two pins of one name (two versions, or one twice) passed."""
    path = tmp_path / "model.toml"
    path.write_text(
        'model = "fraud"\n'
        + "".join(
            f'[[features]]\nentity = "user"\nname = "{n}"\nversion = {v}\n'
            for n, v in (("txn_amount_sum_1h", 1), ("txn_amount_sum_1h", 2), ("txn_count_1h", 1))
        )
    )
    with pytest.raises(DefinitionError, match=r"user\.txn_amount_sum_1h pinned 2 times \(v1, v2\)"):
        load_model(path)


def test_cli_gate_exit_codes(store: DefinitionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "d.db")
    good = tmp_path / "good.toml"
    good.write_text('model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\n')
    assert cli.main(["--db", db, "gate", str(good), "--no-schema-check"]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\nvalue_type = "double"\n'
    )
    assert cli.main(["--db", db, "gate", str(bad), "--no-schema-check"]) == 1
    assert "REFUSED: user.txn_count_1h@v1: trained on double" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text('model = "fraud"\nfeatures = []\ncolour = 1\n')
    assert cli.main(["--db", db, "gate", str(broken), "--no-schema-check"]) == 1
    assert "not a valid model file" in capsys.readouterr().err
    assert load_model(good).features[0].name == "txn_count_1h"


def _health(served: int, stale: int, mismatch: float = 0.0, missing: float = 0.0) -> Guardrails:
    return Guardrails({("user", "txn_count_1h", 1): ServedHealth(served, stale, mismatch, missing)})


PIN = PinnedFeature(entity="user", name="txn_count_1h", version=1)


@pytest.mark.parametrize(
    ("guardrails", "refusals"),
    [
        (_health(100, 1), []),  # 1 % stale: at the threshold, which passes
        (_health(100, 2), ["served stale in 2 of 100 logged values in the last 24h (2.00% > 1.00%)"]),
        (_health(1000, 0, mismatch=0.001), []),  # at the parity threshold
        (_health(1000, 0, mismatch=0.002), ["0.20% of values served in the last 24h mismatched offline"]),
        (_health(1000, 0, missing=0.5), ["50.00% of values served in the last 24h missing offline"]),
        (_health(0, 0), []),  # not served in the span: nothing to say
        (Guardrails({}), []),  # not in the log at all
    ],
)
def test_guardrails_refuse_features_served_stale_or_skewed(
    store: DefinitionStore, guardrails: Guardrails, refusals: list[str]
) -> None:
    problems = check_model(_model(PIN), store.catalog(), None, today=TODAY, guardrails=guardrails)
    assert len(problems) == len(refusals)
    for problem, expected in zip(problems, refusals, strict=True):
        assert problem.startswith("user.txn_count_1h@v1: ") and expected in problem


def test_cli_gate_guardrails_read_the_serving_log(
    store: DefinitionStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gate --guardrails``: a feature served stale in the last day is refused; a span before it passes."""
    import time

    import orjson

    from registry.core.settings import Settings
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import ensure_table
    from sinks.serving_log import Batch, ensure_log_table

    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "w").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "ns")
    db = str(tmp_path / "d.db")
    model = tmp_path / "m.toml"
    model.write_text('model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\n')
    iceberg = connect_iceberg(Settings.from_env())
    # No offline table yet: nothing to judge, one error line, and no table created (both were, and the gate passed).
    assert cli.main(["--db", db, "gate", str(model), "--no-schema-check", "--guardrails"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "error: offline table ns.offline_feature_values does not exist: the job's client creates it before the job starts\n"
    )
    assert iceberg.list_namespaces() == [] or iceberg.list_tables("ns") == []
    ensure_table(iceberg, "ns")
    log = ensure_log_table(iceberg, "ns")
    now_ms = time.time_ns() // 1_000_000
    batch = Batch.empty()
    for i, status in enumerate(["stale", "present", "missing"]):
        record = {
            "served_at": now_ms - 3_600_000,
            "entity_type": "user",
            "entity_id": f"u{i}",
            "names": ["txn_count_1h"],
            "versions": [1],
            "values": [None],
            "feature_timestamps": [None],
            "statuses": [status],
        }
        batch.add(orjson.dumps(record), "t", 0, i)
    log.append(batch.to_arrow())
    assert cli.main(["--db", db, "gate", str(model), "--no-schema-check", "--guardrails"]) == 1
    assert (
        "REFUSED: user.txn_count_1h@v1: served stale in 1 of 3 logged values in the last 24h" in capsys.readouterr().err
    )
    assert cli.main(["--db", db, "gate", str(model), "--no-schema-check", "--guardrails", "--since", "30m"]) == 0
    assert cli.main(["--db", db, "gate", str(model), "--no-schema-check"]) == 0  # without --guardrails: not read


@pytest.mark.parametrize(
    ("drift", "refusals"),
    [
        ({}, []),  # no drift computed
        ({("user", "txn_count_1h", 1): (0.25, "ts1", "offline")}, []),  # at the threshold, which passes
        (
            {("user", "txn_count_1h", 1): (0.4, "ts1", "serving_log")},
            ["drifted from training set ts1 in the last 24h: PSI 0.400 of its served values (> 0.25)"],
        ),
        ({("user", "txn_count_1h", 2): (0.9, "ts1", "offline")}, []),  # another version drifted
    ],
)
def test_guardrails_refuse_features_that_drifted(
    store: DefinitionStore, drift: dict[tuple[str, str, int], tuple[float, str, str]], refusals: list[str]
) -> None:
    guardrails = Guardrails({}, drift=drift)
    problems = check_model(_model(PIN), store.catalog(), None, today=TODAY, guardrails=guardrails)
    assert [p.removeprefix("user.txn_count_1h@v1: ") for p in problems] == refusals


def test_cli_gate_guardrails_read_the_stored_drift(
    store: DefinitionStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gate --guardrails`` refuses a feature whose stored PSI of the span is above ``--max-psi``."""
    from datetime import UTC, datetime, timedelta

    from registry.quality import QualityStore

    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "w").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "ns")
    from registry.core.settings import Settings
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import ensure_table

    ensure_table(connect_iceberg(Settings.from_env()), "ns")  # as the stream job's client made it
    db = tmp_path / "d.db"
    now = datetime.now(UTC)
    score = {"entity_type": "user", "feature": "txn_count_1h", "version": 1, "training_set": "ts9", "psi": 0.6}
    QualityStore(db).put_drift(
        "offline", [score], now - timedelta(hours=3), now - timedelta(hours=2), now - timedelta(hours=2)
    )
    model = tmp_path / "m.toml"
    model.write_text('model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\n')
    args = ["--db", str(db), "gate", str(model), "--no-schema-check", "--guardrails"]
    assert cli.main(args) == 1
    assert (
        "REFUSED: user.txn_count_1h@v1: drifted from training set ts9 in the last 24h: PSI 0.600"
        in capsys.readouterr().err
    )
    assert cli.main([*args, "--max-psi", "0.6"]) == 0  # equal to the threshold passes
    assert cli.main([*args, "--since", "1h"]) == 0  # computed before the span


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--max-stale-share", "nan"),
        ("--max-stale-share", "-0.1"),
        ("--max-stale-share", "1.5"),
        ("--max-parity-ratio", "nan"),
        ("--max-parity-ratio", "-1"),
        ("--max-parity-ratio", "2"),
        ("--max-psi", "nan"),
        ("--max-psi", "-0.5"),
        ("--max-psi", "inf"),
        ("--max-psi", "x"),
        ("--schema-registry", "notaurl"),
        ("--schema-registry", "ftp://h"),
        ("--since", "bogus"),
        ("--since", "0s"),
        ("--since", "0ms"),
        ("--since", "-1h"),
        ("--since", "1.5h"),
        ("--since", "٥m"),
        ("--since", "100000d"),
    ],
)
def test_cli_gate_refuses_an_option_value_that_makes_no_sense(
    store: DefinitionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--db", str(tmp_path / "x.db"), "gate", "m.toml", "--guardrails", f"{option}={value}"])
    assert exited.value.code == 2
    assert f"argument {option}: must be" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["bogus", "0s", "", "99999999999999d"])
def test_cli_gate_refuses_a_bad_since_without_guardrails_too(
    store: DefinitionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """``--since`` is checked when parsed, whether or not ``--guardrails`` reads it: a usage error, exit 2."""
    model = tmp_path / "m.toml"
    model.write_text('model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\n')
    with pytest.raises(SystemExit) as exited:
        cli.main(["--db", str(tmp_path / "d.db"), "gate", str(model), "--no-schema-check", f"--since={value}"])
    assert exited.value.code == 2
    assert "argument --since: must be a positive duration" in capsys.readouterr().err


def test_cli_gate_on_a_model_file_that_is_not_utf8_is_one_error_line(
    store: DefinitionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.toml"
    model.write_bytes(b'model = "fr\xe4ud"\n')
    assert cli.main(["--db", str(tmp_path / "d.db"), "gate", str(model), "--no-schema-check"]) == 1
    assert capsys.readouterr().err == f"error: {model}: not a valid model file: not UTF-8 text (byte 11)\n"
    with pytest.raises(Exception, match="not UTF-8 text") as raised:
        load_model(model)
    assert type(raised.value).__name__ == "DefinitionError"


def test_cli_gate_on_a_model_file_with_a_byte_order_mark_says_so(
    store: DefinitionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TOML's answer was "Invalid statement (at line 1, column 1)", about a character no editor shows."""
    model = tmp_path / "m.toml"
    model.write_bytes('\ufeffmodel = "fraud"\nfeatures = []\n'.encode())
    assert cli.main(["--db", str(tmp_path / "d.db"), "gate", str(model), "--no-schema-check"]) == 1
    assert capsys.readouterr().err == (
        f"error: {model}: not a valid model file: starts with a UTF-8 byte order mark (BOM): save it without one\n"
    )
