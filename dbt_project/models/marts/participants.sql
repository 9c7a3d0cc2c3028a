-- One row per consented participant (scope-2 withdrawals excepted).
with projected as (
    select * from {{ ref('int_participants_projected') }}
    where is_consented and not is_erased
)

select
    participant_key(record_id) as participant_key,
    site,
    case when is_randomized then rand_arm end as arm,
    consent_date as consented_on,
    case when is_randomized then rand_date end as randomized_on,
    age,
    sex,
    ethnicity,
    race,
    sex_label,
    ethnicity_label,
    race_label,
    education,
    marital_status,
    homeless,
    employed,
    drug_of_choice,
    drug_class,
    cooccurring,
    prior_tx_episodes,
    court_referred,
    asam_level,
    withdrawn,
    withdrawal_scope
from projected
