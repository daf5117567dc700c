"""Schemathesis against the agent's own OpenAPI document, with and without the token.

The agent runs as a real process in front of the simulated LLM server (so the proxy routes reach
a real upstream), its gate falling back open. Every operation of the document the agent serves
gets schema-valid (positive) and schema-violating (negative) requests generated from the
document; each response is checked by schemathesis (no 5xx, documented status, content type,
headers and body schema; invalid requests refused, valid ones accepted, unsupported methods
answered 405) and, without the token, every route but health must answer 401. `/api/v1/events`
is a never-ending stream, so it is checked by hand instead of fuzzed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests  # type: ignore[import-untyped]
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from joulegate_agent.api.routes_core import openapi_document
from tests.reliability.conftest import Processes
from tests.reliability.harness import (
    AgentProcess,
    agent_process,
    simulator_process,
    upstream_url,
)

EXAMPLES = int(os.environ.get("JOULEGATE_FUZZ_EXAMPLES", "40"))
"""Generated cases per operation, mode (positive/negative) and auth (with/without token)."""
RANDOM = os.environ.get("JOULEGATE_FUZZ_RANDOM") == "1"
"""Fresh random cases each run (a longer hunt); by default the same cases every run."""
MIN_REQUESTS = 1000
HEALTH = "/api/v1/health"
NOT_FUZZED = {"streamEvents"}
CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    missing_required_header,
    unsupported_method,
]


@dataclass
class Tally:
    requests: int = 0
    by_run: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    unsatisfiable: list[str] = field(default_factory=list)

    def fail(self, key: str, detail: str) -> None:
        self.failures.setdefault(key, detail[:2000])


def ok(result: Ok[Any] | Err[Any]) -> Any:
    assert isinstance(result, Ok), result  # the document itself is valid
    return result.ok()


def open_gate(agent: AgentProcess, session: requests.Session) -> None:
    """A day-long open lease, so that proxied cases reach the upstream whatever ran before."""
    response = session.put(
        agent.url + "/api/v1/gate",
        json={"open": True, "lease_s": 86400, "reason": "fuzzing"},
        headers=agent.headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    with_token: bool,
    session: requests.Session,
    tally: Tally,
) -> None:
    run = f"{operation.label} {mode.value} {'with' if with_token else 'without'} token"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        response = case.call(session=session, timeout=15)
        tally.requests += 1
        tally.by_run[run] += 1
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as err:  # FailureGroup is a BaseExceptionGroup: collected
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            for failure in getattr(err, "exceptions", [err]):
                title = getattr(failure, "title", type(failure).__name__)
                tally.fail(
                    f"{run}: {title}",
                    f"{failure}\n{response.status_code} {response.text[:300]}\n"
                    f"{case.as_curl_command()}",
                )
        if not with_token and case.path != HEALTH and response.status_code != 401:
            tally.fail(f"{run}: no 401", f"{response.status_code} {case.as_curl_command()}")

    try:
        one()
    except Unsatisfiable:
        tally.unsatisfiable.append(run)  # e.g. no negative request exists for a bare GET


def test_schemathesis_against_the_openapi_document(tmp_path: Path, processes: Processes) -> None:
    llm = processes.add(simulator_process(tmp_path, tokens_per_s=0))
    llm.start()
    agent = processes.add(
        agent_process(
            tmp_path,
            upstream=upstream_url(llm),
            extra=("--gate-fallback-open", "--sample-rate", "50"),
        )
    )
    agent.start()
    tally = Tally()
    with requests.Session() as session:
        served = session.get(agent.url + "/api/v1/openapi.json", headers=agent.headers, timeout=10)
        document = served.json()
        assert document == openapi_document()
        for with_token in (True, False):
            schema = schemathesis.openapi.from_dict(json.loads(json.dumps(document)))
            schema.config.update(base_url=agent.url, headers=agent.headers if with_token else None)
            operations = [ok(result) for result in schema.get_all_operations()]
            # putGate last: it may close the gate for a day-long lease.
            operations.sort(key=lambda op: op.definition.raw.get("operationId") == "putGate")
            for operation in operations:
                if operation.definition.raw.get("operationId") in NOT_FUZZED:
                    continue
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    open_gate(agent, session)
                    fuzz_operation(operation, mode, with_token, session, tally)
        check_event_stream(agent, session)
        assert session.get(agent.url + HEALTH, timeout=5).status_code == 200

    assert not tally.failures, "\n\n".join(f"{k}\n{v}" for k, v in tally.failures.items())
    assert tally.requests >= MIN_REQUESTS, tally
    assert not [code for code in tally.statuses if code >= 500], tally.statuses
    assert "Traceback" not in agent.log_tail(100_000), agent.log_tail()
    print(
        f"\nschemathesis: {tally.requests} requests over {len(tally.by_run)} runs "
        f"(operation x positive/negative x with/without token), 0 failures, statuses "
        f"{dict(sorted(tally.statuses.items()))}; no negative case exists for "
        f"{len(tally.unsatisfiable)} runs (bare GETs)"
    )


def check_event_stream(agent: AgentProcess, session: requests.Session) -> None:
    url = agent.url + "/api/v1/events"
    assert session.get(url, timeout=5).status_code == 401
    with session.get(url, headers=agent.headers, stream=True, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        first = next(response.iter_lines())
        assert first == b"event: gate"
