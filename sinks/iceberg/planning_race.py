"""A fix for pyiceberg 0.8.1's scan planning, which may leave out data files when planned in parallel.

``DataScan.plan_files`` opens the snapshot's manifests on pyiceberg's thread pool and tests every data file with
*one* ``_InclusiveMetricsEvaluator.eval`` (and one partition ``_ExpressionEvaluator.eval`` per spec), shared by
the threads. Both keep the file under test in instance attributes (``self.lower_bounds = file.lower_bounds`` ...,
``self.struct = struct``) and then walk the filter reading them: a thread switch between the two tests one file's
filter against another file's statistics, and a file that holds wanted rows is dropped from the plan. Measured
here: 1 plan in about 20 came back one file short on a loaded 2-core machine (599 of 600), and a training set then
missed that file's rows, silently (design §2.5). Later pyiceberg builds an evaluator per file (iceberg-python
#3665 makes them stateless).

``apply()`` serialises each evaluator class's ``eval`` with a lock: the evaluation is pure Python under the GIL
anyway, so planning loses nothing measurable, while the manifests' reading and decoding stay parallel. Applied
once, on import of ``sinks.iceberg`` (every reader and writer of the offline tables goes through it).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_PATCHED = "_featurestore_serialised"


def _serialised(eval_: Callable[..., bool]) -> Callable[..., bool]:
    lock = threading.Lock()

    @functools.wraps(eval_)
    def locked(self: Any, subject: Any) -> bool:
        with lock:
            return eval_(self, subject)

    setattr(locked, _PATCHED, True)
    return locked


def apply() -> None:
    """Serialise the stateful evaluators' ``eval`` (idempotent)."""
    from pyiceberg.expressions import visitors

    for cls in (visitors._InclusiveMetricsEvaluator, visitors._ExpressionEvaluator):
        if not getattr(cls.eval, _PATCHED, False):
            cls.eval = _serialised(cls.eval)  # type: ignore[method-assign]
