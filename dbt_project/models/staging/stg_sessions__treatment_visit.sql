-- Session-log `treatment_visit` events, typed, cut as of the build.
{{ stg_session_events('treatment_visit') }}
