"""The offline store (Iceberg): its layout (``layout``), writer and table set-up (``writer``) and
reads for point-in-time joins (``reader``)."""
