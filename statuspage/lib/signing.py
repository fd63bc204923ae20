"""HMAC signatures: Standard Webhooks for what we send, Twilio's scheme for what the SMS provider sends us.

Standard Webhooks (https://www.standardwebhooks.com, spec/standard-webhooks.md in
github.com/standard-webhooks/standard-webhooks): the signed content is
"{webhook-id}.{webhook-timestamp}.{raw body}", the key is the base64 part of a `whsec_`
secret, and `webhook-signature` is a space separated list of "v1,<base64 HMAC-SHA256>" so
a secret can be rotated without downtime.

Twilio (https://www.twilio.com/docs/usage/security#validating-requests, and
twilio/request_validator.py in github.com/twilio/twilio-python): X-Twilio-Signature is the
base64 HMAC-SHA1, keyed with the auth token, of the full request URL followed by every
POST parameter name and value, sorted by name (and, for repeated names, by value).

Every comparison is constant-time: a comparison that stops at the first differing byte
lets an attacker learn a valid signature byte by byte.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SECRET_PREFIX = "whsec_"
# The spec asks for at least 24 random bytes (192 bits) and allows up to 64.
MIN_SECRET_BYTES = 24
DEFAULT_TOLERANCE_SECONDS = 5 * 60


def generate_webhook_secret(num_bytes: int = 32) -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(num_bytes)).decode("ascii")


def decode_webhook_secret(secret: str) -> bytes:
    """The HMAC key inside a `whsec_<base64>` secret (the prefix is optional, as in the reference libraries)."""
    raw = secret.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX):]
    try:
        # Secrets are sometimes shared without their base64 padding; b64decode ignores extra "=".
        key = base64.b64decode(raw + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("A webhook secret must be 'whsec_' followed by base64.") from None
    if not key:
        raise ValueError("A webhook secret must not be empty.")
    return key


def sign_standard_webhook(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one message."""
    if "." in msg_id:
        # The signed content is dot-delimited; an id with dots could be shifted against the
        # timestamp to forge a different (id, timestamp) pair with the same signature.
        raise ValueError("A webhook id must not contain '.'")
    key = decode_webhook_secret(secret)
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def standard_webhook_headers(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for a POST of `body`.

    `msg_id` is the event's id and stays the same on every retry (receivers deduplicate on
    it); `timestamp` is the time of this attempt (receivers refuse stale ones).
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign_standard_webhook(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def verify_standard_webhook(
    *,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when one of the `v1` signatures matches and the timestamp is within `tolerance` of now."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    timestamp_text = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (msg_id and timestamp_text and signatures) or "." in msg_id:
        return False
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = base64.b64decode(
        sign_standard_webhook(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body).split(",", 1)[1]
    )
    matched = False
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1" or not encoded:
            continue  # v1a (asymmetric) and future versions are someone else's business
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # No early return: every candidate costs the same, whichever matches.
        matched |= hmac.compare_digest(expected, given)
    return matched


# --- Twilio ----------------------------------------------------------------------------------

TwilioParams = Mapping[str, str] | Mapping[str, Sequence[str]] | Iterable[tuple[str, str]] | Any


def _param_pairs(params: TwilioParams) -> list[tuple[str, str]]:
    if params is None:
        return []
    if hasattr(params, "lists"):  # Django QueryDict: keep repeated names
        return [(name, value) for name, values in params.lists() for value in values]
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, (list, tuple)):
                pairs.extend((name, str(item)) for item in value)
            else:
                pairs.append((name, str(value)))
        return pairs
    return [(str(name), str(value)) for name, value in params]


def twilio_signature(url: str, params: TwilioParams, auth_token: str) -> str:
    """X-Twilio-Signature for a request to `url` with these POST parameters."""
    content = url + "".join(name + value for name, value in sorted(_param_pairs(params)))
    digest = hmac.new(auth_token.encode("utf-8"), content.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the default port.

    Twilio has signed both spellings over the years (its own helper libraries try both), and
    a proxy in front of us may add or drop the port.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    variants = [url]
    # Rebuilt from the netloc as written: the signed URL keeps the host's original case.
    if port is not None:
        variants.append(urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])))
    elif parts.netloc:
        default = 443 if parts.scheme == "https" else 80
        variants.append(urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}")))
    return variants


def verify_twilio_signature(url: str, params: TwilioParams, signature: str, auth_token: str) -> bool:
    """True when `signature` (the X-Twilio-Signature header) matches the request."""
    if not signature or not auth_token:
        return False
    given = signature.strip().encode("utf-8")
    matched = False
    for variant in _url_variants(url):
        matched |= hmac.compare_digest(twilio_signature(variant, params, auth_token).encode("ascii"), given)
    return matched
