-- The CONSORT flow (CONTRACT 3.1): assessed, excluded (by reason), randomized,
-- then per arm (the study profile's arms, in its order) allocated, received the
-- intervention, lost to follow-up, withdrew (both scopes) and analysed (allocated
-- minus scope-2 withdrawals). A study without arms stops at `enrolled`.
-- Participants who withdrew all data are counted here, and only here.
{%- set decline = concept_field('decline_reason') %}
{%- set randomized = randomized_study() %}
with projected as (
    -- every intake record held now; a record erased since (and not yet purged) is counted from its erasure
    select
        participant_key(p.record_id) as participant_key,
        p.is_consented,
        p.is_randomized,
        p.rand_arm,
        p.decline_reason,
        p.is_lost_to_followup,
        p.is_withdrawn,
        p.is_erased,
        coalesce(a.received_intervention, false) as received_intervention
    from {{ ref('int_participants_projected') }} as p
    left join {{ ref('int_attendance') }} as a on p.record_id = a.record_id
),

erased as (
    select
        participant_key,
        is_consented,
        is_randomized,
        rand_arm,
        cast(null as varchar) as decline_reason,
        is_lost_to_followup,
        true as is_withdrawn,
        true as is_erased,
        received_intervention
    from {{ ref('stg_erasures__participants') }}
),

people as (
    select * from projected
    where participant_key not in (select e.participant_key from erased as e)
    union all
    select * from erased
),

arms as (
    {%- if randomized %}
    select a.arm_order, a.arm from (values {{ arm_rows() }}) as a (arm_order, arm)
    {%- else %}
    select 0 as arm_order, cast(null as varchar) as arm
    where false
    {%- endif %}
),

decline_levels as (
    {%- if decline %}
    select label as reason, level_order
    from {{ ref('int_choice_labels') }}
    where field_name = '{{ decline }}'
    {%- else %}
    select cast(null as varchar) as reason, 0 as level_order
    where false
    {%- endif %}
),

not_consented as (
    select coalesce(decline_reason, 'Not recorded') as reason, count(*) as n
    from people
    where not is_consented
    group by coalesce(decline_reason, 'Not recorded')
),

excluded as (
    select l.reason, l.level_order, coalesce(n.n, 0) as n
    from decline_levels as l
    left join not_consented as n on l.reason = n.reason
    union all
    select reason, 1000 as level_order, n
    from not_consented
    where reason not in (select l.reason from decline_levels as l)
    {%- if randomized %}
    union all
    select 'Not randomized' as reason, 2000 as level_order, count(*) as n
    from people
    where is_consented and not is_randomized
    {%- endif %}
),

allocated as (
    select
        p.rand_arm as arm,
        count(*) as allocated,
        count(*) filter (where p.received_intervention) as received_intervention,
        count(*) filter (where p.is_lost_to_followup) as lost_to_followup,
        count(*) filter (where p.is_withdrawn) as withdrew,
        count(*) filter (where not p.is_erased) as analysed
    from people as p
    where p.is_consented and p.is_randomized
    group by p.rand_arm
),

per_arm as (
    select
        a.arm_order,
        a.arm,
        coalesce(x.allocated, 0) as allocated,
        coalesce(x.received_intervention, 0) as received_intervention,
        coalesce(x.lost_to_followup, 0) as lost_to_followup,
        coalesce(x.withdrew, 0) as withdrew,
        coalesce(x.analysed, 0) as analysed
    from arms as a
    left join allocated as x on a.arm = x.arm
),

flow as (
    select
        1 as stage_order, 0 as arm_order, 0 as reason_order, 'assessed' as stage, 'All' as arm,
        count(*) as n, cast(null as varchar) as reason
    from people
    union all
    select
        2 as stage_order, 0 as arm_order, level_order as reason_order, 'excluded' as stage, 'All' as arm,
        n, reason
    from excluded
    union all
    {%- if randomized %}
    select
        3 as stage_order, 0 as arm_order, 0 as reason_order, 'randomized' as stage, 'All' as arm,
        count(*) as n, null as reason
    from people
    where is_consented and is_randomized
    {%- else %}
    select
        3 as stage_order, 0 as arm_order, 0 as reason_order, 'enrolled' as stage, 'All' as arm,
        count(*) as n, null as reason
    from people
    where is_consented
    {%- endif %}
    union all
    select
        4 as stage_order, arm_order, 0 as reason_order, 'allocated' as stage, arm,
        allocated as n, null as reason
    from per_arm
    union all
    select
        5 as stage_order, arm_order, 0 as reason_order, 'received_intervention' as stage, arm,
        received_intervention as n, null as reason
    from per_arm
    union all
    select
        6 as stage_order, arm_order, 0 as reason_order, 'lost_to_followup' as stage, arm,
        lost_to_followup as n, null as reason
    from per_arm
    union all
    select
        7 as stage_order, arm_order, 0 as reason_order, 'withdrew' as stage, arm,
        withdrew as n, null as reason
    from per_arm
    union all
    select
        8 as stage_order, arm_order, 0 as reason_order, 'analysed' as stage, arm,
        analysed as n, null as reason
    from per_arm
)

select stage, arm, n, reason, stage_order, arm_order, reason_order
from flow
