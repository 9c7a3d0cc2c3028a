-- Units and distinct participants per code, by arm, sex, race, drug class and
-- homelessness of the participant each published unit is attributed to.
with units as (
    select * from {{ ref('int_coded_units_published') }}
    where record_id is not null
),

people as (
    select record_id, rand_arm, is_randomized, sex, race, drug_class, homeless
    from {{ ref('int_participants_projected') }}
),

attributes as (
    select record_id, 'arm' as attribute, case when is_randomized then rand_arm end as value from people
    union all
    select record_id, 'sex' as attribute, sex as value from people
    union all
    select record_id, 'race' as attribute, race as value from people
    union all
    select record_id, 'drug_class' as attribute, drug_class as value from people
    union all
    select record_id, 'homeless' as attribute, homeless as value from people
)

select
    u.code_path,
    a.attribute,
    coalesce(a.value, 'Missing') as value,
    count(*) as units,
    count(distinct u.record_id) as participants
from units as u
inner join attributes as a on u.record_id = a.record_id
group by u.code_path, a.attribute, coalesce(a.value, 'Missing')
