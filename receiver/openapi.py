"""`GET /openapi.json`: the checked-in `openapi.yaml` with what only the code knows filled in.

The document is written by hand next to the routes and held to them by a test (every route has an
operation, every operation a route). The enums of decision outcomes and reasons and the version come
from the code, so that they cannot drift. `python -m receiver.openapi docs/http-api.md` rewrites the
rendered reference in that page.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from domain.rules import APPROVED, DENIED, REASONS

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
BEGIN = "<!-- BEGIN GENERATED: openapi (python -m receiver.openapi docs/http-api.md) -->"
END = "<!-- END GENERATED: openapi -->"


def package_version() -> str:
    try:
        return version("facesign-recovery")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


@cache
def _document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(files("receiver").joinpath("openapi.yaml").read_text(encoding="utf-8"))
    doc["info"]["version"] = package_version()
    schemas = doc["components"]["schemas"]
    schemas["Outcome"] = {"enum": [APPROVED, DENIED]}
    schemas["Reason"] = {"enum": list(REASONS)}
    return doc


def document() -> dict[str, Any]:
    """The OpenAPI document (a copy: callers may change it)."""
    return copy.deepcopy(_document())


def openapi_endpoint() -> Any:
    body = json.dumps(_document(), separators=(",", ":")).encode()

    async def openapi(_: Request) -> Response:
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})

    return openapi


def template_of(path: str) -> str:
    """A path with its parameters' names dropped: `/recoveries/{attempt_id}` and `/recoveries/{id}` match."""
    return re.sub(r"\{[^}:]+(:[^}]+)?\}", "{}", path)


def route_operations(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route; HEAD is Starlette's automatic twin of GET."""
    found = set()
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, template_of(route.path)))
    return found


def document_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), template_of(path))
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    text = schema.get("type", "any")
    if isinstance(text, list):
        text = " or ".join(text)
    if "format" in schema:
        text += f" ({schema['format']})"
    if "minimum" in schema or "maximum" in schema:
        text += f" {schema.get('minimum', '')}..{schema.get('maximum', '')}"
    return str(text)


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        _, section, name = node["$ref"].lstrip("#/").split("/")
        node = doc["components"][section][name]
    return node


def _operation_lines(doc: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> Iterator[str]:
    yield f"#### `{method.upper()} {path}`"
    yield ""
    yield f"{op['summary']}{'' if op['summary'].endswith('.') else '.'}"
    if op.get("description"):
        yield ""
        yield op["description"]
    if op.get("security"):
        yield ""
        yield "Needs `Authorization: Bearer <auditor token>`."
    params = op.get("parameters", [])
    if params:
        yield ""
        yield "| parameter | in | type | meaning |"
        yield "|---|---|---|---|"
        for param in params:
            required = " (required)" if param.get("required") else ""
            meaning = " ".join(param.get("description", "").split())
            yield f"| `{param['name']}`{required} | {param['in']} | {_schema_text(param['schema'])} | {meaning} |"
    body = op.get("requestBody")
    if body:
        yield ""
        for media, content in body["content"].items():
            optional = "" if body.get("required") else " (optional)"
            yield f"Request body{optional}: `{media}`, {_schema_text(content['schema'])}."
    yield ""
    yield "| status | content | meaning |"
    yield "|---|---|---|"
    for status, response in op["responses"].items():
        response = _resolve(doc, response)
        media = ", ".join(f"`{m}` {_schema_text(c['schema'])}".rstrip() for m, c in response.get("content", {}).items())
        yield f"| {status} | {media or '-'} | {' '.join(response['description'].split())} |"
    yield ""


def _schema_lines(doc: dict[str, Any]) -> Iterator[str]:
    for name, schema in doc["components"]["schemas"].items():
        properties = schema.get("properties")
        if not properties:
            continue
        required = set(schema.get("required", ()))
        yield f"#### {name}"
        yield ""
        if schema.get("description"):
            yield " ".join(schema["description"].split())
            yield ""
        yield "| field | type | meaning |"
        yield "|---|---|---|"
        for field, spec in properties.items():
            mark = "" if field in required else " (optional)"
            meaning = " ".join(spec.get("description", "").split())
            kind = f"`{spec['const']}`" if "const" in spec else _schema_text(spec)
            yield f"| `{field}`{mark} | {kind} | {meaning} |"
        yield ""


def render_markdown(doc: dict[str, Any]) -> str:
    """The reference section of docs/http-api.md, generated from the document."""
    lines = [BEGIN, "", f"## Reference (OpenAPI {doc['openapi']}, served at `GET /openapi.json`)", ""]
    for tag in doc["tags"]:
        lines += [f"### {tag['name'].capitalize()}: {tag['description']}", ""]
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method in METHODS and op["tags"][0] == tag["name"]:
                    lines += _operation_lines(doc, path, method, op)
    lines += ["### Schemas", "", *_schema_lines(doc), END]
    return "\n".join(lines) + "\n"


def with_reference(page: str, doc: dict[str, Any]) -> str:
    """The page with its generated section replaced (appended when it has none)."""
    section = render_markdown(doc)
    if BEGIN in page and END in page:
        head, _, rest = page.partition(BEGIN)
        _, _, tail = rest.partition(END + "\n")
        return head + section + tail
    return page.rstrip("\n") + "\n\n" + section


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m receiver.openapi docs/http-api.md", file=sys.stderr)
        return 2
    page = Path(argv[0])
    page.write_text(with_reference(page.read_text(encoding="utf-8"), document()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
