"""House rule 1: the gateway never imports torch, OpenCV or a worker package."""

from __future__ import annotations

import re
import subprocess
import sys

from testbed.stack import ROOT


def test_importing_the_gateway_app_does_not_import_torch():
    code = (
        "import sys\n"
        "from gateway.app import create_app\n"
        "from gateway.settings import GatewaySettings\n"
        "app = create_app(GatewaySettings(redis_url='redis://127.0.0.1:1/0'))\n"
        "bad = sorted(m for m in ('torch', 'cv2', 'gfpgan', 'basicsr', 'facexlib', 'realesrgan',"
        " 'services.enhance') if m in sys.modules)\n"
        "assert not bad, bad\n"
        "print(len(app.url_map._rules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 5


def test_openapi_spec_documents_every_v1_route():
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    app = create_app(GatewaySettings(redis_url="redis://127.0.0.1:1/0"))
    spec = app.test_client().get("/api/openapi.json").json
    v1_rules = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule) for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1/")
    }
    documented = set(spec["paths"])
    assert v1_rules <= documented, v1_rules - documented
    # Every method of every rule too: two blueprints may share a path (GET and POST /videos).
    routed = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule), m.lower())
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/api/v1/")
        for m in r.methods - {"HEAD", "OPTIONS"}
    }
    listed = {(path, m) for path, ops in spec["paths"].items() for m in ops}
    assert routed <= listed, routed - listed
    # Every v1 operation declares the bearer scheme, except the camera webhook, which
    # cameras call with their own credential (HMAC signature or token).
    for path, ops in spec["paths"].items():
        if path.startswith("/api/v1/") and path != "/api/v1/camera/{camera_id}/events":
            for op in ops.values():
                assert op.get("security") == [{"bearer": []}], (path, op.get("security"))


def test_request_models_build_their_schema_once_and_hand_out_copies():
    """flask-openapi3 reads a query/form model's schema on every request."""
    from pydantic import BaseModel

    from gateway.api.jobs import JobQuery
    from gateway.api.models import _SCHEMAS

    fresh = BaseModel.model_json_schema.__func__(JobQuery)
    first = JobQuery.model_json_schema()
    cached = len(_SCHEMAS)
    assert first == fresh
    first["properties"]["wait"]["maximum"] = 1  # a caller that edits its copy
    assert JobQuery.model_json_schema() == fresh
    assert len(_SCHEMAS) == cached  # the second call built nothing
    # Other arguments, another schema.
    assert JobQuery.model_json_schema(mode="serialization") == BaseModel.model_json_schema.__func__(
        JobQuery, mode="serialization"
    )


def test_every_form_model_caches_its_schema():
    """Form models are read on every upload: each is a RequestModel (the single-photo
    form was not, so the single-job path built its schema per request)."""
    import importlib
    import pkgutil

    import gateway.api
    from gateway.api.models import RequestModel
    from gateway.errors import _FORM_MODELS

    for m in pkgutil.iter_modules(gateway.api.__path__):
        importlib.import_module(f"gateway.api.{m.name}")
    assert {"EnhanceForm", "EnhanceBatchForm", "ItemsForm", "VideoForm"} <= set(_FORM_MODELS)
    assert [n for n, m in _FORM_MODELS.items() if not issubclass(m, RequestModel)] == []
