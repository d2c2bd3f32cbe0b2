"""The online store (Cassandra): its layout (``layout``), writer (``writer``) and reader (``reader``)."""
