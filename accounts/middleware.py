"""API tokens: `Authorization: Bearer <token>` authenticates a request instead of a session.

A token request carries no cookies, so it cannot be a cross-site request forgery: CSRF checks
are skipped for it (and only for it). A bad token is refused outright rather than silently
falling back to the session, so a script never acts with credentials it did not send."""

from django.http import JsonResponse

from .models import ApiToken


class ApiTokenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Bearer "):
            user = ApiToken.authenticate(header.removeprefix("Bearer ").strip())
            if user is None:
                return JsonResponse({"error": "invalid or revoked API token"}, status=401)
            request.user = user
            request._dont_enforce_csrf_checks = True
        return self.get_response(request)
