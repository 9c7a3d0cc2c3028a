"""Ingestion: landed export files -> events in the encrypted event store.

Readers are pure (bytes in, batch out) and know nothing of Dagster.
"""
