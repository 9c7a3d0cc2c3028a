-- Session-log `session_missed` events, typed, cut as of the build.
{{ stg_session_events('session_missed') }}
