"""API tokens: `Authorization: Bearer <token>` authenticates a request to the JSON API instead of
a session, and only there.

A token is for scripts, so it opens `/api/v1/` and nothing else: elsewhere (the admin site, the
audit log, the pages) the header is ignored, the request keeps whatever session it has (or
none) and CSRF checks stay on, so a leaked script token is not the admin site's power.

A token request carries no cookies, so it cannot be a cross-site request forgery: CSRF checks
are skipped for it (and only for it). A bad token is refused outright rather than silently
falling back to the session, so a script never acts with credentials it did not send."""

from django.http import JsonResponse

from .models import ApiToken

# Where a bearer token signs a request in before any view. The OpenAI-compatible endpoint (/v1/)
# checks its token itself (config.api.OpenAIBearer), answering in OpenAI's error shape.
TOKEN_PATHS = ("/api/v1/",)


def takes_tokens(path: str) -> bool:
    return path.startswith(TOKEN_PATHS)


class ApiTokenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Bearer ") and takes_tokens(request.path_info):
            user = ApiToken.authenticate(header.removeprefix("Bearer ").strip())
            if user is None:
                return JsonResponse({"error": "invalid or revoked API token"}, status=401)
            request.user = user
            request._dont_enforce_csrf_checks = True
        return self.get_response(request)
