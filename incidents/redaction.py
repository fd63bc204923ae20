"""What must not leak onto a public status page: finds it in text staff are about to publish.

Pure: no models, no database. `scan(text)` returns `Finding`s (IP addresses, internal host
names, secrets, email addresses, ticket ids and any custom patterns from the settings), each
with its position, so the admin and the API can say exactly what to remove. A finding shows
itself through `masked`, never by echoing the secret back into a message or a log.

The patterns lean towards reporting: a false positive costs staff an edit, a leak cannot be
unpublished from subscribers' inboxes. Each pattern's comment names the false positives it is
shaped to avoid, because those are what make staff stop trusting a checker.

Regexes are compiled once: the fixed ones at import, the configurable ones once per distinct
settings value (`build_patterns` is cached), so a scan is a handful of linear passes over the
text.
"""
from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "BUILTIN_PATTERNS",
    "DEFAULT_HOST_PATTERN",
    "DEFAULT_INTERNAL_DOMAINS",
    "DEFAULT_TICKET_PATTERN",
    "TICKET_PREFIX_DENY_LIST",
    "Finding",
    "Pattern",
    "build_patterns",
    "compile_setting",
    "mask",
    "parse_allowed_emails",
    "parse_extra_patterns",
    "parse_internal_domains",
    "patterns_from_settings",
    "scan",
    "summary",
]


@dataclass(frozen=True)
class Pattern:
    """One kind of thing that must not be published: `name` is the findings' kind.

    `regex` may be given as a string; it is compiled once, here.
    `group` names the part of a match that is reported (a password's value, not its key).
    `accept` vets a regex match that is only a candidate (does it parse as an IPv6 address?).
    `allowed` lists matched texts (casefolded) staff may publish on purpose: they are not
    reported, and they still claim their span, so nothing inside them is reported either (the
    domain of an allowed support address is not an internal host).
    """

    name: str
    label: str
    regex: re.Pattern[str]
    group: int | str = 0
    accept: Callable[[re.Match[str]], bool] | None = field(default=None, compare=False)
    allowed: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if isinstance(self.regex, str):
            object.__setattr__(self, "regex", re.compile(self.regex))


@dataclass(frozen=True)
class Finding:
    """One thing to remove: offsets into the text, and its 1-based line and column."""

    kind: str
    label: str
    start: int
    end: int
    line: int
    column: int
    # Left out of repr so that logging a finding does not log the secret it found.
    match: str = field(repr=False)

    @property
    def masked(self) -> str:
        return mask(self.match)

    def describe(self) -> str:
        return f"{self.label} '{self.masked}' at line {self.line}, column {self.column}"


# --- masking ----------------------------------------------------------------------------------

# Separators stay visible so the shape says what was found ("10.**.**.12", "db-**.****.internal")
# without the characters that matter.
_MASK_KEEPS = frozenset(".:-_/@")
# Past this, the middle is a fixed run: neither the layout nor the length of a private key
# block helps anyone, and a 1,700-character run of stars does not belong in a message.
_MASK_LONG = 32


def mask(text: str) -> str:
    """The text with everything but its first and last two characters starred out.

    At most a quarter of the characters stay visible at each end, so a short password is not
    mostly shown ("abc1" -> "a**1"); the result never equals a non-empty input.
    """
    keep = min(2, len(text) // 4)
    head, middle, tail = text[:keep], text[keep : len(text) - keep], text[len(text) - keep :]
    if len(middle) > _MASK_LONG:
        return f"{head}{'*' * 8}...{'*' * 8}{tail}"
    starred = "".join(char if char in _MASK_KEEPS else "*" for char in middle)
    if starred == middle:  # nothing but separators in the middle: hide those too
        starred = "*" * len(middle)
    return head + starred + tail


# --- IP addresses -------------------------------------------------------------------------------

# 0-255 and nothing else, so "300.1.2.3" is not an address; no leading zeros either.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4_BODY = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_IPV4 = Pattern(
    "ip_address",
    "IP address",
    # Exactly four parts: "1.2.3" and dotted dates ("15.01.2024") have three. Not after a
    # letter, so "v1.2.3.4" is a version; not after or before another ".digit", so a longer
    # dotted number (an OID, "1.2.3.4.5") is not read as an address inside it. A "-" may
    # follow or precede: "10.0.0.1-10.0.0.9" is two addresses.
    rf"(?<![A-Za-z0-9_.]){_IPV4_BODY}(?![A-Za-z0-9_]|\.[0-9])",
)


