"""The console in AWS: public GET methods on the same REST API, integrated with the queries
function (ferry.console serves the vendored files from the Lambda package), the API's own
origin — so no CORS, no second deployment, and the same WAF/throttling as the API."""

from __future__ import annotations

from infra.constructs.api import PUBLIC_ROUTES, QUERIES_HANDLER, ROUTES
from infra.constructs.code import LAMBDA_ASSET_EXCLUDE, RUNTIME_PACKAGES
from infra.constructs.functions import handler_string
from tests.infra.conftest import Synth
from tests.infra.test_resources import _paths, resources

PAGES = {
    ("GET", "/"),
    ("GET", "/console"),
    ("GET", "/console/{asset_name}"),
    ("GET", "/docs"),
    ("GET", "/docs/{asset_name}"),
    ("GET", "/swagger"),
}


def test_the_pages_are_public_gets_on_the_queries_function(synth: Synth) -> None:
    t = synth.template_json()
    paths = _paths(t)
    functions = {
        lid: r["Properties"].get("Handler")
        for lid, r in resources(t, "AWS::Lambda::Function").items()
    }
    found = {}
    for r in resources(t, "AWS::ApiGateway::Method").values():
        p = r["Properties"]
        path = paths[p["ResourceId"]["Ref"]] if "Ref" in p["ResourceId"] else "/"
        [handler] = [h for lid, h in functions.items() if lid in str(p["Integration"]["Uri"])]
        found[(p["HttpMethod"], path)] = (handler, p)
    assert set(found) >= PAGES
    assert PAGES <= PUBLIC_ROUTES and {(m, p) for m, p, _ in ROUTES} >= PAGES
    for page in PAGES:
        handler, props = found[page]
        assert handler == handler_string(QUERIES_HANDLER)
        assert props["ApiKeyRequired"] is False
        assert "method.request.header.x-api-key" not in (props.get("RequestParameters") or {})
    # every other method still needs a key
    for route, (_, props) in found.items():
        if route not in PAGES and route != ("GET", "/openapi.json"):
            assert props["ApiKeyRequired"] is True, route


def test_the_console_files_ship_in_the_lambda_package() -> None:
    assert "ferry" in RUNTIME_PACKAGES and "!ferry/**" in LAMBDA_ASSET_EXCLUDE
    assert not [p for p in LAMBDA_ASSET_EXCLUDE if "console" in p or p.endswith((".js", ".css"))]
