-- Session-log `session_cancelled` events, typed, cut as of the build.
{{ stg_session_events('session_cancelled') }}
