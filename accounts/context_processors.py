from . import roles


def user_roles(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "can_ask": roles.can_ask(user),
        "can_manage": roles.can_manage(user),
        "can_audit": roles.can_audit(user),
    }
