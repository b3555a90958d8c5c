"""The one module that sets Dramatiq's global broker; every actor module imports it first.

`@dramatiq.actor` binds to whatever broker is global when it runs, so the choice must be
made here, at import, before any actor is declared (the project's one deliberate piece of
import-time work).
"""

from __future__ import annotations

import os

import dramatiq

from adapters.broker import build_broker

broker = build_broker(os.environ.get("REDIS_URL") or None, worker=True)
dramatiq.set_broker(broker)
