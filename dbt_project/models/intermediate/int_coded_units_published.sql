-- The coded units that may be published: consent (rule 3) and identifier
-- screening (rule 4) both allow it.
select *
from {{ ref('int_coded_units_resolved') }}
where excluded_because is null
