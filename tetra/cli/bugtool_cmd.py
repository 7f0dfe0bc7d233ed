"""``tetra bugtool``: one archive with what a bug report needs, secrets redacted.

As Tetragon's `tetra bugtool` (``--out``, ``--bpftool``), it writes one
.tar.gz; its files sit under ``tetra-bugtool-<UTC time>/``::

    version.json           this client's version and the agent's
    status.json            GetStatus, as `tetra status -o json` prints it
    config.json            the agent's effective settings (flags, config files); the agent redacts secret values
    agent.log              the agent's newest log records (its in-memory ring, served by GetDiagnostics)
    journal.log            `journalctl -u tetra`: earlier runs, when systemd runs the agent
    policies.json          ListTracingPolicies: names, states, modes, hooks and their counters, errors
    policies.yaml          the YAML of every policy the agent holds
    probe.json             `tetra probe -o json`, measured now (root only)
    bpftool/prog.json      `bpftool -j prog show`; map, link, perf and cgroup-tree alike
    bugtool.log            what was collected, cut or missing, and why

A piece that cannot be had (no agent, no bpftool, not root) becomes
``NAME.error`` in the archive, with the reason, and a warning on stderr; the
archive is written all the same and the command exits 0. It exits 1 only when
the archive itself cannot be written.

Each piece is cut at ``PIECE_BYTES`` and scrubbed of secrets by shape
(tetra/status/secrets.py). Nothing is read that holds secrets in the first
place: no environment variables, no kubeconfig or key files (their paths, in
config.json, are all a report needs). The archive is created 0600: policies
and logs say what a node watches for.
"""

import functools
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
import orjson

from tetra import __version__
from tetra.cli.options import client_options
from tetra.errors import TetraError
from tetra.status.secrets import scrub

if TYPE_CHECKING:
    from tetra.api.client import ClientOptions

PIECE_BYTES = 16 * 1024 * 1024  # each file of the archive at most (bpftool's lists of a busy node fit)
COMMAND_TIMEOUT_S = 30.0
JOURNAL_LINES = 5000
BPFTOOL_PLACES = ("/usr/sbin/bpftool", "/sbin/bpftool", "/usr/local/sbin/bpftool")  # root's PATH, not every user's
BPFTOOL_LISTS = (("prog", ("prog", "show")), ("map", ("map", "show")), ("link", ("link", "show")),
                 ("perf", ("perf", "show")), ("cgroup-tree", ("cgroup", "tree")))
_JSON = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
# The agent is not there (or will not answer): the calls after the first fail the same way at once.
_AGENT_GONE = frozenset(("UNAVAILABLE", "DEADLINE_EXCEEDED", "PERMISSION_DENIED"))  # grpc.StatusCode names


class PieceMissing(TetraError):
    """A piece of the archive could not be had; the message says why (it goes into NAME.error)."""


class _Agent:
    """The running agent's answers (GetDiagnostics asked once for its three pieces); once a call found
    no agent, the others fail alike at once instead of waiting out their own timeouts."""

    def __init__(self, options: "ClientOptions") -> None:
        self.options = options
        self._client: Any = None  # tetra.api.client.Client, made at the first call
        self._gone: PieceMissing | None = None

    def call(self, method: str) -> Any:
        """The reply to ``method``'s (empty) request."""
        if self._gone is not None:
            raise self._gone
        try:
            from tetra.api import pb, tg_sensors
            from tetra.api.client import Client

            if self._client is None:
                self._client = Client(self.options)
            request = getattr(pb, method + "Request", None) or getattr(tg_sensors, method + "Request")
            return self._client.call(method, request())
        except TetraError as err:  # ClientError; ApiUnavailable (no generated gRPC code): no call will do
            missing = PieceMissing(str(err))
            code = getattr(err, "code", None)
            if self._client is None or (code is not None and code.name in _AGENT_GONE):
                self._gone = missing
            raise missing from None

    def json(self, method: str) -> dict[str, Any]:
        """The reply to ``method``, as `tetra ... -o json` prints it."""
        from tetra.api.plainjson import message_json

        return message_json(self.call(method))

    @functools.cached_property
    def diagnostics(self) -> dict[str, Any]:
        return self.json("GetDiagnostics")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


