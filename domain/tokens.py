"""Bearer secrets we hand out (reset tokens, auditor tokens): only their SHA-256 is ever stored."""

from __future__ import annotations

import hashlib


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
