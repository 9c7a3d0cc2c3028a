{{ config(tags=['check']) }}
-- For consent rules 3 and 4: every published coded unit, with whether audio consent
-- allows it and whether the identifier screening cleared it. Not published.
with published as (
    select unit_key from {{ ref('coded_units') }}
),

resolved as (
    select
        participant_key('unit:' || u.unit_id) as unit_key,
        u.hold_reasons is null as screening_cleared,
        u.consent_record_id is null or coalesce(p.consent_audio and p.is_consented and not p.is_erased, false)
            as audio_consented
    from {{ ref('int_coded_units_resolved') }} as u
    left join {{ ref('int_participants_projected') }} as p on u.consent_record_id = p.record_id
)

select
    pu.unit_key,
    coalesce(r.audio_consented, false) as audio_consented,
    coalesce(r.screening_cleared, false) as screening_cleared
from published as pu
left join resolved as r on pu.unit_key = r.unit_key
