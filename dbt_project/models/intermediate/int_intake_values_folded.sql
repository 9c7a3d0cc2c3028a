{{ config(materialized='view') }}
-- The intake records as currently known: the fold of first-seen, corrected and
-- removed events into (record_id, field, value), for records present now.
select
    record_id,
    field,
    value
from {{ ref('int_intake_values_state') }}
where field is not null
