{{ config(materialized='view') }}
-- One row per working-alliance survey present now, scored (int_alliance_surveys_state);
-- a row with no item answered is not a survey.
select * exclude (last_seq)
from {{ ref('int_alliance_surveys_state') }}
where instrument is not null and items_answered > 0
