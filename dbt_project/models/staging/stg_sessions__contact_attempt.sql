-- Session-log `contact_attempt` events, typed, cut as of the build.
{{ stg_session_events('contact_attempt') }}
