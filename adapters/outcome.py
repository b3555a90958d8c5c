"""A decision's writes besides its audit row, ending with the audit chain's lock and head.

On PostgreSQL they are one statement: the attempt's new status, and for an approval the reset
token and the outgoing mail, as data-modifying CTEs of the chain-head query. Each statement is a
network round trip and a good share of a worker's CPU, and these writes need no answer, so one
round trip does for what took five. SQLite (no data-modifying CTEs, no network) runs them one by
one; there, the transaction's BEGIN IMMEDIATE already holds the chain's lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, update

from adapters.audit_log import LOCKED_HEAD, ChainHead, head_of, locked_head
from adapters.models import OutgoingMail, RecoveryAttempt, ResetToken
from adapters.outbox import Reset, insert_reset

_ATTEMPTS: Table = RecoveryAttempt.__table__  # type: ignore[assignment]
_TOKENS: Table = ResetToken.__table__  # type: ignore[assignment]
_MAIL: Table = OutgoingMail.__table__  # type: ignore[assignment]


def _inserting(table: Table, prefix: str) -> Any:
    """An INSERT of every column from parameters named `<prefix><column>` (no name a column has), for
    the one statement on PostgreSQL, whose CTEs share one parameter namespace."""
    return insert(table).values({column.key: bindparam(prefix + column.key) for column in table.columns})


# Built once: constructing a statement costs more CPU than its cached compilation.
_SET_STATUS = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == bindparam("attempt_key"))
    .values(status=bindparam("attempt_status"), decided_at=bindparam("attempt_decided_at"))
)
_INSERT_TOKEN = _inserting(_TOKENS, "token_")
_INSERT_MAIL = _inserting(_MAIL, "mail_")
_DENY = LOCKED_HEAD.add_cte(_SET_STATUS.cte("set_status"))
_APPROVE = LOCKED_HEAD.add_cte(
    _SET_STATUS.cte("set_status"), _INSERT_TOKEN.cte("new_token"), _INSERT_MAIL.cte("new_mail")
)


def write_outcome(db: Connection, attempt_id: str, status: str, now: datetime, reset: Reset | None) -> ChainHead:
    """Inside the decision's transaction. Returns the chain's head, read under the chain lock that is
    now held to the commit: the audit row (audit_log.append with `head=`) is the last write."""
    status_params = {"attempt_key": attempt_id, "attempt_status": status, "attempt_decided_at": now}
    if db.dialect.name != "postgresql":
        db.execute(_SET_STATUS, status_params)
        if reset is not None:
            insert_reset(db, reset)
        return locked_head(db)
    if reset is None:
        return head_of(db.execute(_DENY, status_params).first())
    params = status_params | _prefixed("token_", reset.token_row) | _prefixed("mail_", reset.mail_row)
    return head_of(db.execute(_APPROVE, params).first())


def _prefixed(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    return {prefix + key: value for key, value in row.items()}