@dataclass
class _Report:
    """What the pieces need, and the warnings they leave for stderr: message -> the pieces it cost."""

    agent: _Agent
    bpftool: str | None
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def warn(self, piece: str, message: str) -> None:
        self.warnings.setdefault(message, []).append(piece)


def _version(report: _Report) -> bytes:
    """The client's version always; the agent's, or why it is missing."""
    versions: dict[str, str] = {"client": __version__}
    try:
        versions["server"] = report.agent.call("GetVersion").version
    except PieceMissing as err:
        versions["server_error"] = str(err)
        report.warn("version.json", str(err))
    return orjson.dumps(versions, option=_JSON)


def _config(report: _Report) -> bytes:
    return orjson.dumps(orjson.loads(report.agent.diagnostics["config_json"]), option=_JSON)


def _agent_log(report: _Report) -> bytes:
    diagnostics = report.agent.diagnostics
    lines = [f"{r['time']} {r['level'].upper()} {r['logger']}: {r['message']}\n" for r in diagnostics["log"]]
    if diagnostics["log_evicted"]:
        lines.insert(0, f"# {diagnostics['log_evicted']} older records were let go by the agent's in-memory ring\n")
    return "".join(lines).encode()


def _policies_yaml(report: _Report) -> bytes:
    documents = [f"# policy {p['name']}" + (f" (namespace {p['namespace']})" if p["namespace"] else "") + "\n"
                 + p["yaml"] for p in report.agent.diagnostics["policies"]]
    return "---\n".join(documents).encode() if documents else b"# the agent holds no policies\n"


def _probe(_report: _Report) -> bytes:
    if os.geteuid() != 0:
        raise PieceMissing("the probe report needs root: it loads BPF programs to measure each feature")
    from tetra.cli.probe_cmd import report_json
    from tetra.kernel.features import probe_kernel

    return report_json(probe_kernel())


def _run(argv: list[str]) -> bytes:
    """A command's standard output; its failure (exit status, stderr) as PieceMissing."""
    try:
        done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise PieceMissing(f"`{' '.join(argv)}` did not finish within {COMMAND_TIMEOUT_S:g}s") from None
    except OSError as err:
        raise PieceMissing(f"`{' '.join(argv)}`: {err.strerror}") from None
    if done.returncode != 0:
        raise PieceMissing(f"`{' '.join(argv)}` exited with {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()[-2000:]}")
    return done.stdout


def _bpftool(*args: str) -> Callable[[_Report], bytes]:
    def collect(report: _Report) -> bytes:
        if report.bpftool is None or not os.access(report.bpftool, os.X_OK):
            what = "not found" if report.bpftool is None else f"{report.bpftool}: not an executable file"
            raise PieceMissing(f"bpftool {what} (Debian's bpftool package; or give --bpftool PATH): "
                               "the kernel's BPF programs, maps and links are not in this archive")
        return _run([report.bpftool, "-j", *args])

    return collect


def _journal(_report: _Report) -> bytes:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        raise PieceMissing("journalctl not found (no systemd here): only the running agent's own log "
                           "(agent.log) is in this archive")
    return _run([journalctl, "--unit", "tetra", "--no-pager", "--output", "short-iso", "--lines", str(JOURNAL_LINES)])


# name in the archive -> how to collect it, in this order
PIECES: tuple[tuple[str, Callable[[_Report], bytes]], ...] = (
    ("version.json", _version),
    ("status.json", lambda r: orjson.dumps(r.agent.json("GetStatus"), option=_JSON)),
    ("config.json", _config),
    ("agent.log", _agent_log),
    ("journal.log", _journal),
    ("policies.json", lambda r: orjson.dumps(r.agent.json("ListTracingPolicies"), option=_JSON)),
    ("policies.yaml", _policies_yaml),
    ("probe.json", _probe),
    *((f"bpftool/{name}.json", _bpftool(*args)) for name, args in BPFTOOL_LISTS),
)


