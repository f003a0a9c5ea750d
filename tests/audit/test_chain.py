"""The hash definition, recomputed here independently, and the JSON rules that keep it stable."""

import hashlib
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum

import pytest

from audit import chain


def test_canonical_json_is_stable_across_key_order_and_unicode():
    a = {"b": 1, "a": {"y": [1, 2], "x": "Zürich 東京"}}
    b = {"a": {"x": "Zürich 東京", "y": [1, 2]}, "b": 1}
    assert chain.canonical_json(a) == chain.canonical_json(b)
    assert chain.canonical_json(a) == '{"a":{"x":"Zürich 東京","y":[1,2]},"b":1}'.encode()
    assert chain.digest(a) == chain.digest(b) == hashlib.sha256(chain.canonical_json(a)).hexdigest()
    assert chain.digest({"a": 1}) != chain.digest({"a": 2})


def test_record_hash_is_the_documented_formula():
    moment = datetime(2025, 1, 31, 10, 5, 0, 123, tzinfo=timezone(timedelta(hours=1)))
    fields = {
        "seq": 7,
        "kind": "answer",
        "actor_name": "olga",
        "subject": "message:3",
        "created_at": moment,
        "payload": {"model": "m", "scores": [0.5, 0.25]},
        "commitments": {"answer": "ab" * 32},
    }
    body = {**fields, "created_at": "2025-01-31T09:05:00.000123+00:00"}  # UTC, microseconds
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(("1" * 64 + text).encode()).hexdigest()

    assert chain.record_hash(prev_hash="1" * 64, **fields) == expected
    assert chain.record_hash(prev_hash="2" * 64, **fields) != expected
    assert chain.record_hash(prev_hash="1" * 64, **{**fields, "seq": 8}) != expected


def test_timestamps_must_be_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        chain.timestamp(datetime(2025, 1, 1))
    assert chain.timestamp(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00.000000+00:00"


class Colour(StrEnum):
    RED = "red"


def test_normalise_makes_plain_json_that_survives_the_database():
    value = {"t": (1, 2), "zero": -0.0, "c": Colour.RED, "n": None, "ok": True, "f": 0.1}
    normalised = chain.json_normalise(value, where="payload")
    assert normalised == {"t": [1, 2], "zero": 0.0, "c": "red", "n": None, "ok": True, "f": 0.1}
    assert type(normalised["c"]) is str
    assert json.dumps(normalised["zero"]) == "0.0"  # not "-0.0", which jsonb would not keep


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({"when": date(2025, 1, 1)}, TypeError, r"payload\.when: date is not JSON"),
        ({"ids": {1, 2}}, TypeError, "set is not JSON"),
        ({"amount": Decimal("1.5")}, TypeError, "Decimal"),
        ({1: "a"}, TypeError, "keys must be strings"),
        ({"x": float("nan")}, ValueError, "not valid JSON"),
        ({"x": [1e16]}, ValueError, r"payload\.x\[0\]: float"),
        ({"x": "a\x00b"}, ValueError, "NUL"),
    ],
)
def test_normalise_refuses_what_would_not_round_trip(value, error, message):
    with pytest.raises(error, match=message):
        chain.json_normalise(value, where="payload")
