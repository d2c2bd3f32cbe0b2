"""User-defined functions: per-record decoding and validation run inside the stream job (``decode``),
and request-time feature functions run by the online API and the training-set join (``request``). No Flink."""
