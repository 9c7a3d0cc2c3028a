-- Session-log `session_scheduled` events, typed, cut as of the build.
{{ stg_session_events('session_scheduled') }}
