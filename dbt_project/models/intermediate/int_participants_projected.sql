-- One row per intake record present now, with the study concepts named by the
-- study profile: coded values turned into labels (sex, ethnicity and race into the
-- contract's, with the study's own beside them as `<concept>_label`), age derived
-- when the profile says so, and the analysis frame: the arm, day 0 and who is analysed
-- (the randomized; every consented participant, arm `All`, in a study without arms).
{%- set p = var('profile') %}
{%- set derive = p.get('derive_age') %}
with folded as (
    select * from {{ ref('int_intake_values_folded') }}
),

raw as (
    select
        record_id,
        {{ concept_value('site') }} as site,
        {{ concept_value('assessment_date') }} as assessment_date_raw,
        {{ concept_value('age') }} as age_raw,
        {{ concept_value('sex') }} as sex_code,
        {{ concept_value('ethnicity') }} as ethnicity_code,
        {{ concept_checked('race') }} as race_codes,
        {{ concept_value('race') }} as race_single_code,
        {{ concept_value('education') }} as education_code,
        {{ concept_value('marital_status') }} as marital_status_code,
        {{ concept_value('homeless') }} as homeless_code,
        {{ concept_value('employed') }} as employed_code,
        {{ concept_value('drug_of_choice') }} as drug_of_choice_code,
        {{ concept_value('sud_diagnosis') }} as sud_diagnosis_code,
        {{ concept_value('psychotic_disorder') }} as psychotic_disorder_code,
        {{ concept_value('alcohol_only') }} as alcohol_only_code,
        {{ concept_checked('cooccurring') }} as cooccurring_codes,
        {{ concept_value('prior_tx_episodes') }} as prior_tx_episodes_raw,
        {{ concept_value('last_tx_date') }} as last_tx_date_raw,
        {{ concept_value('court_referred') }} as court_referred_code,
        {{ concept_value('asam_level') }} as asam_level_code,
        {{ concept_value('referral_program') }} as referral_program_code,
        {{ concept_value('consent_date') }} as consent_date_raw,
        {{ concept_value('consent_audio') }} as consent_audio_code,
        {{ concept_value('consent_share') }} as consent_share_code,
        {{ concept_value('decline_reason') }} as decline_reason_code,
        {{ concept_value('rand_arm') }} as rand_arm_code,
        {{ concept_value('rand_date') }} as rand_date_raw,
        {{ concept_value('withdrawn') }} as withdrawn_code,
        {{ concept_value('withdrawal_date') }} as withdrawal_date_raw,
        {{ concept_value('withdrawal_scope') }} as withdrawal_scope_code,
        {{ concept_value('lost_to_followup') }} as lost_to_followup_code
    from folded
    group by record_id
),

race_labelled as (
    -- the ticked boxes of a checkbox race: the contract labels they map to (Unknown counts only
    -- when nothing else is ticked) and the study's own labels, in dictionary order
    select
        r.record_id,
        list(distinct c.label) filter (where c.label <> 'Unknown or not reported') as known_races,
        list(c.study_label order by c.level_order) filter (where c.study_label is not null) as study_races
    from raw as r
    left join {{ ref('int_concept_codes') }} as c
        on c.concept = 'race' and list_contains(r.race_codes, c.code)
    group by r.record_id
),
{%- if p['all_consented'] or derive %}

first_seen as (  -- noqa: ST03
    -- the export moment of the first snapshot that held each record
    select record_id, min(exported_at) as first_seen_at
    from {{ ref('stg_intake__events') }}
    where event_type = 'intake_recorded'
    group by record_id
),
{%- endif %}

cooccurring_labelled as (
    select
        r.record_id,
        list(l.label order by l.level_order) filter (where l.label is not null) as cooccurring
    from raw as r
    left join {{ ref('int_choice_labels') }} as l
        on l.field_name = '{{ concept_field("cooccurring") }}' and list_contains(r.cooccurring_codes, l.code)
    group by r.record_id
),

