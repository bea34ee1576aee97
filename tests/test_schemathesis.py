"""Schemathesis (4.x) against the app's own OpenAPI schema, in-process over ASGI, with the real model.

Every generated request (valid and invalid, per the schema) must get a non-5xx answer whose status code, content
type and body conform to what the schema declares. Bounded examples per operation keep it to well under a minute.

The schema is loaded at import from an app built without a model (generating OpenAPI needs none); a module fixture
then hands that app the session's real predictor. (`schemathesis.pytest.from_fixture` would be the lazy way, but
schemathesis 4.32 reads `node._nodeid`, which pytest 9 no longer has.)
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from api.app import create_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The beeswarm over the training sample and the budget planner are the slow operations: fewer examples there.
SLOW = {"/plots/importance.png": 3, "/plan": 8, "/batch": 10}
MAX_EXAMPLES = 25

APP = create_app(predictor=None)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _serve_the_real_model(predictor):
    APP.state.predictor, APP.state.load_error = predictor, None
    yield
    APP.state.predictor = None


_seen: dict[tuple[str, str], int] = {}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_response_conforms_and_no_5xx(case):
    key = (case.operation.method, case.operation.path)
    _seen[key] = _seen.get(key, 0) + 1
    if _seen[key] > SLOW.get(case.operation.path, 10 ** 9):
        return  # bound the slow operations to their first few generated cases
    case.call_and_validate(checks=CHECKS)
