-- Session-log `treatment_discharged` events, typed, cut as of the build.
{{ stg_session_events('treatment_discharged') }}
