"""The syntax of single values: ports, addresses, ranges, numbers, names, durations.

Every check takes the value as written and returns ``None`` when it is fine, or
a message saying what is wrong. Numbers follow Go's ``strconv`` (what Tetragon
parses them with), not Python's: ``010`` is octal, and signs or spaces are
only accepted where Go accepts them.
"""

import difflib
import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Iterable, Sequence

from tetra.policy.errors import quoted
from tetra.policy.limits import MAX_NUMBER_DIGITS, MAX_POSTFIX_VALUE, MAX_STRING_VALUE, MAX_SUBSTRING_VALUE, MAX_URL
from tetra.policy.vocab import (ADDRESS_FAMILIES, CAPABILITIES, FILE_TYPES, HOST_NS, IP_PROTOCOLS, NAMESPACES,
                                TCP_STATES)

Check = Callable[[str], str | None]

_DECIMAL = re.compile(r"[+-]?[0-9]+")
_GO_OCTAL = re.compile(r"[+-]?0[0-7]+")


def go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)`` without the bit size: 0x.., 0o.., 0b.., 0.. (octal), 1_000.

    Text longer than any 64-bit number is not one (and is never handed to ``int``: see ``decimal``).
    """
    if len(text) > MAX_NUMBER_DIGITS or not text.isascii() or text != text.strip():
        return None
    if _GO_OCTAL.fullmatch(text):
        return int(text, 8)
    try:
        return int(text, 0)
    except ValueError:
        return None


def decimal(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``: optional sign and digits only.

    Never more than ``MAX_NUMBER_DIGITS`` characters: Python raises on decimal conversions of
    4300 digits (a limit against their quadratic cost), which would surface as an internal error.
    """
    return int(text) if len(text) <= MAX_NUMBER_DIGITS and _DECIMAL.fullmatch(text) else None


def in_range(value: int, low: int, high: int, what: str) -> str | None:
    return None if low <= value <= high else f"{what} {value} is out of range ({low}..{high})"


def _split_range(text: str) -> tuple[str, str] | None:
    parts = text.split(":")
    return (parts[0], parts[1]) if len(parts) == 2 else None


def _number_or_name(names: dict[str, int], what: str, high: int) -> Check:
    """A check for values given as a name from ``names``, a number, or a ``min:max`` range of numbers."""
    def check(text: str) -> str | None:
        if text in names:
            return None
        bounds = _split_range(text) if ":" in text else (text, text)
        if bounds is None:
            return f"{quoted(text)} is not a {what}: use a name such as {next(iter(names))}, a number or min:max"
        for bound in bounds:
            number = decimal(bound)
            if number is None:
                hint = suggest(bound, names)
                return f"{quoted(text)} is not a {what}{hint}: use a name such as {next(iter(names))}, a number or min:max"
            problem = in_range(number, 0, high, what)
            if problem:
                return problem
        return None
    return check


check_protocol = _number_or_name(IP_PROTOCOLS, "protocol", 0xFFFF)
check_family = _number_or_name(ADDRESS_FAMILIES, "address family", 0xFFFF)
check_state = _number_or_name(TCP_STATES, "TCP state", 0xFF)


def check_port(text: str) -> str | None:
    """A port or a ``min:max`` port range, 0..65535 (base 10, as Tetragon parses them)."""
    bounds = _split_range(text) if ":" in text else (text, text)
    if bounds is None:
        return f"{quoted(text)} is not a port or a min:max port range"
    numbers = [decimal(bound) for bound in bounds]
    if None in numbers or any(bound.startswith(("+", "-")) for bound in bounds):
        return f"{quoted(text)} is not a port or a min:max port range"
    for number in numbers:
        problem = in_range(number, 0, 65535, "port")  # type: ignore[arg-type]
        if problem:
            return problem
    return None


def check_address(text: str) -> str | None:
    """An IPv4/IPv6 address or CIDR (host bits may be set, as Go's netip.ParsePrefix allows)."""
    try:
        if "/" in text:
            ipaddress.ip_network(text, strict=False)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        return f"{quoted(text)} is not an IPv4/IPv6 address or CIDR (such as 10.0.0.0/8 or fd00::/8)"
    return None


def check_number(text: str) -> str | None:
    return None if go_int(text) is not None else f"{quoted(text)} is not a number (decimal, 0x.. hex or 0.. octal)"


def check_int_range(text: str) -> str | None:
    """``min:max`` with both ends numbers, for InRange/NotInRange."""
    bounds = _split_range(text)
    if bounds is None:
        return f"{quoted(text)} is not a range: write min:max, such as 1:5"
    for bound in bounds:
        if go_int(bound) is None:
            return f"{quoted(text)} is not a range: {quoted(bound)} is not a number"
    return None


