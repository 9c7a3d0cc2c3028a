-- Session-log `event_voided` events, typed, cut as of the build.
{{ stg_session_events('event_voided') }}
