"""The Dagster definitions load, with the graph, blocking checks and schedule we expect."""

from __future__ import annotations

import dagster as dg

from orchestration.steps.dbt_setup import ensure_manifest


def test_definitions_load_with_assets_checks_schedule_and_sensor():
    ensure_manifest()
    from orchestration.definitions import defs

    d = defs()
    keys = {k.to_user_string() for k in d.resolve_all_asset_keys()}
    assert {"event_store/events", "participants", "engagement", "analytics_database",
            "stg_intake__events", "int_participants_projected"} <= keys
    graph = d.resolve_asset_graph()
    consent = [c for c in graph.asset_check_keys if c.name == "consent_rule_1_participant_level_consented"]
    assert consent and consent[0].asset_key == dg.AssetKey("participants")
    specs = [s for cd in d.asset_checks or [] for s in cd.check_specs
             if s.name == "consent_rule_1_participant_level_consented"]
    assert len(specs) == 1 and specs[0].blocking
    publish_deps = {k.to_user_string() for k in graph.get(dg.AssetKey("analytics_database")).parent_keys}
    assert {"participants", "engagement"} <= publish_deps
    assert d.resolve_schedule_def("nightly").cron_schedule == "30 2 * * *"
    assert d.resolve_sensor_def("landing_zone_sensor") is not None
    assert d.resolve_job_def("nightly_build") is not None
