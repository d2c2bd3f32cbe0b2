"""A stream job run that failed inside Flink, as one named error (a bounded run does not restart).

The JVM's answer is a Java exception whose causes hold the real one, often as the text of a Python
traceback from the job's Python functions; ``job_failure`` finds it and names it in one line.
"""

from __future__ import annotations

import re

from py4j.protocol import Py4JJavaError

from registry.core.errors import FeatureStoreError, StoreUnavailableError
from registry.core.settings import Settings


def _subclasses(cls: type[FeatureStoreError]) -> list[type[FeatureStoreError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


_PYTHON_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)
_ERROR_CLASSES: list[type[FeatureStoreError]] = [FeatureStoreError, *_subclasses(FeatureStoreError)]
_OUR_ERRORS: dict[str, type[FeatureStoreError]] = {  # the project's errors: a store down, or another of ours
    cls.__name__: StoreUnavailableError if issubclass(cls, StoreUnavailableError) else FeatureStoreError
    for cls in _ERROR_CLASSES
}
REGISTRY_UNREACHABLE = "schema registry unreachable: "  # jobs/java/decode EventDecoder's IOException


def _java_causes(exc: Py4JJavaError) -> list[tuple[str, str]]:
    """(class name, message) of a failed run's Java exception and each of its causes, outermost first."""
    causes: list[tuple[str, str]] = []
    throwable = exc.java_exception
    while throwable is not None and len(causes) < 64:
        message = throwable.getMessage()
        causes.append((str(throwable.getClass().getName()), "" if message is None else str(message)))
        throwable = throwable.getCause()
    return causes


def registry_unavailable(url: str, reason: str) -> StoreUnavailableError:
    """A schema registry that stopped answering during a run, as the run's one line (design §6): whether the JVM
    decoder's lookup failed (``job_failure``) or the Python one of a run over the archive (``jobs.history``)."""
    reason = " ".join(reason.split())  # one line, whatever it quotes
    return StoreUnavailableError(
        f"schema registry at {url} unavailable during the run: {reason}; the job stopped, no record was "
        "dead-lettered for it, and a rerun once it answers completes what was written"
    )


def job_failure(exc: Py4JJavaError, settings: Settings) -> FeatureStoreError:
    """A run that failed inside Flink (a bounded run does not restart) as one named error.

    A schema registry that stopped answering during the run (the JVM decoder's lookup of a new schema id)
    is ``StoreUnavailableError`` naming it; an error of ours raised in the job's Python writer (a store
    down, say) is that error with its message; anything else is the innermost Java cause. Nothing was
    dead-lettered for it, and what the writer committed before stays: offline appends skip rows already
    held and online writes are ordered by window end and revision, so a rerun completes the run."""
    causes = _java_causes(exc)
    for _, message in causes:
        if message.startswith(REGISTRY_UNREACHABLE):
            return registry_unavailable(settings.schema_registry_url, message.removeprefix(REGISTRY_UNREACHABLE))
    for _, message in causes:  # a Python function of the job failed: the last line of its traceback
        found = _PYTHON_ERROR.findall(message) if "Traceback (most recent call last)" in message else []
        if found:
            name, text = found[-1]
            if name not in _OUR_ERRORS:
                return FeatureStoreError(f"the job failed: {name}: {text}")
            return _OUR_ERRORS[name](
                f"{text}; the job stopped, and a rerun once it is fixed completes what was written"
            )
    name, message = next(((n, m) for n, m in reversed(causes) if m), causes[-1] if causes else ("", str(exc)))
    return FeatureStoreError(f"the job failed: {name.rpartition('.')[2]}: {message.splitlines()[0] if message else ''}")
