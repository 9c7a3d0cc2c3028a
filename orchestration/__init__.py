"""Orchestration: the pipeline's steps (``steps``, plain functions) and their
Dagster wiring (``definitions``, ``defs``), plus the ``alliance-wh`` CLI."""
