{{ config(materialized='incremental', incremental_strategy='append') }}
-- Every session-log event, typed (the union of the per-type staging views), voids
-- included. Append-only and incremental on the event-store sequence number: a
-- nightly build parses only the events that arrived since the last one.
{%- for t in session_event_types() %}
select * from {{ ref('stg_sessions__' ~ t) }}
where true {{ new_events_only() }}
{%- if not loop.last %}
union all
{%- endif %}
{%- endfor %}
