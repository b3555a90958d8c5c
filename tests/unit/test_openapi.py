"""The OpenAPI document: one operation per route and one route per operation, served as written,
valid OpenAPI 3.1, and rendered in docs/http-api.md as it stands."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
import schemathesis
from starlette.testclient import TestClient

from config import Settings
from domain.rules import REASONS
from receiver.app import create_app
from receiver.openapi import document, document_operations, route_operations, with_reference
from tests.fakes import make_services

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(make_services(Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite"))))


def skeleton(method: str, path: str) -> str:
    """What to paste into receiver/openapi.yaml for a route that has no operation yet."""
    return (
        f"  {path}:\n    {method.lower()}:\n      operationId: ...\n      tags: [...]\n      summary: ...\n"
        f'      responses:\n        "200":\n          description: ...\n'
    )


def test_every_route_has_an_operation_and_every_operation_a_route(client: TestClient) -> None:
    routes = route_operations(client.app.routes)  # type: ignore[attr-defined]
    documented = document_operations(document())
    undocumented = sorted(routes - documented)
    assert not undocumented, "routes without an operation in receiver/openapi.yaml; add:\n" + "".join(
        skeleton(method, path) for method, path in undocumented
    )
    assert not documented - routes, f"operations in receiver/openapi.yaml with no route: {sorted(documented - routes)}"


def test_the_coverage_check_sees_a_route_the_document_lacks(client: TestClient) -> None:
    from starlette.routing import Route

    extra = Route("/audit/nowhere/{id}", lambda request: None, methods=["GET"])
    routes = route_operations([*client.app.routes, extra])  # type: ignore[attr-defined]
    assert routes - document_operations(document()) == {("GET", "/audit/nowhere/{}")}


def test_the_served_document_is_valid_openapi_3_1_with_the_code_s_values(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    served = response.json()
    assert served == document() and served["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(served).validate()
    assert served["info"]["version"] == version("facesign-recovery")
    assert served["components"]["schemas"]["Reason"]["enum"] == list(REASONS)


def test_the_webhook_operation_documents_its_signature_header() -> None:
    operation = document()["paths"]["/webhooks/facesign"]["post"]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == "X-FaceSign-Signature" and header["required"] is True
    assert {"200", "400", "401", "413", "503"} <= set(operation["responses"])


def test_the_audit_api_documents_filters_cursor_and_csv() -> None:
    operation = document()["paths"]["/audit/decisions"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"since", "until", "outcome", "reason", "sessionId", "attemptId", "limit", "cursor"}
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert operation["security"] == [{"auditorToken": []}]


def test_docs_page_shows_the_document_as_it_stands() -> None:
    page = (ROOT / "docs" / "http-api.md").read_text(encoding="utf-8")
    assert with_reference(page, document()) == page, (
        "docs/http-api.md is out of date: run `.venv/bin/python -m receiver.openapi docs/http-api.md`"
    )
