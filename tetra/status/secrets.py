"""What must not leave the node in a report: secret flag values, and secrets written into text.

A `tetra bugtool` archive is attached to bug reports that strangers read, so
two rules apply to what goes into it:

* By name: a flag whose name has a word of ``SECRET_WORDS`` (``token``,
  ``password``, ``secret``, ``key``, ...) has its value replaced by
  ``REDACTED``, unless the name ends in a word of ``PATH_WORDS``: the value of
  ``--server-tls-key-file`` is where the key is, which a report needs, and
  the key itself is never read. The agent applies it before its flags leave
  it (GetDiagnostics), so the secret never crosses the API either.
* By shape, on every piece of text (flags, logs, status, policies, bpftool's
  output): ``Bearer``/``Basic`` credentials, ``password=...``-like pairs (in
  argv, YAML or JSON form), a URL's ``user:password@``, PEM private keys and
  JWTs (a Kubernetes service account token is one) keep their context and
  lose the secret.

Environment variables and the contents of kubeconfig and key files are never
collected at all: redaction is the second line, not the first.
"""

import re
from collections.abc import Mapping

REDACTED = "[redacted]"
SECRET_WORDS = frozenset(("token", "tokens", "password", "passwd", "secret", "secrets", "credential", "credentials",
                          "key", "apikey", "bearer", "auth", "authorization"))
PATH_WORDS = frozenset(("file", "files", "path", "paths", "dir"))

_WORDS = re.compile(r"[-_.\s]+")
_KEYWORD = r"(?:token|passw(?:or)?d|secret|api[-_]?key|private[-_]?key|access[-_]?key|credentials?|auth)"
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S),
     f"{REDACTED} (private key)"),
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), f"{REDACTED} (JWT)"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[\w.~+/=-]{6,}"), rf"\1\2{REDACTED}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s@]+@"), rf"\1:{REDACTED}@"),
    # key=value, key: value, "key": "value", --key=value; the key ends in a keyword ("db_password")
    (re.compile(rf"(?i)([\w.-]*{_KEYWORD}s?[\"']?\s*[:=]\s*[\"']?)(?!\[redacted\])[^\s\"',;&}}\]\\]+"),
     rf"\1{REDACTED}"),
)


def is_secret_flag(name: str) -> bool:
    """``name`` (``server_tls_key_file``, ``--otlp-token``) names a flag whose value is a secret."""
    words = [w for w in _WORDS.split(name.lower().lstrip("-")) if w]
    return bool(words) and words[-1] not in PATH_WORDS and any(w in SECRET_WORDS for w in words)


def redact_flags(flags: Mapping[str, object]) -> dict[str, object]:
    """``flags`` with the value of each secret flag replaced (an unset one, None or empty, kept as it is)."""
    return {name: REDACTED if value not in (None, "", ()) and is_secret_flag(name) else value
            for name, value in flags.items()}


def scrub(text: str) -> str:
    """``text`` with every secret of a known shape replaced, its context kept."""
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text
