"""The API's contract: every documented route answers as documented, and only with the token."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.api.routes_core import openapi_document
from tests.agent.helpers import auth

DOCUMENT = openapi_document()
OPERATIONS = [
    (path, method)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method in ("get", "put", "post", "delete", "patch")
]
PLAIN_GETS = [
    path
    for path, method in OPERATIONS
    if method == "get"
    and "{" not in path
    and "text/event-stream" not in json.dumps(DOCUMENT["paths"][path]["get"]["responses"])
]


def validate(body: Any, schema: dict[str, Any]) -> None:
    jsonschema.validate(body, {**schema, "components": DOCUMENT["components"]})


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    response = DOCUMENT["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def test_document_is_a_valid_openapi_3_1_document() -> None:
    assert DOCUMENT["openapi"].startswith("3.1")
    jsonschema.Draft202012Validator.check_schema({"components": DOCUMENT["components"]})


def test_document_in_the_repository_is_the_one_served(api: TestClient[Any, Any]) -> None:
    assert DOCUMENT["info"]["title"] == "Joulegate agent API"


@pytest.mark.parametrize("path", PLAIN_GETS)
async def test_every_documented_get_route_answers_with_its_documented_schema(
    api: TestClient[Any, Any], agent: Agent, path: str
) -> None:
    response = await api.get(path, headers=auth(agent))
    assert response.status == 200
    validate(await response.json(), response_schema(path, "get", 200))


@pytest.mark.parametrize(("path", "method"), [op for op in OPERATIONS if op[0] != "/api/v1/health"])
async def test_every_route_but_health_refuses_a_request_without_the_token(
    api: TestClient[Any, Any], path: str, method: str
) -> None:
    response = await api.request(method.upper(), path.replace("{window_id}", "w1"))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    validate(await response.json(), {"$ref": "#/components/schemas/Error"})


@pytest.mark.parametrize(("path", "method"), [op for op in OPERATIONS if op[0] != "/api/v1/health"])
async def test_every_route_but_health_refuses_a_wrong_token(
    api: TestClient[Any, Any], path: str, method: str
) -> None:
    headers = {"Authorization": "Bearer not-the-token"}
    response = await api.request(method.upper(), path.replace("{window_id}", "w1"), headers=headers)
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_token"


async def test_health_needs_no_token_and_names_the_service(api: TestClient[Any, Any]) -> None:
    response = await api.get("/api/v1/health")
    assert response.status == 200
    assert (await response.json())["service"] == "joulegate-agent"


async def test_a_token_sent_with_another_scheme_is_refused(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    response = await api.get("/api/v1/status", headers={"Authorization": f"Basic {agent.token}"})
    assert response.status == 401


async def test_unknown_route_gives_json_404(api: TestClient[Any, Any], agent: Agent) -> None:
    response = await api.get("/api/v1/nope", headers=auth(agent))
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


async def test_wrong_method_gives_json_405(api: TestClient[Any, Any], agent: Agent) -> None:
    response = await api.delete("/api/v1/status", headers=auth(agent))
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"


async def test_status_reports_the_simulated_board_drawing_idle_power(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    body = await (await api.get("/api/v1/status", headers=auth(agent))).json()
    assert 3.5 < body["power"]["board_w"] < 6.0
    assert body["power"]["boundary"] == "module input rail (VDD_IN)"
    assert body["power"]["rails"][0]["name"] == "VDD_IN"


async def test_info_names_the_device_board_and_whole_board_rail(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    body = await (await api.get("/api/v1/info", headers=auth(agent))).json()
    assert body["device_id"] == agent.device_id
    assert body["board"]["simulated"] is True
    assert body["board"]["power_modes"] is False
    whole = [r["name"] for s in body["sources"] for r in s["rails"] if r["whole_board"]]
    assert whole == ["VDD_IN"]


async def test_info_states_each_sources_resolution(api: TestClient[Any, Any], agent: Agent) -> None:
    body = await (await api.get("/api/v1/info", headers=auth(agent))).json()
    assert [s["resolution_s"] for s in body["sources"]] == [0.0]  # simulated: every read
    assert "energy_error" in body["features"]
