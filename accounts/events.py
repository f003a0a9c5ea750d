"""Sign-ins and sign-outs go to the audit log. Django reports them through its auth signals,
the only hook it offers for the login views and the admin site alike."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.services import audit_append


def _client(request) -> dict:
    if request is None:
        return {}
    return {
        "ip": request.META.get("REMOTE_ADDR", ""),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300],
    }


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs) -> None:
    audit_append(kind="auth.login", actor=user, subject=f"user:{user.pk}", payload=_client(request))


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_append(
            kind="auth.logout", actor=user, subject=f"user:{user.pk}", payload=_client(request)
        )


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    # The username tried is evidence of an attack or a typo; the password is never recorded.
    username = str(credentials.get("username", ""))[:150]
    audit_append(kind="auth.login_failed", subject=f"username:{username}", payload=_client(request))
