"""A decision's writes: the attempt's new status, for an approval the reset token and the outgoing
mail, and the audit row, all or nothing, and only while the attempt is still pending.

On PostgreSQL they are one statement, run outside a transaction (atomic on its own): the status
UPDATE, guarded by `status = 'pending'`, and the token and mail INSERTs are data-modifying CTEs,
and the audit row is inserted for the UPDATE's row, linked to the chain's head in the statement
itself (audit_log.linked_insert). The chain lock, which serialises every decision, is then held
for the statement's execution and commit only. Taken by one statement and released by a later
COMMIT, it was held across two round trips and the worker thread's waits for the GIL in between,
and it bounded the decisions per second of all workers together.

SQLite (no data-modifying CTEs, no network) runs the statements one by one in the caller's
transaction, whose BEGIN IMMEDIATE already holds the database's one write lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Table, bindparam, insert, literal_column, select, update

from adapters import audit_log
from adapters.attempts import PENDING
from adapters.models import OutgoingMail, RecoveryAttempt, ResetToken
from adapters.outbox import Reset, insert_reset

_ATTEMPTS: Table = RecoveryAttempt.__table__  # type: ignore[assignment]
_TOKENS: Table = ResetToken.__table__  # type: ignore[assignment]
_MAIL: Table = OutgoingMail.__table__  # type: ignore[assignment]

# Built once: constructing a statement costs more CPU than its cached compilation.
_SET_STATUS = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == bindparam("attempt_key"), _ATTEMPTS.c.status == PENDING)
    .values(status=bindparam("attempt_status"), decided_at=bindparam("attempt_decided_at"))
)


def _one_statement(approve: bool) -> Any:
    set_status = _SET_STATUS.returning(literal_column(str(audit_log.CHAIN_LOCK_KEY), BigInteger).label("lock_key")).cte(
        "set_status"
    )
    ctes = [set_status]
    if approve:  # one row each, for the status UPDATE's one row (none when the attempt was decided)
        for table, prefix in ((_TOKENS, "token_"), (_MAIL, "mail_")):
            values = select(*(bindparam(prefix + c.key, type_=c.type) for c in table.columns)).select_from(set_status)
            ctes.append(insert(table).from_select([c.key for c in table.columns], values).cte(f"new_{table.name}"))
    return audit_log.linked_insert(set_status, "audit_").add_cte(*ctes)


_DENY, _APPROVE = _one_statement(approve=False), _one_statement(approve=True)


def write_decision(
    db: Connection, attempt_id: str, status: str, now: datetime, reset: Reset | None, audit: dict[str, Any]
) -> bool:
    """Write it all unless the attempt is no longer pending. `audit`: audit_log.new_row()'s values.
    False when another decision came first (and nothing was written).

    On PostgreSQL, `db` is outside a transaction (adapters.db.autocommit); on SQLite, inside one.
    """
    status_params = {"attempt_key": attempt_id, "attempt_status": status, "attempt_decided_at": now}
    if db.dialect.name != "postgresql":
        if not db.execute(_SET_STATUS, status_params).rowcount:  # type: ignore[attr-defined]
            return False
        if reset is not None:
            insert_reset(db, reset)
        audit_log.insert_linked(db, audit, audit_log.locked_head(db))
        return True
    params = status_params | _prefixed("audit_", audit) | audit_log.chain_parameters(audit)
    if reset is not None:
        params |= _prefixed("token_", reset.token_row) | _prefixed("mail_", reset.mail_row)
    return db.execute(_APPROVE if reset is not None else _DENY, params).first() is not None


def _prefixed(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    return {prefix + key: value for key, value in row.items()}
