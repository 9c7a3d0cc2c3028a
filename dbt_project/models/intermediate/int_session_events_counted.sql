-- The session-log events every participant-level table counts: the valid
-- events of participants who have not withdrawn all data. Duplicated event
-- ids are already held once by the event store.
select * exclude (is_erased)
from {{ ref('int_session_events_valid') }}
where not is_erased
