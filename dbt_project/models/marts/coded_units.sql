-- One row per published coded unit (consent rule 3 and identifier screening passed): a span
-- coded with one code by one coder. unit_key hashes the coded unit's id (a QDPX coding's
-- <selection>:<coding>, a CSV row's <unit_id>|<coder_id>|<code_path>), so a CSV unit coded
-- by 2 coders with 3 codes is 6 rows, each with its own key.
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
