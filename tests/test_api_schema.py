"""Schemathesis against the app's own OpenAPI schema: no 5xx, and every answer matches its declared schema.

Bounded (a few dozen generated requests per operation) so it fits in `make test`; the importance plot is skipped
because it is one fixed, cached picture with no inputs to fuzz.
"""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,  # noqa: E402
                                               status_code_conformance)

CHECKS = (not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance)
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def schema(client):
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


def _operations(schema):
    return [r.ok() for r in schema.get_all_operations() if r.ok().path != "/plots/importance.png"]


def test_every_operation_is_fuzzed_without_5xx(schema):
    ops = _operations(schema)
    assert {op.path for op in ops} >= {"/predict", "/rank", "/curve", "/explain", "/plan", "/batch", "/languages"}
    problems = []
    for op in ops:
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def run(case):
            response = case.call()
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as e:  # collect every operation's failure, then report them together
            problems.append(f"{op.method.upper()} {op.path}: {str(e).splitlines()[:6]}")
    assert not problems, "\n".join(problems)
