-- Coded transcript units (one span x code x coder), cut as of the build
-- (a unit counts from its coded_at, else from when its file was ingested).
-- A CSV transcript_id held with a text-file extension (.txt, .docx ...) loses it, as a
-- QDPX source name does, so both forms name a transcript alike.
with source as (
    select * from {{ source('event_store', 'events') }}
    where source = 'transcripts' and event_type = 'coded_unit_recorded'
),

renamed as (
    select
        seq,
        event_id,
        payload ->> 'unit_id' as unit_id,
        regexp_replace(payload ->> 'transcript_id', '(.)\.(txt|docx?|rtf|odt|pdf)$', '\1', 'i') as transcript_id,
        payload ->> 'transcript_kind' as transcript_kind,
        payload ->> 'record_id' as record_id,
        payload ->> 'coder_id' as coder_id,
        payload ->> 'code_path' as code_path,
        cast(payload ->> 'start_char' as bigint) as start_char,
        cast(payload ->> 'end_char' as bigint) as end_char,
        recorded_at as coded_at,
        payload ->> 'source_format' as source_format
    from source
    where {{ as_of_filter() }}
)

select * from renamed
