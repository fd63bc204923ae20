"""Signatures against the vectors their specifications publish."""
from __future__ import annotations

import pytest
from django.http import QueryDict

from statuspage.lib.signing import (
    decode_webhook_secret,
    generate_webhook_secret,
    sign_standard_webhook,
    standard_webhook_headers,
    twilio_signature,
    verify_standard_webhook,
    verify_twilio_signature,
)

# The reference vector of Standard Webhooks: test_sign_function in
# github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py
# (the same vector is in the other reference libraries and in Svix's documentation).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# Twilio's documented example (twilio.com/docs/usage/security, and tests/unit/test_request_validator.py
# in github.com/twilio/twilio-python): auth token 12345, this URL and these POST parameters.
TW_TOKEN = "12345"
TW_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TW_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
TW_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
# Same library: repeated parameter names (values sorted too), and the URL with :443 added.
TW_DUPLICATES_SIGNATURE = "IK+Dwps556ElfBT0I3Rgjkr1wJU="
TW_WITH_PORT_SIGNATURE = "kvajT1Ptam85bY51eRf/AJRuM3w="


def sw_headers(**changes: str) -> dict[str, str]:
    headers = {"webhook-id": SW_ID, "webhook-timestamp": str(SW_TIMESTAMP), "webhook-signature": SW_SIGNATURE}
    headers.update(changes)
    return headers


def test_standard_webhook_headers_match_the_reference_vector():
    headers = standard_webhook_headers(secret=SW_SECRET, msg_id=SW_ID, timestamp=SW_TIMESTAMP, body=SW_BODY)
    assert headers == sw_headers()


def test_a_secret_without_its_prefix_signs_the_same():
    bare = SW_SECRET.removeprefix("whsec_")
    assert sign_standard_webhook(secret=bare, msg_id=SW_ID, timestamp=SW_TIMESTAMP, body=SW_BODY) == SW_SIGNATURE


def test_the_reference_vector_verifies_at_its_own_time():
    assert verify_standard_webhook(secret=SW_SECRET, headers=sw_headers(), body=SW_BODY, now=SW_TIMESTAMP + 10)


def test_header_names_are_matched_without_case():
    headers = {k.title(): v for k, v in sw_headers().items()}
    assert verify_standard_webhook(secret=SW_SECRET, headers=headers, body=SW_BODY, now=SW_TIMESTAMP)


def test_a_changed_body_does_not_verify():
    assert not verify_standard_webhook(secret=SW_SECRET, headers=sw_headers(), body=b'{"test": 2432232315}', now=SW_TIMESTAMP)


def test_a_changed_id_does_not_verify():
    headers = sw_headers(**{"webhook-id": "msg_other"})
    assert not verify_standard_webhook(secret=SW_SECRET, headers=headers, body=SW_BODY, now=SW_TIMESTAMP)


def test_another_secret_does_not_verify():
    assert not verify_standard_webhook(secret=generate_webhook_secret(), headers=sw_headers(), body=SW_BODY, now=SW_TIMESTAMP)


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_outside_the_tolerance_does_not_verify(offset):
    assert not verify_standard_webhook(secret=SW_SECRET, headers=sw_headers(), body=SW_BODY, now=SW_TIMESTAMP + offset)


def test_one_matching_signature_among_several_verifies():
    # Secret rotation: the sender signs with old and new keys, space separated.
    signatures = f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,AAAA {SW_SIGNATURE}"
    headers = sw_headers(**{"webhook-signature": signatures})
    assert verify_standard_webhook(secret=SW_SECRET, headers=headers, body=SW_BODY, now=SW_TIMESTAMP)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_does_not_verify(missing):
    headers = sw_headers()
    del headers[missing]
    assert not verify_standard_webhook(secret=SW_SECRET, headers=headers, body=SW_BODY, now=SW_TIMESTAMP)


def test_an_id_with_a_dot_cannot_be_signed():
    with pytest.raises(ValueError, match="must not contain"):
        sign_standard_webhook(secret=SW_SECRET, msg_id="a.b", timestamp=SW_TIMESTAMP, body=SW_BODY)


def test_generated_secrets_carry_enough_randomness():
    secret = generate_webhook_secret()
    assert secret.startswith("whsec_")
    assert len(decode_webhook_secret(secret)) == 32
    assert generate_webhook_secret() != secret


def test_twilio_signature_matches_the_documented_example():
    assert twilio_signature(TW_URL, TW_PARAMS, TW_TOKEN) == TW_SIGNATURE


def test_twilio_signature_sorts_repeated_parameters():
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature(TW_URL, params, TW_TOKEN) == TW_DUPLICATES_SIGNATURE


def test_twilio_signature_reads_a_django_querydict():
    params = QueryDict("Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234")
    assert twilio_signature(TW_URL, params, TW_TOKEN) == TW_DUPLICATES_SIGNATURE


def test_the_documented_twilio_request_verifies():
    assert verify_twilio_signature(TW_URL, TW_PARAMS, TW_SIGNATURE, TW_TOKEN)


def test_a_twilio_signature_made_with_the_default_port_verifies():
    assert verify_twilio_signature(TW_URL, TW_PARAMS, TW_WITH_PORT_SIGNATURE, TW_TOKEN)


def test_a_twilio_request_seen_with_an_explicit_port_verifies():
    assert verify_twilio_signature(TW_URL.replace(".com", ".com:1234"), TW_PARAMS, TW_SIGNATURE, TW_TOKEN)


def test_a_tampered_twilio_parameter_does_not_verify():
    assert not verify_twilio_signature(TW_URL, {**TW_PARAMS, "Digits": "9999"}, TW_SIGNATURE, TW_TOKEN)


def test_a_twilio_signature_for_another_url_does_not_verify():
    assert not verify_twilio_signature(TW_URL + "&extra=1", TW_PARAMS, TW_SIGNATURE, TW_TOKEN)


@pytest.mark.parametrize("signature, token", [("", TW_TOKEN), (TW_SIGNATURE, ""), ("not base64 at all", TW_TOKEN)])
def test_an_empty_or_garbled_twilio_signature_does_not_verify(signature, token):
    assert not verify_twilio_signature(TW_URL, TW_PARAMS, signature, token)
