"""Signed links for subscribers: confirm (expires), manage and unsubscribe (do not).

Each kind is signed with its own salt, so a manage token is useless as an unsubscribe token and
the other way round; any tampering, expiry or kind mismatch reads as "no subscriber".
"""
from __future__ import annotations

from datetime import timedelta

from django.core import signing

CONFIRM = "confirm"
MANAGE = "manage"
UNSUBSCRIBE = "unsubscribe"
MAX_AGE = {CONFIRM: timedelta(days=7), MANAGE: None, UNSUBSCRIBE: None}


def make_token(public_id: str, kind: str) -> str:
    if kind not in MAX_AGE:
        raise ValueError(f"unknown token kind {kind!r}")
    return signing.dumps({"s": public_id, "k": kind}, salt=f"subscribers.token.{kind}")


def read_token(token: str, kind: str) -> str | None:
    """The subscriber public id a token names, or None when it is not a valid token of that kind."""
    if kind not in MAX_AGE or not token or len(token) > 500:
        return None
    try:
        data = signing.loads(token, salt=f"subscribers.token.{kind}", max_age=MAX_AGE[kind])
    except signing.BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("s"), str):
        return None
    return data["s"]
