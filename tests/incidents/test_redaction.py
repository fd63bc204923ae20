"""What must not leak onto the public page is found in update texts, and ordinary prose is not.

scan() reads its patterns from the settings at call time; the `settings` fixture changes them.
"""
from __future__ import annotations


import pytest
from django.core.exceptions import ImproperlyConfigured

from incidents.redaction import (
    Finding,
    compile_setting,
    parse_allowed_emails,
    parse_extra_patterns,
    parse_internal_domains,
    patterns_from_settings,
    scan,
    summary,
)


def found(text: str) -> list[tuple[str, str]]:
    return [(finding.kind, finding.match) for finding in scan(text)]


# --- positions ----------------------------------------------------------------------------------


def test_a_finding_gives_its_offsets_and_its_1_based_line_and_column():
    text = "We failed over the replica.\nIt answers on 10.0.0.12 again."

    [finding] = scan(text)

    assert (finding.start, finding.end) == (42, 51)
    assert (finding.line, finding.column) == (2, 15)
    assert text[finding.start : finding.end] == finding.match == "10.0.0.12"


def test_a_finding_on_the_first_line_starts_at_column_1():
    [finding] = scan("10.0.0.12 was drained.")

    assert (finding.line, finding.column, finding.start) == (1, 1, 0)


def test_findings_are_sorted_by_position():
    text = "Ticket OPS-77 mentions alice@example.org and then 192.168.1.20."

    assert [f.start for f in scan(text)] == sorted(f.start for f in scan(text))
    assert [f.kind for f in scan(text)] == ["ticket_id", "email_address", "ip_address"]


# --- IP addresses -------------------------------------------------------------------------------


def test_an_ipv4_address_is_found():
    assert found("The load balancer at 10.0.0.12 was removed.") == [("ip_address", "10.0.0.12")]


def test_an_ipv4_address_with_a_port_or_prefix_length_is_found():
    assert found("Connect to 172.16.4.9:5432 in 172.16.0.0/12.") == [
        ("ip_address", "172.16.4.9"),
        ("ip_address", "172.16.0.0"),
    ]


def test_both_ends_of_an_address_range_are_found():
    assert found("Hosts 10.0.0.1-10.0.0.9 restarted.") == [("ip_address", "10.0.0.1"), ("ip_address", "10.0.0.9")]


def test_octets_above_255_are_not_ipv4_addresses():
    assert found("Counters read 300.1.2.3 and 10.0.0.256 today.") == []


@pytest.mark.parametrize(
    "text", ["Upgraded to v1.2.3.", "Release 1.2.3 is out.", "Agent v1.2.3.4 rolled out.", "Chrome 120.0.6099.109"]
)
def test_version_numbers_are_not_ipv4_addresses(text):
    assert found(text) == []


@pytest.mark.parametrize("text", ["Planned for 2024.01.15.", "Planned for 15.01.2024.", "Planned for 2024-01-15."])
def test_dates_are_not_ipv4_addresses(text):
    assert found(text) == []


@pytest.mark.parametrize("address", ["::1", "fe80::1ff:fe23:4567:890a", "2001:db8::1", "::ffff:10.0.0.1"])
def test_ipv6_addresses_are_found(address):
    assert found(f"Traffic from {address} was dropped.") == [("ip_address", address)]


def test_a_bracketed_ipv6_address_with_a_port_is_found():
    assert found("Served from [2001:db8::1]:443 for now.") == [("ip_address", "2001:db8::1")]


@pytest.mark.parametrize("text", ["Fixed at 10:30 UTC.", "Fixed at 10:30:45 UTC.", "Window 09:00-11:30 UTC."])
def test_times_are_not_ipv6_addresses(text):
    assert found(text) == []


@pytest.mark.parametrize("text", ["See Cache::add and Foo::Bar.", "cafe::add", "MAC 00:1a:2b:3c:4d:5e swapped."])
def test_colon_separated_words_and_mac_addresses_are_not_ipv6_addresses(text):
    assert found(text) == []


# --- internal host names ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["db-03.prod.internal", "api.corp", "printer.lan", "nas.local", "wiki.intra"])
def test_hosts_under_the_default_internal_domains_are_found(host):
    assert found(f"Requests to {host} timed out.") == [("internal_host", host)]


