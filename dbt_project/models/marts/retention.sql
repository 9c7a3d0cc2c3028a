-- One row per randomized participant admitted to treatment on or after
-- randomization (the first such admission, linked or not). Time in treatment
-- runs to the first discharge on or after the admission; without one by the
-- data cut (or a scope-1 withdrawal date, if earlier) it is censored there.
with episodes as (
    select
        *,
        discharged_on is not null and discharged_on <= censored_on as is_discharged
    from {{ ref('int_treatment_episodes') }}
),

timed as (
    select
        *,
        case when is_discharged then discharged_on else censored_on end - admitted_on as days_in_treatment
    from episodes
)

select
    participant_key(record_id) as participant_key,
    arm,
    program_id,
    admitted_on,
    case when is_discharged then discharged_on end as discharged_on,
    days_in_treatment,
    {%- for n in [30, 60, 90] %}
    case
        when days_in_treatment >= {{ n }} then true
        when is_discharged then false
    end as retained_{{ n }},
    {%- endfor %}
    coalesce(is_discharged and discharge_reason = 'dropped_out', false) as dropped_out,
    not is_discharged as censored,
    case when is_discharged then discharge_reason end as discharge_reason
from timed
