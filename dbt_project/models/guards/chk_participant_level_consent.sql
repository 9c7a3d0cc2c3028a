{{ config(tags=['check']) }}
-- For the consent guard (rule 1): every row of every participant-level mart,
-- with the consent and erasure state of the intake record its key belongs to.
-- Not published (the allow-list of the analyst database leaves it out).
with keyed as (
    select participant_key(record_id) as participant_key, is_consented, is_erased
    from {{ ref('int_participants_projected') }}
),

rows as (
    {%- set marts = ['participants', 'sessions', 'engagement', 'retention', 'alliance_scores',
                     'alliance_trajectory', 'coded_units'] %}
    {%- for m in marts %}
    select '{{ m }}' as mart, participant_key from {{ ref(m) }} where participant_key is not null
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
)

select r.mart, r.participant_key, k.is_consented, coalesce(k.is_erased, false) as is_erased
from rows as r
left join keyed as k on r.participant_key = k.participant_key
