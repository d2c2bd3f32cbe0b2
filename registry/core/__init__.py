"""The core model: feature definitions, durations, the time rule, the catalog, references, errors, settings.

Pure concepts only: nothing here imports an engine, a store client, a web framework or numpy/pyarrow
(``tests/unit/test_layering.py`` checks it), so every process (stream job, API, offline tools, CLI)
can load the model cheaply.
"""