typed as (
    select
        r.record_id,
        r.site,
        try_cast(r.assessment_date_raw as date) as assessment_date,
        {%- if derive %}
        -- whole years at the assessment date (else at the first export holding the record)
        date_sub(
            'year', b.born_on,  -- noqa: RF01
            {% if derive['at'] == 'assessment_date' %}coalesce(try_cast(r.assessment_date_raw as date), {% endif -%}
            {{ local_date('fs.first_seen_at') }}{% if derive['at'] == 'assessment_date' %}){% endif %}  -- noqa: RF01
        ) as age,
        {%- else %}
        try_cast(r.age_raw as integer) as age,
        {%- endif %}
        {{ concept_label('sex', 'r.sex_code') }} as sex,
        {{ concept_label('sex', 'r.sex_code', study=true) }} as sex_label,
        {{ concept_label('ethnicity', 'r.ethnicity_code') }} as ethnicity,
        {{ concept_label('ethnicity', 'r.ethnicity_code', study=true) }} as ethnicity_label,
        case
            when r.race_codes is null and r.race_single_code is not null
                then {{ concept_label('race', 'r.race_single_code') }}
            when len(coalesce(rl.known_races, [])) = 1 then rl.known_races[1]
            when len(coalesce(rl.known_races, [])) > 1 then 'More than one race'
            else 'Unknown or not reported'
        end as race,
        case
            when r.race_codes is null then {{ concept_label('race', 'r.race_single_code', study=true) }}
            else nullif(array_to_string(rl.study_races, '; '), '')
        end as race_label,
        {{ concept_label('education', 'r.education_code') }} as education,
        {{ concept_label('marital_status', 'r.marital_status_code') }} as marital_status,
        {{ concept_label('homeless', 'r.homeless_code') }} as homeless,
        {{ concept_label('employed', 'r.employed_code') }} as employed,
        r.drug_of_choice_code,
        {{ concept_label('drug_of_choice', 'r.drug_of_choice_code') }} as drug_of_choice,
        case
            when r.drug_of_choice_code is null then null
            else coalesce({{ map_codes('r.drug_of_choice_code', p['drug_classes']) }}, 'Other')
        end as drug_class,
        {{ concept_label('sud_diagnosis', 'r.sud_diagnosis_code') }} as sud_diagnosis,
        r.psychotic_disorder_code = '{{ p["yes_code"] }}' as has_psychotic_disorder,
        r.alcohol_only_code = '{{ p["yes_code"] }}' as is_alcohol_only,
        coalesce(cl.cooccurring, []) as cooccurring,
        try_cast(r.prior_tx_episodes_raw as integer) as prior_tx_episodes,
        try_cast(r.last_tx_date_raw as date) as last_tx_date,
        {{ concept_label('court_referred', 'r.court_referred_code') }} as court_referred,
        {{ concept_label('asam_level', 'r.asam_level_code') }} as asam_level,
        try_cast(r.referral_program_code as integer) as referral_program,
        {%- if p['all_consented'] %}
        -- every record is consented: on its consent date if recorded, else its assessment date,
        -- else the day of the first export that held it
        coalesce(
            try_cast(r.consent_date_raw as date), try_cast(r.assessment_date_raw as date),
            {{ local_date('fs.first_seen_at') }}  -- noqa: RF01
        ) as consent_date,
        {%- else %}
        try_cast(r.consent_date_raw as date) as consent_date,
        {%- endif %}
        r.consent_audio_code = '{{ p["yes_code"] }}' as consent_audio,
        r.consent_share_code = '{{ p["yes_code"] }}' as consent_share,
        {{ concept_label('decline_reason', 'r.decline_reason_code') }} as decline_reason,
        {{ map_codes('r.rand_arm_code', p['arms']) }} as rand_arm,
        try_cast(r.rand_date_raw as date) as rand_date,
        coalesce(r.withdrawn_code = '{{ p["yes_code"] }}', false) as is_withdrawn,
        {{ concept_label('withdrawn', 'r.withdrawn_code') }} as withdrawn,
        try_cast(r.withdrawal_date_raw as date) as withdrawal_date,
        {{ map_codes('r.withdrawal_scope_code', p['withdrawal_scopes'], quote=false) }} as withdrawal_scope_number,
        {{ concept_label('withdrawal_scope', 'r.withdrawal_scope_code') }} as withdrawal_scope,
        coalesce(r.lost_to_followup_code = '{{ p["yes_code"] }}', false) as is_lost_to_followup
    from raw as r
    left join race_labelled as rl on r.record_id = rl.record_id
    left join cooccurring_labelled as cl on r.record_id = cl.record_id
    {%- if p['all_consented'] or derive %}
    left join first_seen as fs on r.record_id = fs.record_id  -- noqa: ST11
    {%- endif %}
    {%- if derive %}
    left join {{ ref('stg_intake__birth_dates') }} as b on r.record_id = b.record_id  -- noqa: ST11
    {%- endif %}
),

framed as (
    select
        *,
        {% if p['all_consented'] %}true{% else %}consent_date is not null{% endif %} as is_consented,
        rand_arm is not null and rand_date is not null as is_randomized,
        is_withdrawn and withdrawal_scope_number = 2 as is_erased,
        case when is_withdrawn and withdrawal_scope_number = 1 then withdrawal_date end as censor_date
    from typed
)

select
    *,
    {%- if randomized_study() %}
    -- the analysis frame of a randomized study: the randomized, by arm, from randomization
    is_consented and is_randomized as is_analysed,
    case when is_randomized then rand_arm end as analysis_arm,
    case when is_randomized then rand_date end as day_zero
    {%- else %}
    -- a study without arms: every consented participant, arm `All`, from consent
    is_consented as is_analysed,
    'All' as analysis_arm,
    consent_date as day_zero
    {%- endif %}
from framed
-- a participant erased after withdrawing all data never comes back, whatever a later delivery holds
where participant_key(record_id) not in (select e.participant_key from {{ ref('stg_erasures__participants') }} as e)
