"""Suspected from reading, confirmed: a superuser could delete conversations and answers in the
Django admin (`ConversationAdmin`/`MessageAdmin` were read-only but deletable). Chat records are
what the audit log refers to: nobody deletes them there. (A user still deletes their own
conversation in the chat; that is their right, and it is audited apart.)"""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from assistant.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(staff_user):
    conversation = Conversation.objects.create(user=staff_user, title="receipts")
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="How long for receipts?"
    )
    return conversation, message


@pytest.fixture
def root_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "", "pw"))
    return client


def test_a_superuser_cannot_delete_a_conversation_or_message(root_client, chat):
    conversation, message = chat

    for url in (
        f"/admin/assistant/conversation/{conversation.pk}/delete/",
        f"/admin/assistant/message/{message.pk}/delete/",
    ):
        assert root_client.post(url, {"post": "yes"}).status_code == 403, url
    root_client.post(
        "/admin/assistant/conversation/",
        {"action": "delete_selected", "_selected_action": [conversation.pk], "post": "yes"},
    )

    assert Conversation.objects.filter(pk=conversation.pk).exists()
    assert Message.objects.filter(pk=message.pk).exists()


def test_they_can_still_be_read(root_client, chat):
    conversation, message = chat
    assert (
        root_client.get(f"/admin/assistant/conversation/{conversation.pk}/change/").status_code
        == 200
    )
    assert root_client.get(f"/admin/assistant/message/{message.pk}/change/").status_code == 200
