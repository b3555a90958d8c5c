"""FLOW_FILE: the operator's prompts (or a whole flow) for the FaceSign session, checked at start-up."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config import ConfigError
from domain.flow import DEFAULT_PROMPTS, Flow, FlowError, build_recovery_flow, validate_flow

MAX_PROMPT_CHARS = 2000
MAX_FILE_BYTES = 1_000_000


def load_flow(path: str | None) -> Flow:
    """The built-in flow, with the prompts of FLOW_FILE when it is set.

    The file is a JSON object: `{"prompts": {"<node id>": "<prompt>", ...}}` replaces the prompts of
    the built-in flow's conversation nodes (greeting, confirm_identity, not_found, closing);
    `{"flow": [...]}` replaces the whole flow, which must still pass the validator.
    Raises ConfigError naming FLOW_FILE and, where it is one node's fault, that node.
    """
    if path is None:
        flow = build_recovery_flow()
        validate_flow(flow)
        return flow
    document = _read(Path(path))
    try:
        return parse_flow_document(document)
    except FlowError as exc:
        raise ConfigError(f"FLOW_FILE: {path}: {exc}") from None


def parse_flow_document(document: Any) -> Flow:
    if not isinstance(document, Mapping) or set(document) - {"prompts", "flow"} or len(document) != 1:
        raise FlowError('the file must be a JSON object with exactly one key, "prompts" or "flow"')
    if "flow" in document:
        flow = document["flow"]
        if not isinstance(flow, list) or not all(isinstance(node, Mapping) for node in flow):
            raise FlowError('"flow" must be a list of node objects')
        validate_flow(flow)
        return [dict(node) for node in flow]
    prompts = document["prompts"]
    if not isinstance(prompts, Mapping):
        raise FlowError('"prompts" must map node ids to prompt text')
    for node_id, prompt in prompts.items():
        if node_id not in DEFAULT_PROMPTS:
            raise FlowError(f"node {node_id!r}: no such prompt node (the flow has {', '.join(DEFAULT_PROMPTS)})")
        if not isinstance(prompt, str) or not prompt.strip():
            raise FlowError(f"node {node_id!r}: the prompt must be non-empty text")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise FlowError(f"node {node_id!r}: the prompt is longer than {MAX_PROMPT_CHARS} characters")
    flow = build_recovery_flow({key: value.strip() for key, value in prompts.items()})
    validate_flow(flow)
    return flow


def _read(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"FLOW_FILE: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"FLOW_FILE: {path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"FLOW_FILE: {path}: not valid JSON ({exc})") from None
