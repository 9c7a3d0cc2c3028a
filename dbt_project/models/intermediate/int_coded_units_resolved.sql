-- Every coded unit with its text, its transcript's participant (interviews) and
-- its speaker's participant (via the pseudonym list), whether consent and
-- screening allow publishing it, and why not.
-- A coded unit is a span coded with one code by one coder. A QDPX unit_id names one coding
-- already; a CSV unit_id names a span that several coders code with several codes, so the
-- coded unit's id is the CSV unit_id with its coder and code (source_unit_id keeps the id as
-- delivered, the key of the text and of the screening's holds).
with coded as (
    select
        *,
        case when source_format = 'csv' then unit_id || '|' || coder_id || '|' || code_path else unit_id end
            as coded_unit_id
    from {{ ref('stg_transcripts__coded_units') }}
),

texts as (
    select * from {{ ref('stg_transcripts__unit_text') }}
),

pseudonyms as (
    select lower(pseudonym) as pseudonym, any_value(record_id) as record_id
    from {{ ref('stg_transcripts__pseudonyms') }}
    group by lower(pseudonym)
),

held as (
    select unit_id, string_agg(reason_code, ',' order by reason_code) as hold_reasons
    from {{ ref('stg_transcripts__unit_holds') }}
    group by unit_id
),

people as (
    select record_id, is_consented, is_erased, consent_audio
    from {{ ref('int_participants_projected') }}
),

ranked as (
    -- The same coder, span and code delivered more than once (a CSV and a QDPX of the same
    -- transcript, or a CSV row held in an earlier event form) is one coded unit: the copy the
    -- screening held if one is held, else one with text, else the first recorded.
    select
        c.*,
        t.speaker,
        t.unit_text,
        h.hold_reasons,
        row_number() over (
            partition by c.transcript_id, c.coder_id, c.code_path, c.start_char, c.end_char
            order by h.hold_reasons is null, t.unit_text is null, c.seq
        ) as copy_rank
    from coded as c
    left join texts as t on c.unit_id = t.unit_id
    left join held as h on c.unit_id = h.unit_id
),

units as (
    select * from ranked where copy_rank = 1
),

resolved as (
    select
        u.*,
        -- an interview belongs to its interviewee: from the export, else the INT-<record_id>-<n> name
        case when u.transcript_kind = 'interview' then coalesce(
            max(u.record_id) over (partition by u.transcript_id),
            nullif(regexp_extract(u.transcript_id, '^INT-(.+)-[0-9]+$', 1), '')
        ) end as interviewee_record_id,
        coalesce(ps.record_id, case when u.transcript_kind = 'focus_group' then u.record_id end) as speaker_record_id
    from units as u
    left join pseudonyms as ps on lower(trim(u.speaker)) = ps.pseudonym
),

attributed as (
    select
        r.*,
        -- the participant the unit is attributed to: the speaker when a participant speaks;
        -- an interview unit without turns belongs to the interviewee
        case
            when r.speaker_record_id is not null then r.speaker_record_id
            when r.transcript_kind = 'interview' and r.speaker is null then r.interviewee_record_id
        end as record_id_attributed,
        -- whose consent governs the unit: the interviewee's (interviews), the speaker's (focus groups)
        case when r.transcript_kind = 'interview' then r.interviewee_record_id else r.speaker_record_id end
            as consent_record_id
    from resolved as r
)

select
    a.coded_unit_id as unit_id,
    a.unit_id as source_unit_id,
    a.source_format,
    a.transcript_id,
    a.transcript_kind,
    a.record_id_attributed as record_id,
    a.consent_record_id,
    a.coder_id,
    a.code_path,
    split_part(a.code_path, '/', 1) as theme,
    a.start_char,
    a.end_char,
    a.coded_at,
    a.unit_text,
    a.hold_reasons,
    case
        when a.unit_text is null then 'no_text'
        when a.hold_reasons is not null then 'identifier_screening'
        when a.consent_record_id is not null and c.record_id is null then 'unknown_participant'
        when a.consent_record_id is not null and not c.is_consented then 'not_consented'
        when a.consent_record_id is not null and c.is_erased then 'withdrew_all_data'
        when a.consent_record_id is not null and not coalesce(c.consent_audio, false) then 'no_audio_consent'
        when a.record_id_attributed is not null and (s.record_id is null or not s.is_consented or s.is_erased)
            then 'speaker_not_publishable'
    end as excluded_because
from attributed as a
left join people as c on a.consent_record_id = c.record_id
left join people as s on a.record_id_attributed = s.record_id