def test_a_host_in_an_internal_url_is_found():
    assert found("See https://grafana.internal:3000/d/latency for details.") == [("internal_host", "grafana.internal")]


def test_hosts_under_a_configured_company_domain_are_found(settings):
    settings.REDACTION_INTERNAL_DOMAINS = ["internal", "int.example.com"]

    assert found("eu1.int.example.com is back.") == [("internal_host", "eu1.int.example.com")]


def test_a_public_name_with_an_internal_looking_label_is_not_an_internal_host():
    assert found("Mail from api.corp.example.com is delayed for the local team.") == []


@pytest.mark.parametrize("host", ["db-03", "prod-web-12", "ip-10-0-1-5", "k8s-node-7", "redis-2"])
def test_infrastructure_host_names_are_found(host):
    assert found(f"We replaced {host} this morning.") == [("internal_host", host)]


def test_ordinary_words_from_the_host_list_are_not_hosts():
    assert found("The web app, the API, every worker node, Node.js, mysql-8 and Web-3 are fine.") == []


def test_the_status_page_host_is_not_reported_even_under_an_internal_domain(settings):
    settings.SITE_URL = "https://status.example.net"
    settings.REDACTION_INTERNAL_DOMAINS = ["example.net"]

    assert found("Follow status.example.net; db.example.net is down.") == [("internal_host", "db.example.net")]


def test_a_page_host_passed_in_is_not_reported(settings):
    settings.REDACTION_INTERNAL_DOMAINS = ["example.net"]

    patterns = patterns_from_settings(public_hosts=["eu.status.example.net"])

    findings = scan("Follow eu.status.example.net.", patterns=patterns)

    assert findings == []


def test_the_host_pattern_comes_from_the_settings(settings):
    settings.REDACTION_HOST_PATTERN = r"\bbox[0-9]+\b"

    assert found("box7 and db-03 were restarted.") == [("internal_host", "box7")]


def test_an_empty_host_pattern_turns_the_check_off(settings):
    settings.REDACTION_HOST_PATTERN = ""

    assert found("db-03 was restarted.") == []


# --- secrets ------------------------------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcHMifQ.c2lnbmF0dXJlLXZhbHVl"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("secret", "label"),
    [
        ("AKIAZ7QW3RT5YU8IOP2L", "AWS access key id"),
        ("ASIAZ7QW3RT5YU8IOP2L", "AWS access key id"),
        (PRIVATE_KEY, "private key"),
        (JWT, "JSON web token"),
        ("xoxb-20481632-64128256-Qw3rTy", "Slack token"),
        ("ghp_R4nd0mL00k1ngT0k3nW1thTh1rtySx", "GitHub token"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "GitHub token"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "Stripe key"),
        ("rk_live_51HxYz2eZvKYlo2C0aBcDeFg", "Stripe key"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "webhook signing secret"),
    ],
)
def test_secrets_are_found_whole(secret, label):
    text = f"Pasted by mistake:\n{secret}\nEnd."

    [finding] = scan(text)

    assert (finding.kind, finding.label, finding.match) == ("secret", label, secret)
    assert (finding.line, finding.column) == (2, 1)


def test_a_bearer_finding_is_the_token_not_the_word():
    [finding] = scan("Header was Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0")

    assert (finding.label, finding.match) == ("bearer token", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Login with password=hunter2.", "hunter2"),
        ("DB_PASSWORD: s3cret!x", "s3cret!x"),
        ("API_KEY = abc123def", "abc123def"),
        ("Api-Key:zz9plural", "zz9plural"),
        ("Try https://app.example.com/reset?token=f00dcafe&x=1", "f00dcafe&x=1"),
        ('{"client_secret": "correcthorse"}', "correcthorse"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI/K7MDENG"),
    ],
)
def test_values_assigned_to_secret_keys_are_found_without_the_key(text, value):
    assert found(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "Password: users must reset theirs.",
        "Token: expired, please sign in again.",
        "Password reset: done for all accounts.",
        "Tokens: 5 left in the bucket.",
        "The bearer of bad news arrived at 10:30 UTC.",
    ],
)
def test_prose_after_secret_words_is_not_a_secret(text):
    assert found(text) == []


