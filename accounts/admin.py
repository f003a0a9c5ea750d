"""Users and groups in the Django admin site, bounded by the same rules as every other way of
changing access (`accounts.services.user_access_set`).

Django's own admins let anyone who may change users set `is_superuser`, any group (the auditor
role included) and any permission, on anyone, themselves included, and record nothing. Here the
form shows the admin role only what it may change, refuses the rest beside the field, and saves
roles, groups, superuser status and permissions through the service, which records each change
in the audit log."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext_lazy as _

from . import roles, services

User = get_user_model()

ACCESS_HELP = (
    "Roles (staff, admin, auditor) and access groups (which restricted collections the user "
    "reads). The auditor role, superuser status and permissions are a superuser's to give; "
    "nobody but a superuser changes their own. Staff status (entry to this site) follows from "
    "the admin role. Every change is recorded in the audit log."
)

for model in (User, Group):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


def _is_superuser(request) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


def _access_change(form) -> dict:
    """What the submitted form asks of `user_access_set`; fields not on the form stay as they
    are (None)."""
    data = form.cleaned_data
    change: dict = {}
    if "groups" in form.fields:
        chosen = list(data.get("groups") or [])
        change["roles_"] = [g.name for g in chosen if g.name in roles.ROLES]
        change["groups"] = [g for g in chosen if g.name not in roles.ROLES]
    if "is_superuser" in form.fields:
        change["is_superuser"] = bool(data.get("is_superuser"))
    if "user_permissions" in form.fields:
        change["permissions"] = list(data.get("user_permissions") or [])
    return change


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    list_display = ("username", "email", "roles", "is_active", "is_superuser")
    list_filter = ("is_superuser", "is_active", "groups")
    readonly_fields = ("is_staff", "last_login", "date_joined")

    @admin.display(description="roles")
    def roles(self, user) -> str:
        return ", ".join(sorted(roles.roles_of(user))) or "-"

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return (
                (
                    None,
                    {
                        "classes": ("wide",),
                        "fields": ("username", "usable_password", "password1", "password2"),
                    },
                ),
                (_("Access"), {"fields": ("groups",)}),
            )
        access = ["is_active", "is_staff", "groups"]
        if _is_superuser(request):
            access[2:2] = ["is_superuser"]
            access.append("user_permissions")
        return (
            (None, {"fields": ("username", "password")}),
            (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
            (_("Access"), {"fields": tuple(access), "description": ACCESS_HELP}),
            (_("Important dates"), {"fields": ("last_login", "date_joined")}),
        )

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        actor = request.user

        class AccessCheckedForm(form):
            def clean(self):
                cleaned = super().clean()
                try:
                    services.user_access_check(user=self.instance, by=actor, **_access_change(self))
                except services.AccountError as exc:
                    target = "groups" if "groups" in self.fields else None
                    self.add_error(target, ValidationError(str(exc)))
                return cleaned

        return AccessCheckedForm

    def has_change_permission(self, request, obj=None) -> bool:
        # Changing a superuser (their password included) is taking their powers: theirs only.
        if obj is not None and obj.is_superuser and not _is_superuser(request):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not _is_superuser(request):
            return False
        if obj is not None and obj.pk == request.user.pk:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        """The form wrote superuser status onto the object; the service sets it, not this."""
        if change:
            saved = User.objects.get(pk=obj.pk)
            obj.is_superuser, obj.is_staff = saved.is_superuser, saved.is_staff
        else:
            obj.is_superuser = obj.is_staff = False
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        """Roles, groups, superuser status and permissions go through the service, so each
        change is checked once more and lands in the audit log."""
        wanted = _access_change(form)
        for field in ("groups", "user_permissions"):
            form.cleaned_data.pop(field, None)
        super().save_related(request, form, formsets, change)
        try:
            services.user_access_set(user=form.instance, by=request.user, **wanted)
        except services.AccessDenied as exc:  # the form checked; the data changed since
            raise PermissionDenied(str(exc)) from exc


@admin.register(Group)
class GroupAdmin(auth_admin.GroupAdmin):
    """Admins create access groups (for collections); a group's permissions, and the role
    groups themselves, are a superuser's to change, and each permission change is audited."""

    def get_fields(self, request, obj=None):
        return ("name", "permissions") if _is_superuser(request) else ("name",)

    def get_readonly_fields(self, request, obj=None):
        return ("name",) if obj is not None and obj.name in roles.ROLES else ()

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.name in roles.ROLES and not _is_superuser(request):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.name in roles.ROLES:
            return False  # the roles are these groups: deleting one breaks every check
        return super().has_delete_permission(request, obj)

    def save_related(self, request, form, formsets, change) -> None:
        permissions = form.cleaned_data.pop("permissions", None)
        super().save_related(request, form, formsets, change)
        if permissions is not None:
            services.group_permissions_set(
                group=form.instance, permissions=permissions, by=request.user
            )
