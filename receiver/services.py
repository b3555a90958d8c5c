"""What the receiver's endpoints are handed by whoever builds the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from adapters.queue.app_events import EventDeliveries
from adapters.queue.broker import SessionEvents
from config import Settings
from receiver.metrics import Metrics
from usecases.app_events import stats as event_stats
from usecases.audit import decision_totals
from usecases.deps import Deps


@dataclass
class Services:
    deps: Deps
    events: SessionEvents
    metrics: Metrics = field(init=False)
    event_deliveries: EventDeliveries | None = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(partial(decision_totals, self.deps.db), partial(event_stats, self.deps))
        broker = getattr(self.events, "broker", None)
        self.event_deliveries = EventDeliveries(broker) if broker is not None else None

    @property
    def settings(self) -> Settings:
        return self.deps.settings
