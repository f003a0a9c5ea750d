"""One answer at a time per conversation, and the Stop button's flag.

Both live in Django's cache (Redis when ``CACHE_URL`` or a Redis broker is configured, so that a
Stop sent to one web process reaches the answer being written in another; the process's memory
in the embedded default, which serves from one process). The lock expires on its own when the
process writing the answer dies, because the answer renews it while it works (every check of
the stop flag, at least every ``CHECK_EVERY`` seconds while tokens arrive).
"""

from __future__ import annotations

import secrets
import time

from django.conf import settings
from django.core.cache import cache

CHECK_EVERY = 0.2  # seconds between two reads of the stop flag while an answer streams


def _lock_key(conversation_id: int) -> str:
    return f"answer:inflight:{conversation_id}"


def _stop_key(conversation_id: int) -> str:
    return f"answer:stop:{conversation_id}"


class Busy(Exception):
    """Another answer is being written in this conversation."""


class InFlight:
    """The claim of one answer on its conversation (see the module docstring)."""

    def __init__(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
        self.token = secrets.token_hex(8)
        self._checked = 0.0
        self._stopped = False

    @classmethod
    def claim(cls, conversation_id: int) -> InFlight:
        """Raises Busy when an answer is already being written in the conversation."""
        claim = cls(conversation_id)
        if not cache.add(_lock_key(conversation_id), claim.token, settings.ANSWER_LOCK_SECONDS):
            raise Busy(conversation_id)
        cache.delete(_stop_key(conversation_id))  # a Stop that came after the last answer ended
        return claim

    def stop_requested(self) -> bool:
        """Whether the user pressed Stop (read at most every CHECK_EVERY seconds; it also
        renews the lock, so a long answer keeps it and a dead process's lock runs out)."""
        if self._stopped:
            return True
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY:
            return False
        self._checked = now
        cache.touch(_lock_key(self.conversation_id), settings.ANSWER_LOCK_SECONDS)
        self._stopped = bool(cache.get(_stop_key(self.conversation_id)))
        return self._stopped

    def release(self) -> None:
        key = _lock_key(self.conversation_id)
        if cache.get(key) == self.token:
            cache.delete(key)
        cache.delete(_stop_key(self.conversation_id))


def stop_request(conversation_id: int) -> bool:
    """Ask the answer being written in the conversation to stop; False when there is none."""
    if cache.get(_lock_key(conversation_id)) is None:
        return False
    cache.set(_stop_key(conversation_id), True, settings.ANSWER_LOCK_SECONDS)
    return True


def answering(conversation_id: int) -> bool:
    return cache.get(_lock_key(conversation_id)) is not None
