-- noqa: disable=LT02,LT05,ST05
-- Table 1: baseline characteristics by cohort (enrolled; randomized, in a study
-- with arms; qualitative) and stratum (Overall and each of the profile's arms). Categorical rows carry n and pct (rounded half
-- away from zero to one decimal in integer arithmetic); every level the
-- dictionary defines appears (n = 0 included), plus `Missing` when someone lacks
-- the value. Continuous rows carry n (with a value), mean and sd (sample).
-- Characteristics whose concept the study does not collect are absent.
{%- set labelled = [] %}
{%- for c in ['sex', 'race', 'ethnicity', 'education', 'marital_status', 'homeless', 'employed',
              'drug_of_choice', 'drug_class', 'cooccurring', 'prior_treatment', 'recent_treatment',
              'asam_level', 'court_referred'] %}
{%- set needs = {'drug_class': 'drug_of_choice', 'prior_treatment': 'prior_tx_episodes',
                 'recent_treatment': 'prior_tx_episodes'}.get(c, c) %}
{%- if concept_field(needs) %}{% do labelled.append(c) %}{% endif %}
{%- endfor %}
{%- set continuous = [] %}
{%- for c in ['age', 'prior_tx_episodes'] %}
{%- if concept_field(c) %}{% do continuous.append(c) %}{% endif %}
{%- endfor %}
{%- do continuous.append('sessions_attended') %}
{%- set randomized = randomized_study() %}
{%- set cohort_names = ['enrolled', 'randomized', 'qualitative'] if randomized else ['enrolled', 'qualitative'] %}
with base as (
    select
        p.*,
        a.sessions_attended,
        case
            when p.prior_tx_episodes is null then null
            when p.prior_tx_episodes = 0 then 'None'
            when p.prior_tx_episodes = 1 then 'Once'
            else 'Multiple'
        end as prior_treatment,
        case
            when p.prior_tx_episodes = 0 then 'No'
            when p.last_tx_date is null or p.assessment_date is null then null
            when p.assessment_date - p.last_tx_date between 0 and 730 then 'Yes'
            else 'No'
        end as recent_treatment
    from {{ ref('int_participants_projected') }} as p
    left join {{ ref('int_attendance') }} as a on p.record_id = a.record_id
    where p.is_consented and not p.is_erased
),

cohorts as (
    select 'enrolled' as cohort, * from base
    {%- if randomized %}
    union all
    select 'randomized' as cohort, * from base where is_randomized
    {%- endif %}
    union all
    select 'qualitative' as cohort, b.* from base as b
    where b.record_id in (select q.record_id from {{ ref('int_qualitative_participants') }} as q)
),

strata as (
    select cohort, 'Overall' as stratum, * exclude (cohort) from cohorts
    union all
    select cohort, rand_arm as stratum, * exclude (cohort) from cohorts where is_randomized
),

groups as (
    select cohort, stratum, count(*) as participants from strata group by all
),

frame as (
    -- every cohort x stratum, present even when empty
    select c.cohort, s.stratum, coalesce(g.participants, 0) as participants
    from (
        values {% for c in cohort_names %}('{{ c }}', {{ loop.index }}){% if not loop.last %}, {% endif %}{% endfor %}
    ) as c (cohort, cohort_order)
    cross join (
        select 'Overall' as stratum
        {%- if randomized %}
        union all
        select a.arm from (values {{ arm_rows() }}) as a (arm_order, arm)
        {%- endif %}
    ) as s
    left join groups as g on c.cohort = g.cohort and s.stratum = g.stratum
),

levels as (
    {%- for c in labelled %}
    {%- if c == 'drug_class' %}
    select '{{ c }}' as characteristic, v.level, v.level_order
    from (values ('Cocaine', 1), ('Opioids', 2), ('Other', 3)) as v (level, level_order)
    {%- elif c == 'prior_treatment' %}
    select '{{ c }}' as characteristic, v.level, v.level_order
    from (values ('None', 1), ('Once', 2), ('Multiple', 3)) as v (level, level_order)
    {%- elif c == 'recent_treatment' %}
    select '{{ c }}' as characteristic, v.level, v.level_order
    from (values ('Yes', 1), ('No', 2)) as v (level, level_order)
    {%- else %}
    -- the labels of the concept's codes (the contract's for sex, ethnicity and race), each once
    select '{{ c }}' as characteristic, label as level, min(level_order) as level_order
    from {{ ref('int_concept_codes') }}
    where concept = '{{ c }}' and label is not null
    group by label
    {%- if c == 'race' %}
    union all
    select 'race' as characteristic, 'More than one race' as level, 999 as level_order
    where 'More than one race' not in (
        select r.label from {{ ref('int_concept_codes') }} as r where r.concept = 'race' and r.label is not null
    )
    {%- endif %}
    {%- endif %}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

values_long as (
    {%- for c in labelled %}
    {%- if c == 'cooccurring' %}
    select cohort, stratum, record_id, 'cooccurring' as characteristic, unnest(cooccurring) as level from strata
    {%- else %}
    select cohort, stratum, record_id, '{{ c }}' as characteristic, {{ c }} as level from strata
    {%- endif %}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

counted as (
    select cohort, stratum, characteristic, level, count(distinct record_id) as n
    from values_long
    group by all
),

categorical as (
    select f.cohort, f.stratum, l.characteristic, l.level, l.level_order, coalesce(c.n, 0) as n, f.participants
    from frame as f
    cross join levels as l
    left join counted as c
        on f.cohort = c.cohort and f.stratum = c.stratum and l.characteristic = c.characteristic and l.level = c.level
    union all
    select f.cohort, f.stratum, c.characteristic, 'Missing' as level, 10000 as level_order, c.n, f.participants
    from counted as c
    inner join frame as f on c.cohort = f.cohort and c.stratum = f.stratum
    where c.level is null and c.characteristic <> 'cooccurring'
),

continuous as (
    {%- for c in continuous %}
    select
        f.cohort, f.stratum, '{{ c }}' as characteristic,
        count(s.{{ c }}) as n,
        -- in value order: floating-point sums then give the same bits however the rows are stored
        avg(s.{{ c }} order by s.{{ c }}) as mean,
        stddev_samp(s.{{ c }} order by s.{{ c }}) as sd
    from frame as f
    left join strata as s on f.cohort = s.cohort and f.stratum = s.stratum
    group by f.cohort, f.stratum
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

orders as (
    select o.characteristic, o.characteristic_order
    from (
        values
        {%- for c in continuous + labelled %}
        ('{{ c }}', {{ loop.index }}){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as o (characteristic, characteristic_order)
)

select
    c.cohort,
    c.stratum,
    c.characteristic,
    cast(null as varchar) as level,
    c.n,
    cast(null as decimal(4, 1)) as pct,
    c.mean,
    c.sd,
    o.characteristic_order,
    0 as level_order
from continuous as c
inner join orders as o on c.characteristic = o.characteristic
union all
select
    c.cohort,
    c.stratum,
    c.characteristic,
    c.level,
    c.n,
    case
        when c.participants > 0
            then cast(
                cast((2000 * c.n + c.participants) // (2 * c.participants) as decimal(18, 1)) / 10 as decimal(4, 1)
            )
    end as pct,
    null as mean,
    null as sd,
    o.characteristic_order,
    c.level_order
from categorical as c
inner join orders as o on c.characteristic = o.characteristic
