"""Forms of the users page. They parse and check the shape of what was sent; whether the person
sending it may make the change is the role service's decision (accounts.services), and its
refusal is shown on the form as it gave it."""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator

from . import roles

ROLE_HELP = {
    roles.STAFF: "asks questions and searches the collections their groups may read",
    roles.ADMIN: "also manages documents, collections, users and evaluations",
    roles.AUDITOR: "reviews the audit log, read-only (a superuser's to give)",
}
GROUP_NAME = re.compile(r"^[\w.@+-]{1,150}$")


def _choices(names) -> list[tuple[str, str]]:
    return [(name, name) for name in names]


class AccessForm(forms.Form):
    """Roles and access groups: what `user_access_set` takes."""

    roles = forms.MultipleChoiceField(
        choices=[(name, f"{name} — {ROLE_HELP[name]}") for name in roles.ROLES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    groups = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, required=False, label="Access groups"
    )
    new_groups = forms.CharField(
        required=False,
        label="New access groups",
        help_text="comma-separated, e.g. hr, finance: created and joined",
    )

    def __init__(self, *args, group_names: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["groups"].choices = _choices(group_names)

    def clean_new_groups(self) -> list[str]:
        names = [n.strip() for n in self.cleaned_data["new_groups"].split(",") if n.strip()]
        bad = [n for n in names if not GROUP_NAME.match(n)]
        if bad:
            raise forms.ValidationError(
                f"not a group name: {', '.join(bad)} (letters, digits and . @ + - _ only)"
            )
        return names

    def access(self) -> dict:
        """Keyword arguments for the role service."""
        data = self.cleaned_data
        return {
            "roles_": data["roles"],
            "groups": sorted(set(data["groups"]) | set(data["new_groups"])),
        }


class UserCreateForm(AccessForm):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField(required=False)
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="leave empty to get a one-time link where they set their own",
    )
    field_order = ["username", "email", "password", "roles", "groups", "new_groups"]

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username=username).exists():
            raise forms.ValidationError(f"user {username!r} exists already")
        return username

    def clean_password(self) -> str | None:
        password = self.cleaned_data["password"]
        if not password:
            return None
        validate_password(password, get_user_model()(username=self.data.get("username", "")))
        return password


class UserAccessForm(AccessForm):
    """Changing a user's access. Superuser status is on the form only for a superuser (nobody
    else may change it: the service would refuse)."""

    is_superuser = forms.BooleanField(required=False, label="Superuser (may do anything)")

    def __init__(self, *args, may_grant_superuser: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not may_grant_superuser:
            del self.fields["is_superuser"]

    def access(self) -> dict:
        change = super().access()
        if "is_superuser" in self.fields:
            change["is_superuser"] = self.cleaned_data["is_superuser"]
        return change


class CollectionAccessForm(forms.Form):
    groups = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, required=False, label="Groups that may read it"
    )

    def __init__(self, *args, group_names: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["groups"].choices = _choices(group_names)

    def clean_groups(self) -> list[Group]:
        return list(Group.objects.filter(name__in=self.cleaned_data["groups"]))
