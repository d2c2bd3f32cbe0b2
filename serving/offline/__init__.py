"""Offline tools over the Iceberg table: point-in-time training sets, batch scoring and promotion."""