def _is_ipv6(match: re.Match[str]) -> bool:
    text = match.group()
    # The regex only finds colon-separated hex; ipaddress decides. "10:30:45" (a time) and
    # "00:1a:2b:3c:4d:5e" (a MAC address) are not addresses. Requiring a decimal digit keeps
    # "cafe::add" or "db::cache" out of reports; real addresses ("2001:", "fe80:", "::1")
    # have digits.
    if not any(char.isdigit() for char in text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_IPV6 = Pattern(
    "ip_address",
    "IP address",
    # Two to seven "group:" (groups may be empty for "::"), then a last group or an embedded
    # IPv4 address ("::ffff:10.0.0.1"). Not inside a word, so "Foo::Bar" paths are not tried.
    # Only a candidate: _is_ipv6 decides.
    rf"(?<![A-Za-z0-9_:.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:{_IPV4_BODY}|[0-9A-Fa-f]{{1,4}})?"
    r"(?![A-Za-z0-9_:]|\.[0-9])",
    accept=_is_ipv6,
)


# --- secrets ------------------------------------------------------------------------------------
# Vendor formats with a fixed prefix are matched on sight: the prefix makes them unambiguous.

_PLACEHOLDER = re.compile(
    r"\*+|x{3,}|\.{3,}|redacted|hidden|removed|none|null|n/a|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\{\{[^}]*\}\}",
    re.IGNORECASE,
)


def _is_secret_value(match: re.Match[str]) -> bool:
    value = match.group("value")
    if len(value) < 3 or _PLACEHOLDER.fullmatch(value):
        # "password=***", "token=${API_TOKEN}", "secret={{ secret }}": already redacted or a
        # reference, which is what we want staff to write.
        return False
    if match.group("space") and not match.group("quote") and value.isalpha():
        # Prose: "Password: users must reset theirs", "Token: expired". A value after a
        # separator and a space must look like one (a digit or a symbol) unless it is quoted.
        return False
    return True


_SECRETS: tuple[Pattern, ...] = (
    # AWS access key ids: fixed prefix (AKIA long-term, ASIA temporary) and 16 more characters.
    Pattern("secret", "AWS access key id", r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    # The whole PEM block when its END line is there, else the BEGIN line alone (the text is
    # blocked all the same). Covers RSA/EC/OPENSSH/ENCRYPTED and PGP "PRIVATE KEY BLOCK".
    Pattern(
        "secret",
        "private key",
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----)?",
            re.DOTALL,
        ),
    ),
    # JWTs: base64url of a JSON object always starts "eyJ" ('{"'). Three dot-separated
    # segments; the signature may be empty (alg "none").
    Pattern("secret", "JSON web token", r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    # RFC 6750 bearer tokens. Twenty characters or more, so "the bearer of bad news" is prose.
    Pattern(
        "secret",
        "bearer token",
        r"(?i:\bbearer)[ \t]+(?P<value>[A-Za-z0-9._~+/-]{20,}=*)",
        group="value",
    ),
    Pattern("secret", "Slack token", r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}"),
    # Classic (personal, OAuth, app, user-to-server, refresh) and fine-grained GitHub tokens.
    Pattern(
        "secret", "GitHub token", r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"
    ),
    # Stripe secret and restricted keys; publishable keys (pk_) are public by design.
    Pattern("secret", "Stripe key", r"(?<![A-Za-z0-9])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"),
    # Standard Webhooks signing secrets, the format of our own WEBHOOK_SIGNING_SECRET.
    Pattern("secret", "webhook signing secret", r"(?<![A-Za-z0-9])whsec_[A-Za-z0-9+/=]{20,}"),
    # "password=hunter2", "DB_PASSWORD: s3cret", "aws_secret_access_key = ...", "?token=abc",
    # '"api_key": "..."': the value is reported, not the key. Words joined by "_" or "-" count
    # ("client_secret", "secret_key"); "tokens:" or "password reset:" do not. The match starts at
    # the keyword, not at a prefix, and takes at most three suffix words: an unbounded run of
    # "a_a_a_..." would otherwise be rescanned from every "_" (seconds for 10 KB).
    Pattern(
        "secret",
        "password or token",
        re.compile(
            r"""(?<![A-Za-z0-9])
            (?:password|passwd|secret|api[ _-]?key|apikey|token)
            (?:[_-][A-Za-z0-9]+){0,3}
            ["']?[ \t]*[:=](?P<space>[ \t]*)
            (?P<quote>["'`]?)
            # No trailing "." or ":" (end of a sentence), no brackets (so "<redacted>" is not
            # a value).
            (?P<value>[^\s"'`,;<>()\[\]]*[^\s"'`,;<>()\[\].:!?])
            """,
            re.IGNORECASE | re.VERBOSE,
        ),
        group="value",
        accept=_is_secret_value,
    ),
)


# --- the fixed built-ins, in order of precedence when two report the very same span ------------
BUILTIN_PATTERNS: tuple[Pattern, ...] = (*_SECRETS, _IPV4, _IPV6)


# --- configurable patterns: host names, email addresses, ticket ids ------------------------------

DEFAULT_INTERNAL_DOMAINS: tuple[str, ...] = ("internal", "local", "lan", "corp", "intra")

# Infrastructure names: a word from a short list, maybe more words, then numbered segments:
# "db-03", "prod-web-12", "k8s-node-7", "ip-10-0-1-5" (EC2's private DNS names). The numbers are
# what make it a host: "web", "node" or "api" alone are ordinary words. Lowercase only, as host
# names are written, so "API-2" or "Web-3" in prose are not hosts. A "-" may come before it
# ("eu-db-03" reports "db-03"); a letter may not ("mysql-8" is a version). At most three words
# in between: unbounded, "db-db-db-..." would be rescanned from every "db" (seconds for 10 KB).
DEFAULT_HOST_PATTERN = (
    r"(?<![A-Za-z0-9_])"
    r"(?:db|sql|pg|redis|web|app|api|worker|node|k8s|prod|stg|staging|ip)"
    r"(?:-[a-z][a-z0-9]*){0,3}"
    r"(?:-[0-9]+)+"
    r"(?![A-Za-z0-9_-])"
)

# Jira-style keys: "OPS-1234", "INC-42". Not followed by "-" or a word character, so
# "CVE-2024-3094" (public anyway) is not read as "CVE-2024".
DEFAULT_TICKET_PATTERN = r"(?<![A-Za-z0-9_-])[A-Z]{2,10}-[0-9]{1,7}(?![A-Za-z0-9_-])"

# Prefixes that look like ticket keys but name standards, algorithms, versions, time zones and
# severities, all fine to publish: "ISO-8601", "UTF-8", "SHA-256", "HTTP-2", "TLS-1.3",
# "UTC-5", "SEV-1", "COVID-19". CVE/CWE ids are public advisories. Severity labels "P1"/"P2"
# have no hyphen and never match.
TICKET_PREFIX_DENY_LIST = frozenset(
    {
        "AES", "CVE", "CWE", "COVID", "DDR", "ECMA", "GMT", "GPT", "HTTP", "IEEE", "ISO", "MD",
        "RAID", "RFC", "RSA", "SEV", "SHA", "SOC", "SSL", "TIER", "TLS", "UTC", "UTF",
    }
)

# One DNS label: letters, digits, inner hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_EXTRA_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _is_not_a_standard(match: re.Match[str]) -> bool:
    return match.group().split("-", 1)[0].upper() not in TICKET_PREFIX_DENY_LIST


def compile_setting(name: str, value: str) -> re.Pattern[str] | None:
    """Compile the regex setting `name`; an empty value turns its check off (None)."""
    if not value:
        return None
    try:
        return re.compile(value)
    except re.error as exc:
        raise ImproperlyConfigured(f"{name} must be a regular expression ({exc}); got {value!r}") from None


def parse_internal_domains(values: Iterable[str]) -> tuple[str, ...]:
    """REDACTION_INTERNAL_DOMAINS, lowercased; ".corp" and "*.corp" are read as "corp"."""
    domains = []
    for value in values:
        domain = value.strip().lower().removeprefix("*").strip(".")
        if not _DOMAIN.fullmatch(domain):
            raise ImproperlyConfigured(
                f"REDACTION_INTERNAL_DOMAINS must be comma separated domains such as internal,int.example.com; "
                f"got {value!r}"
            )
        domains.append(domain)
    return tuple(domains)


def parse_allowed_emails(values: Iterable[str]) -> tuple[str, ...]:
    """REDACTION_ALLOWED_EMAILS, casefolded (they are compared without regard to case)."""
    emails = []
    for value in values:
        local, at, domain = value.strip().partition("@")
        if not (local and at and domain) or any(char.isspace() for char in value.strip()):
            raise ImproperlyConfigured(
                f"REDACTION_ALLOWED_EMAILS must be comma separated email addresses; got {value!r}"
            )
        emails.append(value.strip().casefold())
    return tuple(emails)


def parse_extra_patterns(values: Iterable[str]) -> tuple[Pattern, ...]:
    """REDACTION_EXTRA_PATTERNS: "name=regex" entries, split on the first "=".

    The name becomes the finding's kind (and, with "_" as spaces, its label). If the regex has
    a group named "value", only that group is reported: "customer=cust_id=(?P<value>[0-9]+)".
    """
    patterns = []
    for value in values:
        name, equals, regex = value.partition("=")
        name, regex = name.strip(), regex.strip()
        if not (equals and name and regex):
            raise ImproperlyConfigured(f"REDACTION_EXTRA_PATTERNS entries must be name=regex; got {value!r}")
        if not _EXTRA_NAME.fullmatch(name):
            raise ImproperlyConfigured(
                f"REDACTION_EXTRA_PATTERNS names must be lowercase words (a-z, 0-9, _); got {name!r}"
            )
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise ImproperlyConfigured(
                f"REDACTION_EXTRA_PATTERNS entry {name!r} is not a valid regular expression ({exc}); got {regex!r}"
            ) from None
        group = "value" if "value" in compiled.groupindex else 0
        patterns.append(Pattern(name, name.replace("_", " "), compiled, group=group))
    return tuple(patterns)


@lru_cache(maxsize=32)
def build_patterns(
    *,
    internal_domains: tuple[str, ...] = DEFAULT_INTERNAL_DOMAINS,
    host_pattern: str = DEFAULT_HOST_PATTERN,
    ticket_pattern: str = DEFAULT_TICKET_PATTERN,
    allowed_emails: tuple[str, ...] = (),
    extra_patterns: tuple[str, ...] = (),
    public_hosts: tuple[str, ...] = (),
) -> tuple[Pattern, ...]:
    """Every pattern for one configuration, compiled once per distinct configuration."""
    public = frozenset(host.casefold() for host in public_hosts)
    patterns = list(BUILTIN_PATTERNS)

    domains = parse_internal_domains(internal_domains)
    if domains:
        # Longest first, so "int.example.com" wins over a shorter listed suffix of it.
        suffixes = "|".join(re.escape(domain) for domain in sorted(set(domains), key=len, reverse=True))
        patterns.append(
            Pattern(
                "internal_host",
                "internal host name",
                # At least one label before the domain ("api.corp"; "corp" alone is a word), and
                # the domain must end the name: in "api.corp.example.com" "corp" is not the
                # suffix, so a public name with an internal-looking label is not reported.
                re.compile(
                    rf"(?<![\w.-])(?:{_LABEL}\.)+(?:{suffixes})(?![\w-]|\.[A-Za-z0-9])", re.IGNORECASE
                ),
                allowed=public,
            )
        )

    host_regex = compile_setting("REDACTION_HOST_PATTERN", host_pattern)
    if host_regex is not None:
        patterns.append(Pattern("internal_host", "internal host name", host_regex, allowed=public))

    patterns.append(
        Pattern(
            "email_address",
            "email address",
            # A dotted domain with an alphabetic TLD, so "root@localhost" and "@mentions" are
            # not addresses; the domain must end there ("a@b.co.uk" is one address).
            re.compile(
                rf"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{{1,64}}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}"
                r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
            ),
            allowed=frozenset(parse_allowed_emails(allowed_emails)),
        )
    )

    ticket_regex = compile_setting("REDACTION_TICKET_PATTERN", ticket_pattern)
    if ticket_regex is not None:
        patterns.append(Pattern("ticket_id", "ticket id", ticket_regex, accept=_is_not_a_standard))

    patterns.extend(parse_extra_patterns(extra_patterns))
    return tuple(patterns)


def patterns_from_settings(*, public_hosts: Iterable[str] = ()) -> list[Pattern]:
    """The patterns the current Django settings ask for, read at call time.

    The host of SITE_URL, and any `public_hosts` (a page's own host names), are never reported
    as internal hosts, whatever the internal domains say.
    """
    if not settings.configured:  # used outside Django: the documented defaults
        return list(build_patterns(public_hosts=tuple(public_hosts)))
    site_host = urlsplit(getattr(settings, "SITE_URL", "") or "").hostname
    hosts = {host.casefold() for host in (*public_hosts, site_host or "") if host}
    return list(
        build_patterns(
            internal_domains=tuple(getattr(settings, "REDACTION_INTERNAL_DOMAINS", DEFAULT_INTERNAL_DOMAINS)),
            host_pattern=getattr(settings, "REDACTION_HOST_PATTERN", DEFAULT_HOST_PATTERN),
            ticket_pattern=getattr(settings, "REDACTION_TICKET_PATTERN", DEFAULT_TICKET_PATTERN),
            allowed_emails=tuple(getattr(settings, "REDACTION_ALLOWED_EMAILS", ())),
            extra_patterns=tuple(getattr(settings, "REDACTION_EXTRA_PATTERNS", ())),
            public_hosts=tuple(sorted(hosts)),
        )
    )


# --- scanning -----------------------------------------------------------------------------------


def scan(text: str, *, patterns: Sequence[Pattern] | None = None) -> list[Finding]:
    """Everything in `text` that must not be published, sorted by position.

    Without `patterns`, those of the current settings. Where matches overlap, the longest is
    reported and the others dropped ("ops@db-03.internal" is one email address, not also a
    host name); for the very same span the earlier pattern wins, secrets first.
    """
    if patterns is None:
        patterns = patterns_from_settings()
    candidates: list[tuple[int, int, int, Pattern, bool]] = []
    for precedence, pattern in enumerate(patterns):
        for match in pattern.regex.finditer(text):
            start, end = match.span(pattern.group)
            if start >= end:  # an empty match, or the reported group did not take part
                continue
            if pattern.accept is not None and not pattern.accept(match):
                continue
            allowed = text[start:end].casefold() in pattern.allowed
            candidates.append((start, end, precedence, pattern, allowed))

    # Longest first; each span is kept only if it overlaps nothing kept before. Kept spans are
    # disjoint and held sorted, so only the two neighbours of the insertion point can overlap.
    starts: list[int] = []
    ends: list[int] = []
    kept: list[tuple[int, int, Pattern]] = []
    for start, end, _, pattern, allowed in sorted(candidates, key=lambda c: (c[0] - c[1], c[0], c[2])):
        at = bisect.bisect_right(starts, start)
        if (at and ends[at - 1] > start) or (at < len(starts) and starts[at] < end):
            continue
        starts.insert(at, start)
        ends.insert(at, end)
        if not allowed:
            kept.append((start, end, pattern))

    line_starts = [0, *(match.end() for match in re.finditer("\n", text))]
    findings = []
    for start, end, pattern in sorted(kept, key=lambda k: k[0]):
        line = bisect.bisect_right(line_starts, start)
        findings.append(
            Finding(
                kind=pattern.name,
                label=pattern.label,
                start=start,
                end=end,
                line=line,
                column=start - line_starts[line - 1] + 1,
                match=text[start:end],
            )
        )
    return findings


# How many findings a summary spells out; an admin message listing hundreds helps nobody.
_SUMMARY_LIMIT = 20


def summary(findings: Sequence[Finding]) -> str:
    """One paragraph for an admin error or an API 400 body; "" when there is nothing to say."""
    if not findings:
        return ""
    count = len(findings)
    items = "; ".join(finding.describe() for finding in findings[:_SUMMARY_LIMIT])
    if count > _SUMMARY_LIMIT:
        items += f"; and {count - _SUMMARY_LIMIT} more"
    noun = "item" if count == 1 else "items"
    return f"Remove {count} {noun} that must not be published: {items}."
