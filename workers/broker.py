"""The one module that sets Dramatiq's global broker; every actor module imports it first.

`@dramatiq.actor` binds to whatever broker is global when it runs, so the choice must be
made here, at import, before any actor is declared (the project's one deliberate piece of
import-time work).
"""

from __future__ import annotations

import dramatiq

from adapters.queue.broker import broker_for
from config import Settings

broker = broker_for(Settings.from_env(), worker=True)
dramatiq.set_broker(broker)
