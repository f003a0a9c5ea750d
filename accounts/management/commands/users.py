"""manage.py users create|roles|token|list — users, their roles and API tokens."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import roles, services


class Command(BaseCommand):
    help = "Create users, set their roles (staff, admin, auditor) and issue API tokens."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a user")
        create.add_argument("username")
        create.add_argument("--role", action="append", choices=roles.ROLES, dest="roles")
        create.add_argument("--group", action="append", default=[], help="an access group")
        create.add_argument("--password", help="default: a random one, printed once")
        create.add_argument("--email", default="")
        set_roles = sub.add_parser("roles", help="set a user's roles (replaces them)")
        set_roles.add_argument("username")
        set_roles.add_argument("roles", nargs="*", choices=roles.ROLES)
        token = sub.add_parser("token", help="issue an API token (printed once)")
        token.add_argument("username")
        token.add_argument("--name", default="api")
        listing = sub.add_parser("list", help="users with their roles and groups")
        listing.add_argument("--json", action="store_true")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"_{action}")(**options)
        except services.AccountError as exc:
            raise CommandError(str(exc), returncode=2) from exc

    def _user(self, username):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no such user: {username}", returncode=2)
        return user

    def _create(self, *, username, roles, group, password, email, **_):
        user, generated = services.user_create(
            username=username, roles_=roles or ["staff"], groups=group, password=password,
            email=email,
        )  # fmt: skip
        self.stdout.write(
            f"created {user.username} with roles {', '.join(sorted(roles or ['staff']))}"
        )
        if generated:
            self.stdout.write(f"  password: {generated}  (shown once)")

    def _roles(self, *, username, roles, **_):
        now = services.user_roles_set(user=self._user(username), roles_=roles)
        self.stdout.write(f"{username}: {', '.join(sorted(now)) or 'no role'}")

    def _token(self, *, username, name, **_):
        token, key = services.token_issue(user=self._user(username), name=name)
        self.stdout.write(key)
        self.stderr.write(f"token {token.name!r} for {username}: shown once, store it now")

    def _list(self, *, json: bool = False, **_):
        rows = [
            {
                "username": user.username,
                "roles": sorted(roles.roles_of(user)),
                "groups": sorted(g.name for g in user.groups.all() if g.name not in roles.ROLES),
                "active": user.is_active,
            }
            for user in get_user_model().objects.order_by("username").prefetch_related("groups")
        ]
        if json:
            self.stdout.write(_dumps(rows))
            return
        for row in rows:
            self.stdout.write(
                f"{row['username']:<20} {','.join(row['roles']) or '-':<22} {','.join(row['groups'])}"
            )


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)
