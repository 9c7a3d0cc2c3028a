-- Participants who withdrew all data and were erased: what the CONSORT flow keeps.
-- Not cut by the build's as-of position (an erasure applies to every later build);
-- for an as-of build, only those first recorded by then count.
with source as (
    select * from {{ source('event_store', 'events') }}
    where event_type = 'participant_erased'
),

renamed as (
    select
        payload ->> 'participant_key' as participant_key,
        cast(payload ->> 'consented' as boolean) as is_consented,
        cast(payload ->> 'randomized' as boolean) as is_randomized,
        payload ->> 'arm' as rand_arm,
        cast(payload ->> 'consent_date' as date) as consent_date,
        cast(payload ->> 'rand_date' as date) as rand_date,
        cast(payload ->> 'withdrawal_date' as date) as withdrawal_date,
        cast(payload ->> 'received_intervention' as boolean) as received_intervention,
        cast(payload ->> 'lost_to_followup' as boolean) as is_lost_to_followup,
        cast(payload ->> 'first_recorded_at' as timestamptz) as first_recorded_at,
        recorded_at as erased_at
    from source
    {%- if var('as_of') is not none %}
    where cast(payload ->> 'first_recorded_at' as timestamptz) <= cast('{{ var("as_of") }}' as timestamptz)
    {%- endif %}
)

select * from renamed