def check_map_value(text: str) -> str | None:
    """InMap/NotInMap: ``list:NAME``, a number or a ``min:max`` range (base 10)."""
    if text.startswith("list:"):
        return None if len(text) > len("list:") else "'list:' needs a list name"
    bounds = _split_range(text) if ":" in text else (text, text)
    if bounds is None or any(decimal(bound) is None for bound in bounds):
        return f"{quoted(text)} is not a number, a min:max range or list:NAME"
    return None


def check_file_type(text: str) -> str | None:
    if text in FILE_TYPES:
        return None
    return f"unknown file type {quoted(text)}{suggest_or_list(text, FILE_TYPES, 'known')}"


def max_bytes(limit: int, what: str) -> Check:
    def check(text: str) -> str | None:
        size = len(text.encode())
        return None if size <= limit else f"{what} value is {size} bytes, longer than the {limit} supported"
    return check


# Per-value checks of matchArgs values that do not depend on the argument's type.
VALUE_CHECKS: dict[str, Check] = {
    "Equal": max_bytes(MAX_STRING_VALUE, "an Equal"),
    "NotEqual": max_bytes(MAX_STRING_VALUE, "a NotEqual"),
    "Prefix": max_bytes(MAX_STRING_VALUE, "a Prefix"),
    "NotPrefix": max_bytes(MAX_STRING_VALUE, "a NotPrefix"),
    "Postfix": max_bytes(MAX_POSTFIX_VALUE, "a Postfix"),
    "NotPostfix": max_bytes(MAX_POSTFIX_VALUE, "a NotPostfix"),
    "SubString": max_bytes(MAX_SUBSTRING_VALUE, "a SubString"),
    "SubStringIgnCase": max_bytes(MAX_SUBSTRING_VALUE, "a SubStringIgnCase"),
    "GreaterThan": check_number, "GT": check_number, "LessThan": check_number, "LT": check_number,
    "InRange": check_int_range, "NotInRange": check_int_range,
    "InMap": check_map_value, "NotInMap": check_map_value,
    "SPort": check_port, "NotSPort": check_port, "DPort": check_port, "NotDPort": check_port,
    "SAddr": check_address, "NotSAddr": check_address, "DAddr": check_address, "NotDAddr": check_address,
    "Protocol": check_protocol, "Family": check_family, "State": check_state,
    "FileType": check_file_type, "NotFileType": check_file_type,
}


def check_typed_value(text: str, low: int, high: int, arg_type: str) -> str | None:
    """A value compared with an integer argument of ``arg_type`` (range ``low..high``)."""
    number = go_int(text)
    if number is None:
        return f"{quoted(text)} is not a number, and the argument is {arg_type}"
    return in_range(number, low, high, f"{arg_type} value")


def check_capability_mask(text: str) -> str | None:
    """A capability argument's value: a number (mask) or CAP_ names separated by commas."""
    if go_int(text) is not None:
        return None
    for name in text.split(","):
        problem = check_capability(name)
        if problem:
            return problem
    return None


def check_capability(text: str) -> str | None:
    """A capability name; Tetragon trims it and ignores case."""
    if text.strip().upper() in CAPABILITIES:
        return None
    return f"unknown capability {quoted(text)}{suggest(text.strip().upper(), CAPABILITIES)}"


def check_namespace_value(text: str) -> str | None:
    """A namespace inode number (uint32) or ``host_ns``."""
    if text == HOST_NS:
        return None
    number = decimal(text)
    if number is not None and not text.startswith(("+", "-")):
        return in_range(number, 0, 2 ** 32 - 1, "namespace inode")
    return f"{quoted(text)} is not a namespace inode number or {HOST_NS}"


def check_namespace_name(text: str) -> str | None:
    if text.lower() in (name.lower() for name in NAMESPACES):
        return None
    return f"unknown namespace {quoted(text)}{suggest_or_list(text, NAMESPACES)}"


_RATE_LIMIT = re.compile(r"([0-9]+)([smhSMH]?)")


def check_rate_limit(text: str) -> str | None:
    """Tetragon's rateLimit: a whole number of seconds, optionally suffixed s, m or h."""
    match = _RATE_LIMIT.fullmatch(text)
    if not match:
        return f"rateLimit {quoted(text)} is not a duration such as 5, 30s, 1m or 2h"
    seconds = decimal(match.group(1))  # None: more digits than any number
    if seconds is None or seconds >= 2 ** 32:
        return f"rateLimit {quoted(text)} is too large"
    return None


