"""The one outbound HTTP door: what it refuses, what it sends, and how it classifies answers."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from statuspage.lib import http
from statuspage.lib.http import OutboundError, UnsafeDestination, check_public_url, parse_retry_after

PUBLIC_IP = "93.184.215.14"


# --- refusals at entry time -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.8.9.10/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://172.31.255.254/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://169.254.10.10/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.251/hook",
        "https://255.255.255.255/hook",
        "https://240.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://[fe80::1]/hook",
        "https://[fc00::1]/hook",
        "https://[fd12:3456::1]/hook",
        "https://[ff02::1]/hook",
        "https://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
        "https://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
        "https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook",  # Teredo, client 10.0.0.1
    ],
)
def test_non_public_addresses_are_refused(url):
    with pytest.raises(UnsafeDestination) as refused:
        check_public_url(url)
    assert refused.value.permanent is True
    assert "public internet addresses" in str(refused.value)


@pytest.mark.parametrize("url", ["https://2130706433/", "https://0x7f.1/", "https://0177.0.0.1/", "https://127.1/"])
def test_odd_notations_of_loopback_are_refused(url):
    with pytest.raises(UnsafeDestination, match="loopback"):
        check_public_url(url)


def test_a_name_resolving_to_a_private_address_is_refused(dns):
    dns.add("internal.example", "10.0.0.7")
    with pytest.raises(UnsafeDestination, match="private network"):
        check_public_url("https://internal.example/hook")


def test_a_name_with_one_private_answer_among_public_ones_is_refused(dns):
    dns.add("mixed.example", [PUBLIC_IP, "192.168.0.10"])
    with pytest.raises(UnsafeDestination):
        check_public_url("https://mixed.example/hook")


def test_the_refusal_does_not_reveal_the_internal_address(dns):
    dns.add("internal.example", "10.0.0.7")
    with pytest.raises(UnsafeDestination) as refused:
        check_public_url("https://internal.example/hook")
    assert "10.0.0.7" not in str(refused.value)


def test_the_metadata_address_is_named_as_such():
    with pytest.raises(UnsafeDestination, match="cloud metadata"):
        check_public_url("http://169.254.169.254/latest/meta-data/")


def test_a_public_https_url_passes(dns):
    dns.add("hooks.example", PUBLIC_IP)
    check_public_url("https://hooks.example/in/abc?x=1")


def test_a_public_nat64_address_passes():
    check_public_url("https://[64:ff9b::5db8:d70e]/hook")  # NAT64 of 93.184.215.14


def test_plain_http_to_a_public_host_is_refused(dns):
    dns.add("hooks.example", PUBLIC_IP)
    with pytest.raises(UnsafeDestination, match="https://"):
        check_public_url("http://hooks.example/hook")


@pytest.mark.parametrize("url", ["ftp://hooks.example/x", "file:///etc/passwd", "gopher://hooks.example/", "hooks.example/x"])
def test_other_schemes_are_refused(url):
    with pytest.raises(UnsafeDestination, match="https://"):
        check_public_url(url)


def test_credentials_in_the_url_are_refused(dns):
    dns.add("hooks.example", PUBLIC_IP)
    with pytest.raises(UnsafeDestination, match="user name or password"):
        check_public_url("https://user:secret@hooks.example/hook")


def test_a_url_without_host_is_refused():
    with pytest.raises(UnsafeDestination, match="no host"):
        check_public_url("https:///hook")


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(UnsafeDestination, match="cannot be found"):
        check_public_url("https://nowhere.invalid/hook")


def test_an_allow_listed_network_may_be_reached_over_http(settings, dns):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    dns.add("selfhosted.internal", "10.20.3.4")
    check_public_url("http://selfhosted.internal:8080/hook")


def test_the_allow_list_does_not_open_other_private_ranges(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    with pytest.raises(UnsafeDestination):
        check_public_url("https://10.21.0.1/hook")


def test_http_needs_every_address_of_the_name_allow_listed(settings, dns):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    dns.add("half.internal", ["10.20.3.4", PUBLIC_IP])
    with pytest.raises(UnsafeDestination, match="https://"):
        check_public_url("http://half.internal/hook")


# --- the request ----------------------------------------------------------------------------


def test_body_and_headers_arrive_intact(receiver, allow_local):
    body = json.dumps({"text": "Grüße", "n": 1}).encode()
    response = http.post(
        f"{receiver.url}/in/hook?x=1", body=body, headers={"Content-Type": "application/json", "X-Token": "abc"}
    )
    assert response.status == 200
    got = receiver.last
    assert (got.method, got.path, got.body) == ("POST", "/in/hook?x=1", body)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-token"] == "abc"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert got.headers["user-agent"] == http.USER_AGENT


def test_the_answer_is_returned_with_case_insensitive_headers(receiver, allow_local):
    receiver.reply(201, b'{"sid": "SM1"}', {"Content-Type": "application/json", "X-Request-Id": "r-9"})
    response = http.post(receiver.url, body=b"x", headers={})
    assert response.status == 201
    assert response.json() == {"sid": "SM1"}
    assert response.headers["x-request-id"] == "r-9"


def test_the_local_server_is_refused_without_the_allow_list(receiver):
    with pytest.raises(UnsafeDestination):
        http.post(receiver.url, body=b"x", headers={})
    assert receiver.requests == []


def test_the_request_connects_to_the_vetted_address_and_sends_the_name_as_host(receiver, allow_local, dns):
    dns.add("receiver.test", "127.0.0.1")
    http.post(f"http://receiver.test:{receiver.port}/hook", body=b"x", headers={})
    assert receiver.last.headers["host"] == f"receiver.test:{receiver.port}"
    # Resolved once, by the seam; the connection went to the vetted IP, not to a second lookup.
    assert dns.queries.count("receiver.test") == 1


def test_dns_rebinding_is_refused_at_connection_time(receiver, dns):
    dns.add("rebind.example", PUBLIC_IP, "127.0.0.1")
    check_public_url(f"https://rebind.example:{receiver.port}/hook")  # first answer: public
    with pytest.raises(UnsafeDestination, match="loopback"):
        http.post(f"https://rebind.example:{receiver.port}/hook", body=b"x", headers={})
    assert receiver.requests == []


def test_a_redirect_is_not_followed(receiver, allow_local, dns):
    receiver.reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(OutboundError) as failed:
        http.post(f"{receiver.url}/hook", body=b"x", headers={})
    assert failed.value.permanent is True
    assert failed.value.status == 302
    assert "http://169.254.169.254/latest/meta-data/" in str(failed.value)
    assert len(receiver.requests) == 1
    # Every connection attempt resolves its address first: the metadata address never was.
    assert "169.254.169.254" not in dns.queries


@pytest.mark.parametrize("status", [301, 307, 308])
def test_every_redirect_status_is_an_error(receiver, allow_local, status):
    receiver.reply(status, headers={"Location": "https://elsewhere.example/"})
    with pytest.raises(OutboundError, match="redirects are not followed"):
        http.post(receiver.url, body=b"x", headers={})


def test_an_oversize_answer_is_refused(receiver, allow_local):
    receiver.reply(200, b"x" * (200 * 1024))
    with pytest.raises(OutboundError, match="more than 65536 bytes"):
        http.post(receiver.url, body=b"x", headers={})


def test_an_oversize_answer_without_content_length_is_cut_off(receiver, allow_local):
    receiver.reply(200, b"y" * 5000, unsized=True)
    with pytest.raises(OutboundError, match="more than 1024 bytes"):
        http.post(receiver.url, body=b"x", headers={}, max_response_bytes=1024)


def test_a_server_error_is_transient(receiver, allow_local):
    receiver.reply(500, "boom")
    with pytest.raises(OutboundError) as failed:
        http.post(receiver.url, body=b"x", headers={})
    assert (failed.value.permanent, failed.value.status) == (False, 500)
    assert "boom" in str(failed.value)


def test_rate_limiting_is_transient_with_its_retry_after(receiver, allow_local):
    receiver.reply(429, headers={"Retry-After": "7"})
    with pytest.raises(OutboundError) as failed:
        http.post(receiver.url, body=b"x", headers={})
    assert (failed.value.permanent, failed.value.status, failed.value.retry_after) == (False, 429, 7.0)


def test_a_503_with_an_http_date_retry_after_is_transient(receiver, allow_local):
    later = datetime.now(timezone.utc) + timedelta(minutes=2)
    receiver.reply(503, headers={"Retry-After": format_datetime(later, usegmt=True)})
    with pytest.raises(OutboundError) as failed:
        http.post(receiver.url, body=b"x", headers={})
    assert failed.value.permanent is False
    assert 60 < failed.value.retry_after <= 120


def test_a_request_timeout_answer_is_transient(receiver, allow_local):
    receiver.reply(408)
    with pytest.raises(OutboundError) as failed:
        http.post(receiver.url, body=b"x", headers={})
    assert failed.value.permanent is False


def test_gone_is_permanent(receiver, allow_local):
    receiver.reply(410)
    with pytest.raises(OutboundError) as failed:
        http.post(receiver.url, body=b"x", headers={})
    assert (failed.value.permanent, failed.value.status) == (True, 410)


def test_not_found_is_permanent(receiver, allow_local):
    receiver.reply(404, "no_service")
    with pytest.raises(OutboundError) as failed:
        http.post(receiver.url, body=b"x", headers={})
    assert (failed.value.permanent, failed.value.status) == (True, 404)
    assert failed.value.body == b"no_service"


def test_a_receiver_that_does_not_answer_in_time_is_transient(receiver, allow_local):
    receiver.reply(hang=True)
    with pytest.raises(OutboundError, match="did not answer") as failed:
        http.post(receiver.url, body=b"x", headers={}, timeout=0.5)
    assert failed.value.permanent is False


def test_a_refused_connection_is_transient(allow_local):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OutboundError, match="Could not connect") as failed:
        http.post(f"http://127.0.0.1:{port}/hook", body=b"x", headers={}, timeout=2)
    assert failed.value.permanent is False


def test_a_failed_lookup_at_send_time_is_transient():
    with pytest.raises(OutboundError) as failed:
        http.post("https://nowhere.invalid/hook", body=b"x", headers={})
    assert not isinstance(failed.value, UnsafeDestination)
    assert failed.value.permanent is False


def test_full_urls_are_never_logged(receiver, allow_local, caplog, dns):
    dns.add("hooks.receiver.test", "127.0.0.1")
    receiver.reply(500)
    caplog.set_level("DEBUG", logger="statuspage.outbound")
    with pytest.raises(OutboundError):
        http.post(f"http://hooks.receiver.test:{receiver.port}/services/T000/B000/SECRETPART", body=b"x", headers={})
    assert "hooks.receiver.test" in caplog.text
    assert "SECRETPART" not in caplog.text


# --- TLS to a vetted address ------------------------------------------------------------------


def test_https_is_verified_against_the_url_host_while_connecting_to_its_ip(tls_receiver, allow_local, dns):
    dns.add("receiver.test", "127.0.0.1")
    url = f"https://receiver.test:{tls_receiver.receiver.port}/hook"
    response = http.post(url, body=b"secure", headers={})
    assert response.status == 200
    assert tls_receiver.receiver.last.body == b"secure"
    assert tls_receiver.receiver.last.headers["host"] == f"receiver.test:{tls_receiver.receiver.port}"


def test_a_certificate_for_another_name_is_refused(tls_receiver, allow_local, dns):
    dns.add("impostor.test", "127.0.0.1")
    with pytest.raises(OutboundError, match="TLS"):
        http.post(f"https://impostor.test:{tls_receiver.receiver.port}/hook", body=b"x", headers={})
    assert tls_receiver.receiver.requests == []


# --- small parts ----------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Sat, 01 Mar 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sat, 01 Mar 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_an_invalid_allowed_network_stops_start_up(tmp_path):
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(
        DEBUG="1",
        VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}",
        OUTBOUND_ALLOWED_NETWORKS="10.0.0.0/8,not-a-network",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import statuspage.settings"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "OUTBOUND_ALLOWED_NETWORKS" in result.stderr
    assert "not-a-network" in result.stderr
