"""The hash chain, without Django: canonical JSON, content commitments and record hashes.

    commitment(value) = sha256(canonical_json(value))
    record hash       = sha256(prev_hash + canonical_json({"seq", "kind", "actor_name", "subject",
                                                           "created_at", "payload", "commitments"}))

`prev_hash` is the 64 lower-case hex characters of the previous record's hash (ASCII), or 64 zeros
for the first record. `created_at` is ISO 8601 in UTC with microseconds
(`2025-01-31T09:05:00.123456+00:00`). Anyone holding an export can recompute both with these few
lines, which is the point of keeping them here and small.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

# Python writes floats from 1e16 up with an exponent ("1e+16"); PostgreSQL's jsonb gives them
# back as integers ("10000000000000000"), which would change the canonical JSON and break the
# hash of a record that was never touched. Such values are refused rather than silently altered.
LARGEST_EXACT_FLOAT = 1e16


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest(value: Any) -> str:
    """The commitment to one content field's value."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def record_hash(
    *,
    prev_hash: str,
    seq: int,
    kind: str,
    actor_name: str,
    subject: str,
    created_at: datetime,
    payload: dict,
    commitments: dict[str, str],
) -> str:
    body = {
        "seq": seq,
        "kind": kind,
        "actor_name": actor_name,
        "subject": subject,
        "created_at": timestamp(created_at),
        "payload": payload,
        "commitments": commitments,
    }
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(body)).hexdigest()


def json_normalise(value: Any, *, where: str) -> Any:
    """A plain-JSON copy of `value` that survives a database round trip unchanged, so the hash
    computed now still matches the row read back in ten years.

    Raises TypeError for what JSON cannot hold (dates, sets, objects, non-string keys: the caller
    converts them) and ValueError for values the database would alter (NaN, huge floats, NUL).
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: contains a NUL character, which PostgreSQL cannot store")
        return str.__str__(value)  # a plain str: enum members and SafeStrings serialise alike
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not valid JSON")
        if abs(value) >= LARGEST_EXACT_FLOAT:
            raise ValueError(
                f"{where}: float {value!r} would not survive the database unchanged; "
                "pass it as an int or a string"
            )
        return float(value) + 0.0  # -0.0 becomes 0.0, as PostgreSQL's numeric would make it
    if isinstance(value, dict):
        normalised = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            if "\x00" in key:
                raise ValueError(f"{where}: a key contains a NUL character")
            normalised[str.__str__(key)] = json_normalise(item, where=f"{where}.{key}")
        return normalised
    if isinstance(value, list | tuple):
        return [json_normalise(item, where=f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"{where}: {type(value).__name__} is not JSON-serialisable; convert it first "
        "(str(), .isoformat(), list())"
    )
