"""The queues and actors by name: the broker, the workers and the CLI all read them from here."""

from __future__ import annotations

SESSIONS_QUEUE = "sessions"
MAIL_QUEUE = "mail"
APP_EVENTS_QUEUE = "app_events"
QUEUES = (SESSIONS_QUEUE, MAIL_QUEUE, APP_EVENTS_QUEUE)
PROCESS_ACTOR = "process_session_event"
MAIL_ACTOR = "send_reset_email"
APP_EVENT_ACTOR = "deliver_app_event"
NAMESPACE = "facesign-recovery"