_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")


def check_dns_subdomain(text: str) -> str | None:
    """A Kubernetes object name (RFC 1123 subdomain)."""
    if len(text) > 253:
        return f"{quoted(text)} is {len(text)} characters, a name may have at most 253"
    if _DNS_SUBDOMAIN.fullmatch(text):
        return None
    return (f"{quoted(text)} is not a valid Kubernetes name: use lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit")


def check_dns_label(text: str) -> str | None:
    """A Kubernetes namespace name (RFC 1123 label)."""
    if len(text) <= 63 and re.fullmatch(_DNS_LABEL, text):
        return None
    return (f"{quoted(text)} is not a valid namespace: at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit")


_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def check_label_value(text: str) -> str | None:
    if len(text) <= 63 and _LABEL_VALUE.fullmatch(text):
        return None
    return f"{quoted(text)} is not a valid label value (at most 63 letters, digits, '-', '_', '.')"


_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_.$]*")


def check_call(text: str) -> str | None:
    """A kernel function or syscall name, or ``list:NAME``."""
    if text.startswith("list:"):
        return None if len(text) > len("list:") else "'list:' needs a list name"
    if _SYMBOL.fullmatch(text):
        return None
    return f"{quoted(text)} is not a kernel function name"


def check_identifier(text: str) -> str | None:
    """Tracepoint subsystems and events, LSM hooks, USDT providers and names."""
    return None if re.fullmatch(r"[A-Za-z0-9_.-]+", text) else f"{quoted(text)} is not a valid name"


def check_url(text: str) -> str | None:
    """GetUrl's argUrl: what the agent will GET, so only a plain http(s) URL of a host. Credentials are
    refused: the URL is shown wherever the policy is (status, logs, the API's policy listings)."""
    if len(text.encode()) > MAX_URL:
        return f"the URL is {len(text.encode())} bytes long, at most {MAX_URL}"
    if not text.isascii() or any(ch.isspace() or not ch.isprintable() for ch in text):
        return f"{quoted(text)} is not an http(s) URL: it has spaces, control or non-ASCII characters " \
               "(percent-encode them)"
    try:
        url = urllib.parse.urlsplit(text)
        port = url.port
    except ValueError as err:
        return f"{quoted(text)} is not an http(s) URL: {err}"
    if url.scheme not in ("http", "https") or not url.hostname:
        return f"{quoted(text)} is not an http(s) URL (http://HOST[:PORT]/PATH or https://...)"
    if url.username is not None or url.password is not None:
        return f"{quoted(text)}: a URL with credentials (user:password@) is refused; they would show " \
               "wherever the policy does"
    if port == 0:
        return f"{quoted(text)}: port 0 is not a port"
    return None


def check_fqdn(text: str) -> str | None:
    """DnsLookup's argFqdn: a host name as RFC 1123 has it (labels of letters, digits and inner hyphens,
    at most 63 bytes each, 253 in all)."""
    label = r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
    if len(text) <= 253 and re.fullmatch(rf"{label}(\.{label})*\.?", text):
        return None
    return f"{quoted(text)} is not a domain name (RFC 1123: labels of letters, digits and inner hyphens, " \
           "at most 63 bytes each and 253 in all)"


_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_BOOLS = _GO_TRUE | {"0", "f", "F", "FALSE", "false", "False"}


def check_go_bool(text: str) -> str | None:
    """What Go's ``strconv.ParseBool`` accepts (how Tetragon reads boolean options)."""
    return None if text in _GO_BOOLS else f"{quoted(text)} is not a boolean (true, false, 1 or 0)"


def go_bool(text: str) -> bool:
    """The value of a boolean option that check_go_bool accepted."""
    return text in _GO_TRUE


def closest(text: str, choices: Iterable[str]) -> str | None:
    """The choice ``text`` was most likely meant to be (ignoring case), if one is close enough."""
    folded = {name.lower(): name for name in choices}
    close = difflib.get_close_matches(text.lower(), list(folded), n=1, cutoff=0.6)
    return folded[close[0]] if close else None


def suggest_or_list(text: str, choices: Sequence[str], listing: str = "allowed") -> str:
    """`` (did you mean 'x'?)`` when one choice is close; else ``; allowed: a, b, ...``: the word meant
    alone, not buried at the head of every word there is."""
    return suggest(text, choices) or f"; {listing}: {', '.join(choices)}"


def suggest(text: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    match = closest(text, choices)
    return f" (did you mean '{match}'?)" if match else ""