@pytest.mark.parametrize(
    "text", ["password=***", "token=${API_TOKEN}", "password=<redacted>", "secret: [REDACTED]", "api_key=xxxx"]
)
def test_placeholders_are_not_secrets(text):
    assert found(text) == []


def test_publishable_stripe_keys_are_not_secrets():
    assert found("The widget uses pk_live_4eC39HqLyjWDarjtT1zdp7dc.") == []


# --- email addresses ----------------------------------------------------------------------------


def test_email_addresses_are_found():
    assert found("Escalated to jane.doe+oncall@example.co.uk tonight.") == [
        ("email_address", "jane.doe+oncall@example.co.uk")
    ]


def test_an_allow_listed_email_is_not_reported_whatever_its_case(settings):
    settings.REDACTION_ALLOWED_EMAILS = ["support@example.com"]

    assert found("Write to Support@Example.com or to bob@example.com.") == [("email_address", "bob@example.com")]


def test_nothing_inside_an_allowed_email_is_reported(settings):
    settings.REDACTION_INTERNAL_DOMAINS = ["example.net"]
    settings.REDACTION_ALLOWED_EMAILS = ["help@status.example.net"]

    assert found("Questions: help@status.example.net.") == []


def test_a_user_name_without_a_dotted_domain_is_not_an_email():
    assert found("Logged in as root@localhost; thanks @oncall.") == []


# --- ticket ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ticket", ["OPS-1234", "INC-42", "PLATFORM-9876543"])
def test_ticket_ids_are_found(ticket):
    assert found(f"Tracked in {ticket}.") == [("ticket_id", ticket)]


@pytest.mark.parametrize(
    "text",
    ["P1", "P2", "ISO-8601", "UTF-8", "SHA-256", "HTTP-2", "TLS-1.3", "RFC-9110", "UTC-5", "SEV-1", "CVE-2024-3094"],
)
def test_severity_labels_standards_and_cves_are_not_tickets(text):
    assert found(f"Noted: {text} applies.") == []


def test_the_ticket_pattern_comes_from_the_settings(settings):
    settings.REDACTION_TICKET_PATTERN = r"#[0-9]{4,}"

    assert found("See #40213, not OPS-1.") == [("ticket_id", "#40213")]


# --- custom patterns ----------------------------------------------------------------------------


def test_a_custom_pattern_from_the_settings_is_found_under_its_name(settings):
    settings.REDACTION_EXTRA_PATTERNS = ["customer_id=cust_[0-9]{6}"]

    [finding] = scan("Only cust_482913 was affected.")

    assert (finding.kind, finding.label, finding.match) == ("customer_id", "customer id", "cust_482913")


def test_a_custom_pattern_reports_only_its_value_group(settings):
    settings.REDACTION_EXTRA_PATTERNS = ["account=account #(?P<value>[0-9]+)"]

    assert found("Only account #5521 was affected.") == [("account", "5521")]


@pytest.mark.parametrize(
    "entry", ["customer=cust_[0-9", "no equals sign", "=cust_[0-9]+", "customer=", "Customer ID=x"]
)
def test_a_bad_extra_pattern_stops_start_up_naming_the_setting(entry):
    with pytest.raises(ImproperlyConfigured, match="REDACTION_EXTRA_PATTERNS"):
        parse_extra_patterns(["ok=fine", entry])


@pytest.mark.parametrize("name", ["REDACTION_HOST_PATTERN", "REDACTION_TICKET_PATTERN"])
def test_a_bad_host_or_ticket_pattern_stops_start_up_naming_the_setting(name):
    with pytest.raises(ImproperlyConfigured, match=name):
        compile_setting(name, "(unclosed")


def test_a_bad_internal_domain_stops_start_up_naming_the_setting():
    with pytest.raises(ImproperlyConfigured, match="REDACTION_INTERNAL_DOMAINS"):
        parse_internal_domains(["internal", "not a domain"])


def test_internal_domains_are_read_like_allowed_hosts():
    assert parse_internal_domains([".Corp", "*.int.example.com"]) == ("corp", "int.example.com")


def test_a_bad_allowed_email_stops_start_up_naming_the_setting():
    with pytest.raises(ImproperlyConfigured, match="REDACTION_ALLOWED_EMAILS"):
        parse_allowed_emails(["support.example.com"])


