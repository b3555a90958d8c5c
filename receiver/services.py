"""What the receiver's endpoints are handed by whoever builds the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapters.broker import SessionEvents
from adapters.db import session_factory
from adapters.facesign import FaceSignClient
from config import Settings
from receiver.metrics import Metrics


@dataclass
class Services:
    settings: Settings
    engine: Engine
    facesign: FaceSignClient
    events: SessionEvents
    flow: list[dict[str, Any]]
    metrics: Metrics = field(init=False)
    sessions: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.engine)
        self.sessions = session_factory(self.engine)
