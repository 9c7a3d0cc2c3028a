-- noqa: disable=LT02
{{ config(materialized='incremental', incremental_strategy='append') }}
-- Intake change events of the records themselves (not repeating-instrument
-- instances), one row per field they set: first-seen records give a row per field
-- of the export, a correction its one field, a removal one row with no field.
-- A longitudinal project's rows are those of its intake event(s) (the profile's
-- `intake.event`, one per REDCap arm where each arm has its own enrollment event;
-- the other events' fields stay in the store, unused here); rows without an event
-- are a non-longitudinal project's. A record without a row of an intake event is
-- not (yet) a participant.
-- Append-only and incremental on the event-store sequence number.
{%- set intake_event = var('profile').get('intake_event') %}
with events as (
    select * from {{ ref('stg_intake__events') }}
    where (payload ->> 'instrument') is null
        {%- if intake_event %}
        and (
            (payload ->> 'event') is null
            or (payload ->> 'event') in ({% for e in intake_event %}{{ sql_text(e) }}{% if not loop.last %}, {% endif %}{% endfor %})
        )
        {%- else %}
        and (payload ->> 'event') is null
        {%- endif %}
        {{ new_events_only() }}
),

recorded as (
    select record_id, seq, event_type, {{ json_text_entries("payload -> 'values'") }} as entry
    from events
    where event_type = 'intake_recorded'
)

select record_id, seq, event_type, entry['key'] as field, entry['value'] as value
from recorded
union all
select record_id, seq, event_type, payload ->> 'field' as field, payload ->> 'new' as value
from events
where event_type = 'intake_field_corrected'
union all
select record_id, seq, event_type, null as field, null as value
from events
where event_type = 'intake_record_removed'