# --- overlaps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Page ops@db-03.prod.internal now.", ("email_address", "ops@db-03.prod.internal")),
        ("Host ip-10-0-1-5.ec2.internal left.", ("internal_host", "ip-10-0-1-5.ec2.internal")),
        (f"Sent token={JWT} by mistake.", ("secret", JWT)),
        ("Gateway ::ffff:10.0.0.1 answered.", ("ip_address", "::ffff:10.0.0.1")),
    ],
)
def test_overlapping_matches_are_reported_once_as_the_longest(text, expected):
    assert found(text) == [expected]


def test_a_longer_match_wins_over_a_shorter_one_at_the_same_place(settings):
    settings.REDACTION_EXTRA_PATTERNS = ["dashboard=grafana\\.internal/d/[a-z]+"]

    assert found("Graphs: grafana.internal/d/latency") == [("dashboard", "grafana.internal/d/latency")]


def test_the_same_span_is_reported_once_under_the_more_specific_pattern():
    [finding] = scan("aws_access_key_id=AKIAZ7QW3RT5YU8IOP2L")

    assert finding.label == "AWS access key id"


# --- showing a finding --------------------------------------------------------------------------


def test_masked_text_never_contains_the_secret():
    text = (
        f"a AKIAZ7QW3RT5YU8IOP2L b {JWT} c password=abcd d token=xyz e {PRIVATE_KEY} "
        "f xoxb-20481632-64128256-Qw3rTy g 10.0.0.12 h ops@example.org i OPS-1234"
    )

    findings = scan(text)

    assert len(findings) == 9
    for finding in findings:
        assert finding.match not in finding.masked
        assert "*" in finding.masked
        # At most the first two and last two characters show; separators may stay as they were.
        assert sum(char.isalnum() for char in finding.masked) <= 4


def test_masked_text_keeps_the_shape_of_an_address():
    [finding] = scan("Drained 10.20.30.12.")

    assert finding.masked == "10.**.**.12"


def test_a_long_secret_is_masked_short_and_on_one_line():
    [finding] = scan(PRIVATE_KEY)

    assert "\n" not in finding.masked
    assert len(finding.masked) < 32


def test_the_repr_of_a_finding_does_not_show_the_secret():
    [finding] = scan("password=hunter2x")

    assert "hunter2x" not in repr(finding)


def test_summary_lists_each_finding_masked_with_its_position():
    findings = scan("Fixed.\nThe box 10.20.30.12 and OPS-1234 are back.")

    assert summary(findings) == (
        "Remove 2 items that must not be published: IP address '10.**.**.12' at line 2, column 9; "
        "ticket id 'OP*-**34' at line 2, column 25."
    )


def test_summary_of_no_findings_is_empty():
    assert summary([]) == ""


def test_a_finding_is_a_frozen_value():
    [finding] = scan("10.0.0.12")

    with pytest.raises(AttributeError):
        finding.line = 3  # type: ignore[misc]
    assert finding == Finding("ip_address", "IP address", 0, 9, 1, 1, "10.0.0.12")


# --- ordinary prose and speed -------------------------------------------------------------------


def test_ordinary_status_page_prose_has_no_findings():
    text = (
        "Update 14:05 UTC (P1): Since 13:20 UTC on 2024-03-07, some customers in the EU region "
        "saw checkout requests fail with HTTP 502 errors. We traced it to a faulty release of the "
        "payments service (version 4.12.1) and rolled back to 4.11.9 at 13:58 UTC. Error rates are "
        "back under 0.1% and we are watching the web app, the mobile API and webhook delivery "
        "closely. Requests over HTTP/2 and TLS 1.3 were affected alike; nothing about ISO-8601 "
        "timestamps or UTF-8 encoding changed. Card data was never at risk. The next update will "
        "follow by 15:00 UTC, or sooner if anything changes. Details will be posted at "
        "https://status.example.com/incidents/checkout-errors once our review is complete."
    )

    assert scan(text) == []


def test_patterns_are_compiled_once_per_settings_value(settings):
    first = patterns_from_settings()
    assert all(a is b for a, b in zip(first, patterns_from_settings()))

    settings.REDACTION_TICKET_PATTERN = r"#[0-9]{4,}"

    assert [p.regex.pattern for p in patterns_from_settings()] != [p.regex.pattern for p in first]
