-- One row per participant and respondent with at least one survey that has a
-- total: first and last totals in session order, and the least-squares slope
-- of total on session number (null with fewer than two distinct sessions).
with scored as (
    select * from {{ ref('alliance_scores') }}
    where total is not null
)

select
    participant_key,
    respondent,
    count(*) as surveys,
    arg_min(total, (session_number, surveyed_on)) as first_total,
    arg_max(total, (session_number, surveyed_on)) as last_total,
    -- in a fixed order: floating-point sums then give the same bits however the rows are stored
    case
        when count(distinct session_number) >= 2
            then regr_slope(total, session_number order by session_number, total)
    end as slope_per_session
from scored
group by participant_key, respondent
