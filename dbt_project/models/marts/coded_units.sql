-- One row per published coded unit (consent rule 3 and identifier screening passed).
select
    participant_key('unit:' || unit_id) as unit_key,
    participant_key('transcript:' || transcript_id) as transcript_key,
    transcript_kind,
    participant_key(record_id) as participant_key,
    code_path,
    theme,
    coder_id,
    start_char,
    end_char,
    unit_text as text
from {{ ref('int_coded_units_published') }}
