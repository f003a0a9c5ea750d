"""The JSON API under /api/v1/ (django-ninja): the routers of `assistant.api` and `ingest.api`,
one authentication, one error shape, an OpenAPI schema at /api/v1/openapi.json and interactive
docs at /api/v1/docs. The OpenAI-compatible endpoint is a second API at /v1/ (`openai_api`),
with OpenAI's error shape and bearer tokens only.

Every error under /api/ is ``{"error": "..."}`` (config.middleware covers what never reaches an
operation: unknown paths, wrong methods, 413, 500s). A request that does not validate is a 400
whose message names the field and what it must be (each field's description says it), never
ninja's 422: scripts rely on the 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.renderers import JSONRenderer
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf
from pydantic import BaseModel, ConfigDict

from accounts import roles
from config.middleware import api_error, openai_error

MAX_ID = 2**63 - 1  # a bigint primary key


class OpenShape(BaseModel):
    """A response shape whose extra keys pass through: a shape is only ever extended
    (ARCHITECTURE.md's contract). A plain pydantic model: ninja's Schema reads a dict through
    its DjangoGetter, which drops the keys a shape does not name."""

    model_config = ConfigDict(extra="allow")


class ErrorOut(Schema):
    error: str


# The error statuses an operation documents (its refusals are all ErrorOut).
ERRORS = {code: ErrorOut for code in (400, 401, 403, 404)}


# --- authentication: a bearer token or the session, then the role ------------------------------


class Refused(Exception):
    """Answer ``response`` as it is (the JSON CSRF refusal of config.middleware.csrf_failure)."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


class _Role:
    def __init__(self, check: Callable, refusal: str) -> None:
        self.check, self.refusal = check, refusal

    def user(self, request: HttpRequest):
        """The signed-in user if their role allows it; None (401) when nobody is signed in."""
        user = request.user
        if not user.is_authenticated:
            return None
        if not self.check(user):
            raise HttpError(403, self.refusal)
        return user


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>` (an API token, see `manage.py users token`).
    accounts.middleware.ApiTokenMiddleware has checked the token already (a bad one is a 401
    before any view) and signed its user in, with CSRF checks off: here only the role."""

    def __init__(self, role: _Role) -> None:
        self.role = role
        super().__init__()

    def authenticate(self, request: HttpRequest, token: str):
        return self.role.user(request)


class Session(APIKeyCookie):
    """The browser's session cookie; a request that changes something must carry the
    X-CSRFToken header, as everywhere on the site."""

    def __init__(self, role: _Role) -> None:
        self.role = role
        self.param_name = settings.SESSION_COOKIE_NAME
        super().__init__(csrf=True)

    def _get_key(self, request: HttpRequest) -> str | None:
        # Django's own check, answered by settings.CSRF_FAILURE_VIEW (JSON under /api/),
        # instead of ninja's bare "CSRF check Failed"
        if refusal := check_csrf(request):
            raise Refused(refusal)
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None):
        return self.role.user(request)


def requires(check: Callable, what: str = "", *, refusal: str = "") -> list:
    """An operation's `auth=`: a bearer token or the session (401 without either), then the
    role check of accounts.roles (403 with ``refusal``, by default the words of
    `roles.api_requires`). Both run before the body is read, so a refusal comes first and
    says nothing about the request."""
    role = _Role(check, refusal or f"your role does not allow {what}")
    return [BearerToken(role), Session(role)]


def any_role(user) -> bool:
    """Signed in with any role at all: reading what one may read."""
    return bool(roles.roles_of(user))


# --- parsing and rendering -----------------------------------------------------------------


class BodyNotJson(ValueError):
    pass


class _JsonParser(Parser):
    def parse_body(self, request: HttpRequest):
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BodyNotJson("the body must be JSON") from exc
        if not isinstance(body, dict):  # every operation takes an object
            raise BodyNotJson("the body must be a JSON object")
        return body


class _JsonRenderer(JSONRenderer):
    json_dumps_params = {"ensure_ascii": False}  # noqa: RUF012  (ninja's class attribute)


def _shown(value) -> str:
    return json.dumps(value, default=str)[:40]


def _field(model: type[BaseModel], loc: tuple) -> tuple[str, str, bool]:
    """(name, description, whole): the deepest model field on ``loc``, and whether the error
    is about that field's whole value (not an item inside it)."""
    name, description, depth = "", "", 0
    current: type[BaseModel] | None = model
    for depth, key in enumerate(loc, 1):  # noqa: B007  (depth is read after the loop)
        field = current.model_fields.get(key) if current and isinstance(key, str) else None
        if field is None:
            depth -= 1
            break
        name, description = key, field.description or ""
        current = next(
            (
                t
                for t in (field.annotation, *getattr(field.annotation, "__args__", ()))
                if isinstance(t, type) and issubclass(t, BaseModel)
            ),
            None,
        )
    return name, description, depth == len(loc)


def readable_error(error: dict, model: type[BaseModel]) -> str:
    """One pydantic error in the API's words: `missing "question" (a string: …)`,
    `"k" must be an integer from 1 to 1000, not 0`, "the body must be a JSON object"."""
    name, description, whole = _field(model, tuple(error["loc"]))
    body_param = getattr(model, "__read_from_single_attr__", None)
    if not name or name == body_param:
        if error["type"] == "missing" and not name:
            return error["msg"].lower()
        return "the body must be a JSON object"
    given = getattr(error.get("input"), "_obj", error.get("input"))  # ninja's DjangoGetter
    if error["type"] == "missing" and isinstance(given, list):
        return "the body must be a JSON object"  # ninja looked for the field in a list
    if error["type"] == "missing":
        return f'missing "{name}"' + (f" ({description})" if description else "")
    if not description:
        return f'"{name}": {error["msg"][0].lower()}{error["msg"][1:]}'
    shown = f", not {_shown(error['input'])}" if whole and "input" in error else ""
    return f'"{name}" must be {description}{shown}'


class Api(NinjaAPI):
    def validation_error_from_error_contexts(self, error_contexts) -> ValidationError:
        error = super().validation_error_from_error_contexts(error_contexts)
        error.message = "; ".join(  # type: ignore[attr-defined]
            readable_error(item, context.model)
            for context in error_contexts
            for item in context.pydantic_validation_error.errors(include_url=False)
        )
        return error


# --- errors: {"error": "..."} --------------------------------------------------------------


def _on_http_error(request, exc: HttpError):
    if isinstance(exc, AuthenticationError):
        return api_error(401, "authentication required")
    if isinstance(exc.__cause__, BodyNotJson):  # ninja wraps what the parser raised
        return api_error(400, str(exc.__cause__))
    return api_error(exc.status_code, str(exc))


def _on_validation_error(request, exc: ValidationError):
    return api_error(400, getattr(exc, "message", "") or "the request is not valid")


def _on_unexpected(request, exc: Exception):
    # Django logs it and answers 500; config.middleware makes that JSON without details
    raise exc


def install_error_handlers(api: NinjaAPI, *, shape: Callable[[int, str], HttpResponse]) -> None:
    api.add_exception_handler(Refused, lambda request, exc: exc.response)
    api.add_exception_handler(Http404, lambda r, exc: shape(404, str(exc) or "not found"))
    api.add_exception_handler(PermissionDenied, lambda r, exc: shape(403, str(exc) or "forbidden"))
    api.add_exception_handler(Exception, _on_unexpected)


def build_api() -> Api:
    """The API of /api/v1/ (config/urls.py mounts it)."""
    from assistant.api import router as assistant_router
    from ingest.api import router as ingest_router

    api = Api(
        title="Document assistant API",
        version="1",
        description=(
            "Ask questions of your documents with page-exact citations, search passages, manage "
            "documents. Authenticate with `Authorization: Bearer <token>` (an API token: "
            "`manage.py users token NAME`) or, from a browser, the session with the "
            '`X-CSRFToken` header. Errors are `{"error": "..."}` with the HTTP status.'
        ),
        urls_namespace="api",
        parser=_JsonParser(),
        renderer=_JsonRenderer(),
        # The docs page sends the session's CSRF token with "Try it out" (ninja's
        # swagger.html) when the default auth says one is needed.
        auth=requires(any_role, "this"),
    )
    install_error_handlers(api, shape=api_error)
    api.add_exception_handler(HttpError, _on_http_error)
    api.add_exception_handler(ValidationError, _on_validation_error)
    api.add_router("", assistant_router, tags=["answers"])
    api.add_router("", ingest_router, tags=["documents"])
    return api


# --- the OpenAI-compatible endpoint: /v1/ ---------------------------------------------------


class OpenAIBearer(HttpBearer):
    """API tokens are the only credential here (no session: OpenAI clients send none); the
    token is checked here, as accounts.middleware does for /api/v1/."""

    def authenticate(self, request: HttpRequest, token: str):
        from accounts.models import ApiToken

        user = ApiToken.authenticate(token)
        if user is None:
            raise HttpError(401, "invalid or revoked API token")
        if not roles.can_ask(user):
            raise HttpError(403, "your role does not allow asking questions")
        return user


def _on_openai_http_error(request, exc: HttpError):
    if isinstance(exc, AuthenticationError):
        return openai_error(401, "no API key: send the header Authorization: Bearer <API token>")
    if isinstance(exc.__cause__, BodyNotJson):
        return openai_error(400, str(exc.__cause__))
    return openai_error(exc.status_code, str(exc), code=getattr(exc, "code", None))


def _on_openai_validation_error(request, exc: ValidationError):
    return openai_error(400, getattr(exc, "message", "") or "the request is not valid")


def build_openai_api() -> Api:
    """The OpenAI-compatible API of /v1/ (config/urls.py mounts it)."""
    from assistant.api import openai_router

    api = Api(
        title="OpenAI-compatible endpoint",
        version="1",
        urls_namespace="openai",
        parser=_JsonParser(),
        renderer=_JsonRenderer(),
        auth=[OpenAIBearer()],
        # OpenAI's own API reference documents these shapes; the README says what is ours
        docs_url=None,
        openapi_url=None,
    )
    install_error_handlers(api, shape=openai_error)
    api.add_exception_handler(HttpError, _on_openai_http_error)
    api.add_exception_handler(ValidationError, _on_openai_validation_error)
    api.add_router("", openai_router)
    return api
