"""The offline store (Iceberg): its layout (``layout``), writer and table set-up (``writer``) and
reads for point-in-time joins (``reader``)."""

from sinks.iceberg import planning_race

planning_race.apply()  # before any scan is planned: pyiceberg 0.8.1 may drop files from a parallel plan
