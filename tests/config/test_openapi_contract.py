"""/api/v1/openapi.json documents the contract of ARCHITECTURE.md: the shapes of ask and search,
the documents endpoints with their methods, the {"error"} answer of every refusal; and real
answers of the running API validate against what it documents."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

SCHEMA_URL = "/api/v1/openapi.json"
JSON = "application/json"

ASK_KEYS = {
    "answer",
    "citations",
    "status",
    "reasoning",
    "model",
    "route",
    "audit_id",
    "timings_ms",
}
CITATION_KEYS = {"marker", "chunk_id", "document_id", "document", "page", "quote", "verdict"}
TIMING_KEYS = {"retrieve", "llm", "total"}
RESULT_KEYS = {"rank", "chunk_id", "document_id", "document", "page", "score", "text", "section"}
DOCUMENT_OPERATIONS = {
    ("/api/v1/documents", "get"),
    ("/api/v1/documents", "post"),
    ("/api/v1/documents/bulk", "post"),
    ("/api/v1/documents/reindex-outdated", "post"),
    ("/api/v1/documents/{document_id}", "get"),
    ("/api/v1/documents/{document_id}", "delete"),
    ("/api/v1/documents/{document_id}/reindex", "post"),
    ("/api/v1/search", "post"),
}
METHODS = {"get", "post", "put", "patch", "delete"}


# --- reading the schema ---------------------------------------------------------------------


def resolve(spec: dict, schema: dict) -> dict:
    """``schema`` with its $ref followed (again and again) and a lone allOf unwrapped."""
    seen = set()
    while True:
        if "$ref" in schema:
            ref = schema["$ref"]
            assert ref.startswith("#/") and ref not in seen, ref
            seen.add(ref)
            target = spec
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = target
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
        else:
            return schema


def without_null(spec: dict, schema: dict) -> dict:
    """The non-null branch of an ``X | None`` (anyOf [X, null])."""
    schema = resolve(spec, schema)
    branches = [b for b in schema.get("anyOf", []) if resolve(spec, b).get("type") != "null"]
    return resolve(spec, branches[0]) if len(branches) == 1 else schema


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def response_schema(spec: dict, path: str, method: str, status: str) -> dict:
    response = spec["paths"][path][method]["responses"][status]
    return resolve(spec, response["content"][JSON]["schema"])


def object_keys(spec: dict, schema: dict) -> tuple[set[str], set[str]]:
    """(documented properties, required ones) of an object schema."""
    schema = without_null(spec, schema)
    assert schema.get("type") == "object", schema
    return set(schema.get("properties", {})), set(schema.get("required", []))


def property_schema(spec: dict, schema: dict, name: str) -> dict:
    return without_null(spec, without_null(spec, schema)["properties"][name])


# --- validating an instance (the subset of JSON Schema ninja writes) -------------------------

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def problems(spec: dict, schema: dict, value, where: str = "$") -> list[str]:
    """What in ``value`` does not fit ``schema`` (empty: it validates)."""
    schema = resolve(spec, schema)
    found: list[str] = []
    if "anyOf" in schema or "oneOf" in schema:
        branches = schema.get("anyOf") or schema.get("oneOf")
        if all(problems(spec, b, value, where) for b in branches):
            found.append(f"{where}: {json.dumps(value)[:60]} fits none of {branches}")
    for branch in schema.get("allOf", []):
        found += problems(spec, branch, value, where)
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(TYPES[k](value) for k in kinds):
            return [*found, f"{where}: {json.dumps(value)[:60]} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not one of {schema['enum']}")
    if isinstance(value, dict):
        missing = set(schema.get("required", [])) - set(value)
        if missing:
            found.append(f"{where}: missing {sorted(missing)}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                found += problems(spec, properties[key], item, f"{where}.{key}")
            elif extra is False:
                found.append(f"{where}: {key!r} is not documented")
            elif isinstance(extra, dict):
                found += problems(spec, extra, item, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            found += problems(spec, schema["items"], item, f"{where}[{n}]")
    return found


def assert_valid(spec: dict, path: str, method: str, response) -> dict:
    """The real ``response`` validates against what ``path``/``method`` documents for its
    status; its keys are a superset of the required ones."""
    status = str(response.status_code)
    assert status in spec["paths"][path][method]["responses"], (path, method, status)
    body = response.json()
    schema = response_schema(spec, path, method, status)
    assert problems(spec, schema, body) == []
    _, required = object_keys(spec, schema)
    assert set(body) >= required
    return body


# --- tests -----------------------------------------------------------------------------------


@pytest.fixture
def spec(client):
    response = client.get(SCHEMA_URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(JSON)
    return response.json()


def test_the_schema_is_openapi_and_the_docs_page_is_served(spec, client):
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"] == "1"
    assert client.get("/api/v1/docs").status_code == 200


def test_ask_documents_the_contract_shape(spec):
    ask = response_schema(spec, "/api/v1/ask", "post", "200")
    keys, required = object_keys(spec, ask)
    assert required >= ASK_KEYS and keys >= ASK_KEYS

    citations = property_schema(spec, ask, "citations")
    assert citations["type"] == "array"
    keys, required = object_keys(spec, citations["items"])
    assert required >= CITATION_KEYS
    assert property_schema(spec, citations["items"], "page")["type"] == "integer"

    keys, required = object_keys(spec, property_schema(spec, ask, "timings_ms"))
    assert required >= TIMING_KEYS

    body = resolve(spec, spec["paths"]["/api/v1/ask"]["post"]["requestBody"]["content"][JSON])
    keys, _ = object_keys(spec, body["schema"])
    assert {"question", "collection", "collections", "model", "stream"} <= keys


def test_search_documents_the_contract_shape(spec):
    search = response_schema(spec, "/api/v1/search", "post", "200")
    keys, required = object_keys(spec, search)
    assert required >= {"results", "latency_ms"}
    assert property_schema(spec, search, "latency_ms")["type"] == "number"

    results = property_schema(spec, search, "results")
    assert results["type"] == "array"
    keys, required = object_keys(spec, results["items"])
    assert required >= RESULT_KEYS
    section = property_schema(spec, results["items"], "section")
    assert section["type"] == "array" and resolve(spec, section["items"])["type"] == "string"

    request = spec["paths"]["/api/v1/search"]["post"]["requestBody"]["content"][JSON]
    keys, required = object_keys(spec, request["schema"])
    assert required == {"query"} and {"k", "collection", "collections"} <= keys
    k = property_schema(spec, request["schema"], "k")
    assert (k["type"], k["minimum"], k["maximum"]) == ("integer", 1, 1000)


def test_the_documents_endpoints_are_there_with_their_methods(spec):
    documented = {(path, method) for path, method, _ in operations(spec)}
    assert documented >= DOCUMENT_OPERATIONS
    # the upload is multipart, files under "file"
    upload = spec["paths"]["/api/v1/documents"]["post"]["requestBody"]["content"]
    form = resolve(spec, upload["multipart/form-data"]["schema"])
    assert {"file", "collection"} <= set(form["properties"])
    file = without_null(spec, form["properties"]["file"])
    assert file["type"] == "array" and resolve(spec, file["items"])["format"] == "binary"
    listed = {p["name"] for p in spec["paths"]["/api/v1/documents"]["get"]["parameters"]}
    assert listed >= {"collection", "status", "q", "page", "page_size"}
    keys, required = object_keys(
        spec, response_schema(spec, "/api/v1/documents/{document_id}", "get", "200")
    )
    assert required >= {"id", "name", "collection", "status", "progress", "pages", "error"}


def test_every_operation_documents_its_errors_as_error_objects(spec):
    count = 0
    for path, method, operation in operations(spec):
        for status in ("400", "401"):
            assert status in operation["responses"], (path, method, status)
            schema = response_schema(spec, path, method, status)
            keys, required = object_keys(spec, schema)
            assert required == {"error"}, (path, method, status)
            assert property_schema(spec, schema, "error")["type"] == "string"
        count += 1
    assert count >= len(DOCUMENT_OPERATIONS) + 3  # with ask, stop and feedback


@pytest.mark.django_db
class TestRealAnswersValidate:
    def test_search(self, spec, admin_client, handbook):
        response = admin_client.post(
            "/api/v1/search", {"query": "receipts deadline", "k": 3}, content_type=JSON
        )
        assert response.status_code == 200
        body = assert_valid(spec, "/api/v1/search", "post", response)
        assert body["results"] and set(body["results"][0]) >= RESULT_KEYS
        assert body["results"][0]["document"] == "handbook.pdf"

    def test_ask(self, spec, admin_client, handbook, fake_llm):
        fake_llm.default = "Receipts must be submitted within thirty days of travel [1]."
        response = admin_client.post(
            "/api/v1/ask", {"question": "When are receipts due?"}, content_type=JSON
        )
        assert response.status_code == 200
        body = assert_valid(spec, "/api/v1/ask", "post", response)
        assert set(body) >= ASK_KEYS and set(body["citations"][0]) >= CITATION_KEYS

    def test_keys_beyond_the_documented_shape_pass_through(
        self, admin_client, handbook, fake_llm, monkeypatch
    ):
        # a shape is only ever extended: a key the schema does not name yet reaches the client
        from assistant import selectors

        shaped = selectors.ask_json
        monkeypatch.setattr(
            selectors, "ask_json", lambda message: shaped(message) | {"extension": [1, 2]}
        )
        fake_llm.default = "Receipts must be submitted within thirty days of travel [1]."
        body = admin_client.post(
            "/api/v1/ask", {"question": "When are receipts due?"}, content_type=JSON
        ).json()
        assert body["extension"] == [1, 2]
        assert body["citations"][0]["chunk_id"]

    def test_documents(self, spec, admin_client, handbook, collection):
        listed = admin_client.get("/api/v1/documents")
        assert assert_valid(spec, "/api/v1/documents", "get", listed)["documents"]
        paged = admin_client.get("/api/v1/documents", {"page": 1, "page_size": 5})
        assert assert_valid(spec, "/api/v1/documents", "get", paged)["total"] == 1
        one = admin_client.get(f"/api/v1/documents/{handbook.pk}")
        assert_valid(spec, "/api/v1/documents/{document_id}", "get", one)

        upload = SimpleUploadedFile("memo.txt", b"Fire drill on Friday.")
        created = admin_client.post("/api/v1/documents", {"file": upload})
        assert created.status_code == 202
        (document,) = assert_valid(spec, "/api/v1/documents", "post", created)["documents"]
        bulk = admin_client.post(
            "/api/v1/documents/bulk",
            {"action": "delete", "ids": [document["id"], 999999]},
            content_type=JSON,
        )
        results = assert_valid(spec, "/api/v1/documents/bulk", "post", bulk)["results"]
        assert [r["ok"] for r in results] == [True, False]

    def test_refusals(self, spec, admin_client, staff_user):
        anonymous = Client().post("/api/v1/search", {"query": "x"}, content_type=JSON)
        assert anonymous.status_code == 401
        assert assert_valid(spec, "/api/v1/search", "post", anonymous) == {
            "error": "authentication required"
        }
        bad = admin_client.post("/api/v1/search", {"query": "x", "k": 0}, content_type=JSON)
        assert bad.status_code == 400
        assert '"k"' in assert_valid(spec, "/api/v1/search", "post", bad)["error"]
        staff = Client()
        staff.force_login(staff_user)
        refused = staff.delete("/api/v1/documents/1")
        assert refused.status_code == 403
        assert assert_valid(spec, "/api/v1/documents/{document_id}", "delete", refused) == {
            "error": "only admins may change documents"
        }
        missing = admin_client.get("/api/v1/documents/999999")
        assert missing.status_code == 404
        assert_valid(spec, "/api/v1/documents/{document_id}", "get", missing)


def test_the_validator_catches_what_does_not_fit(spec):
    """problems() is not vacuous: a search answer missing a key or with a wrong type fails."""
    schema = response_schema(spec, "/api/v1/search", "post", "200")
    result = {
        "rank": 1,
        "chunk_id": "c",
        "document_id": 1,
        "document": "d.pdf",
        "page": None,
        "score": 0.5,
        "text": "t",
        "section": [],
    }
    assert problems(spec, schema, {"results": [result], "latency_ms": 1.5}) == []
    assert problems(spec, schema, {"results": [result]})
    assert problems(spec, schema, {"results": [result | {"rank": "1"}], "latency_ms": 1})
    assert problems(spec, schema, {"results": [{**result, "section": [1]}], "latency_ms": 1})
