-- Session-log `treatment_admitted` events, typed, cut as of the build.
{{ stg_session_events('treatment_admitted') }}
