"""What the receiver's endpoints are handed by whoever builds the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from adapters.queue.broker import SessionEvents
from config import Settings
from receiver.metrics import Metrics
from usecases.audit import decision_totals
from usecases.deps import Deps


@dataclass
class Services:
    deps: Deps
    events: SessionEvents
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(partial(decision_totals, self.deps.db))

    @property
    def settings(self) -> Settings:
        return self.deps.settings