def _bounded(data: bytes) -> tuple[bytes, int]:
    """``data`` scrubbed of secrets and cut at PIECE_BYTES; the bytes cut."""
    clean = scrub(data.decode(errors="replace")).encode()
    if len(clean) <= PIECE_BYTES:
        return clean, 0
    cut = len(clean) - PIECE_BYTES
    return clean[:PIECE_BYTES] + f"\n[cut by tetra bugtool: {cut} more bytes]\n".encode(), cut


def _collect(bpftool: str | None, client: "ClientOptions") -> list[tuple[str, bytes]]:
    """Every piece, or its NAME.error (and a warning on stderr); bugtool.log last, saying what happened to each."""
    report = _Report(_Agent(client), bpftool)
    try:
        files = _pieces(report)
    finally:
        report.agent.close()
    for message, pieces in report.warnings.items():  # no agent: one warning, not one per piece
        click.echo(f"tetra bugtool: warning: {', '.join(pieces)}: {message}", err=True)
    return files


def _pieces(report: _Report) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    log: list[str] = [f"tetra bugtool {__version__}, agent at {report.agent.options.address}"]
    for name, collect in PIECES:
        started = time.monotonic()
        try:
            data, cut = _bounded(collect(report))
        except Exception as err:  # a bug of ours too: still an archive, the reason where the piece would be
            message = str(err) if isinstance(err, PieceMissing) else \
                f"internal error ({type(err).__name__}: {err}); please report it"
            report.warn(name, message)
            files.append((name + ".error", scrub(message + "\n").encode()))
            log.append(f"missing {name}: {message}")
            continue
        files.append((name, data))
        log.append(f"{name}: {len(data)} bytes in {time.monotonic() - started:.1f}s"
                   + (f", cut at {PIECE_BYTES} bytes ({cut} more)" if cut else ""))
    files.append(("bugtool.log", scrub("\n".join(log) + "\n").encode()))
    return files


def _write(archive: IO[bytes], files: list[tuple[str, bytes]]) -> None:
    """The files as a .tar.gz, under a directory named after the time."""
    now = time.time()
    prefix = "tetra-bugtool-" + time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in files:
            member = tarfile.TarInfo(f"{prefix}/{name}")
            member.size, member.mtime, member.mode = len(data), int(now), 0o600
            tar.addfile(member, io.BytesIO(data))


def _found(bpftool: str | None) -> str | None:
    """``--bpftool``, else bpftool on PATH, else in root's sbin directories (not on every user's PATH)."""
    return bpftool or shutil.which("bpftool") or next((p for p in BPFTOOL_PLACES if os.access(p, os.X_OK)), None)


@click.command()
@click.option("-o", "--out", default="tetra-bugtool.tar.gz", show_default=True, metavar="FILE",
              type=click.Path(dir_okay=False, writable=True, path_type=Path), help="Write the archive here.")
@click.option("--bpftool", metavar="PATH",
              help="bpftool to list the kernel's BPF programs, maps and links with (default: found on PATH "
                   "or in /usr/sbin).")
@client_options
def bugtool(out: Path, bpftool: str | None, client: "ClientOptions") -> None:
    """Write one .tar.gz for a bug report: versions, the agent's status, settings, log and policies,
    the probe report and bpftool's lists of BPF programs, maps and links; secrets redacted.

    What cannot be had (no agent, no bpftool, not root) is noted in the archive and on stderr;
    the archive is still written (exit 0). Run it as root for the probe report and bpftool.
    """
    try:  # before collecting: a place it cannot write is said at once, not after the probe's seconds
        fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)  # 0600, renamed once complete
    except OSError as err:
        raise click.ClickException(f"cannot write {out}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as archive:
            files = _collect(_found(bpftool), client)
            _write(archive, files)
        os.replace(partial, out)
    except OSError as err:
        raise click.ClickException(f"cannot write {out}: {err.strerror or err}") from None
    finally:
        Path(partial).unlink(missing_ok=True)
    missing = sum(name.endswith(".error") for name, _ in files)
    click.echo(f"tetra bugtool: wrote {out}: {len(files) - missing} files"
               + (f", {missing} missing (see their .error files and bugtool.log)" if missing else ""), err=True)
