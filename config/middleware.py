"""Project-wide HTTP behaviour: JSON errors under the API, a Content-Security-Policy on pages."""

from __future__ import annotations

from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import csrf

API_PREFIX = "/api/"
OPENAI_PREFIX = "/v1/"  # the OpenAI-compatible endpoint (config/api.py)


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def api_error(status: int, message: str) -> JsonResponse:
    return JsonResponse(
        {"error": message}, status=status, json_dumps_params={"ensure_ascii": False}
    )


OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
}
OPENAI_ERROR_CODES = {401: "invalid_api_key", 404: "not_found"}


def openai_error(status: int, message: str, *, code: str | None = None) -> JsonResponse:
    """OpenAI's error shape, which its SDKs read: {"error": {"message", "type", "code"}}."""
    body = {
        "message": message,
        "type": OPENAI_ERROR_TYPES.get(status, "server_error"),
        "param": None,
        "code": code or OPENAI_ERROR_CODES.get(status),
    }
    return JsonResponse({"error": body}, status=status, json_dumps_params={"ensure_ascii": False})


def _error_shape(request: HttpRequest):
    """How errors are written for this path: None outside the APIs (Django's pages)."""
    if request.path_info.startswith(API_PREFIX):
        return api_error
    if request.path_info.startswith(OPENAI_PREFIX):
        return openai_error
    return None


class ApiErrorsMiddleware:
    """Under /api/ every error is JSON, ``{"error": "..."}``, whatever DEBUG is: a script gets
    a reason it can read, never Django's HTML page (nor, with DEBUG on, a traceback). Under
    /v1/ (the OpenAI-compatible endpoint) it is OpenAI's ``{"error": {"message", …}}``.

    Views answer their own errors as JSON already; this catches what they cannot: an unknown
    path, a wrong method (`require_http_methods`), a CSRF refusal, an exception (logged by
    Django as usual, answered 500 without details). It sits outside the CSRF middleware so
    that refusal passes through it too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        shape = _error_shape(request)
        if shape is None or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return _as_json(request, response, shape)

    def process_exception(self, request: HttpRequest, exception: Exception):
        """Keep the view's own words for a 404 or 403 (`Http404("no such document")`)."""
        shape = _error_shape(request)
        if shape is None:
            return None
        if isinstance(exception, Http404):
            return shape(404, str(exception) or "not found")
        if isinstance(exception, PermissionDenied):
            return shape(403, str(exception) or "forbidden")
        return None  # Django logs it and answers 500; __call__ makes that JSON


def _as_json(request: HttpRequest, response: HttpResponse, shape) -> JsonResponse:
    status = response.status_code
    if status == 404:
        message = f"not found: {request.path_info}"
    elif status == 405:
        message = f"method {request.method} not allowed; allowed: {response.get('Allow', '')}"
    elif status >= 500:
        message = "internal server error (it is logged on the server)"
    else:
        try:
            message = HTTPStatus(status).phrase.lower()
        except ValueError:
            message = f"error {status}"
    answer = shape(status, message)
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in response:
            answer[header] = response[header]
    answer.cookies = response.cookies
    return answer


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW: JSON under the API, Django's page elsewhere."""
    if is_api(request):
        return JsonResponse(
            {
                "error": f"CSRF verification failed ({reason}): a browser session must send "
                "the X-CSRFToken header; a script should use an API token "
                "(Authorization: Bearer …)"
            },
            status=403,
        )
    return csrf.csrf_failure(request, reason=reason)


class ContentSecurityPolicyMiddleware:
    """settings.CONTENT_SECURITY_POLICY on every HTML page that sets none of its own (a served
    original keeps its stricter sandbox). The pages run only their static scripts and pass data
    with `json_script`, so no inline script needs allowing: an injected `<script>` or `onerror=`
    that got past escaping would still not run, and nothing loads from other origins."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if (
            policy
            and "Content-Security-Policy" not in response
            and response.get("Content-Type", "").startswith("text/html")
        ):
            response["Content-Security-Policy"] = policy
        return response
