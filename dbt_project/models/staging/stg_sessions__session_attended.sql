-- Session-log `session_attended` events, typed, cut as of the build.
{{ stg_session_events('session_attended') }}
