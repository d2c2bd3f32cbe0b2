"""The offline store (Iceberg): its layout (``layout``), writer and table set-up (``writer``) and
reads for point-in-time joins (``reader``)."""

from sinks.iceberg import damaged_files, planning_race

planning_race.apply()  # before any scan is planned: pyiceberg 0.8.1 may drop files from a parallel plan
damaged_files.apply()  # a manifest list or manifest cut short named, whatever pyiceberg's decoder met first
