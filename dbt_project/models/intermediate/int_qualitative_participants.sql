-- Participants with at least one published coded unit: interviewees of an
-- interview, and participants who speak in a focus group.
with attributed as (
    select consent_record_id as record_id from {{ ref('int_coded_units_published') }}
    where transcript_kind = 'interview'
    union all
    select record_id from {{ ref('int_coded_units_published') }}
    where transcript_kind = 'focus_group'
)

select distinct record_id
from attributed
where record_id is not null
