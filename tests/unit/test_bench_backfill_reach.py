"""``python -m bench.backfill_reach`` on a small case: both ways write every row of version 2; only the reach per
name checks rows (all of them, each window end of version 1 being in the table)."""

from __future__ import annotations

import re

import pytest

from bench import backfill_reach


def test_the_bench_prints_rows_written_and_checked_each_way(capsys: pytest.CaptureFixture[str]) -> None:
    assert backfill_reach.main(["--entities", "50", "--windows", "6", "--flushes", "3"]) == 0
    out = capsys.readouterr().out
    assert "version 1 in the table: 300 rows (300 values), 3 appends" in out
    found = dict(re.findall(r"(per version|per name): .* 300 rows \(300 values\) written, ([\d,]+) rows checked", out))
    assert found == {"per version": "0", "per name": "300"}, out
