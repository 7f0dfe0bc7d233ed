"""The agent's gRPC server: what it binds, how the agent drives it, how it stops.

The composition root (tetra/app/build.py) builds it, and the agent runs it as
one of its services, from its own thread:

    ApiServer(addresses, commands, ...)   parse addresses, check socket paths, TLS files and that every
                                          address binds (fail before any BPF loads); ``commands`` is the
                                          agent's one queue, which its loop drains
    .broadcaster          a sink, added to the pipeline's sinks
    .start(agent)         bind (unix sockets 0600) and serve, just before the agent says it is ready
    .stop()               before any sensor closes: refuse new calls, end streams, remove socket files

Two services share the server: Tetragon's tetragon.FineGuidanceSensors
(tetra's CLI, and clients generated from Tetragon's .proto files) and
tetra.api.v1.Tetra, whose one call is GetStatus (`tetra status`).

Handlers are registered from the services' descriptors rather than the
generated servicers, for two reasons: GetEvents yields bytes serialized
once per event (the generated code would serialize per subscriber), and a
request that does not parse is answered INVALID_ARGUMENT (gRPC's own answer
would be INTERNAL).

The API controls the agent (policies that kill processes) and streams every
process's command line, so it is root's alone: the unix socket by its mode,
a host:port address by TLS, which the constructor insists on. Plain TCP needs
--server-insecure-tcp, and then every start logs a warning, as does TLS that
asks clients for no certificate: whoever reaches the port is in control.
"""

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from tetra.api import pb, tg_sensors
from tetra.api.address import Address, AddressError, check_bindable, parse_address, prepare_socket_path
from tetra.agent.commands import CommandQueue
from tetra.api.broadcast import MAX_SUBSCRIBERS, Broadcaster
from tetra.api.service import TetraService
from tetra.api.tetragon_service import TetragonService
from tetra.policy.limits import MAX_FILE_BYTES

if TYPE_CHECKING:
    from tetra.agent.runner import Agent

log = logging.getLogger(__name__)

# A policy file may be MAX_FILE_BYTES; anything bigger is refused by gRPC (RESOURCE_EXHAUSTED)
# before a byte of it is parsed.
MAX_REQUEST_BYTES = MAX_FILE_BYTES + 64 * 1024
WORKERS = MAX_SUBSCRIBERS + 8  # every stream holds a thread; the rest answer unary calls
STOP_GRACE_S = 1.0


@dataclass(frozen=True)
class TlsFiles:
    """--server-tls-*: a certificate and key make TCP addresses TLS; a client CA makes them mTLS."""

    cert_file: str | None = None
    key_file: str | None = None
    client_ca_file: str | None = None

    def credentials(self) -> grpc.ServerCredentials | None:
        if not (self.cert_file or self.key_file or self.client_ca_file):
            return None
        if not (self.cert_file and self.key_file):
            raise AddressError("TLS needs both --server-tls-cert-file and --server-tls-key-file")
        client_ca = _read(self.client_ca_file, "--server-tls-client-ca-file") if self.client_ca_file else None
        return grpc.ssl_server_credentials([(_read(self.key_file, "--server-tls-key-file"),
                                             _read(self.cert_file, "--server-tls-cert-file"))],
                                           root_certificates=client_ca, require_client_auth=client_ca is not None)


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise AddressError(f"{flag} {path}: {err.strerror}") from None


class Malformed:
    """A request that did not parse; the handler answers INVALID_ARGUMENT instead of calling the service."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class ApiServer:
    """The gRPC endpoints of one agent run."""

    def __init__(self, addresses: tuple[str, ...], commands: CommandQueue, tls: TlsFiles = TlsFiles(),
                 insecure_tcp: bool = False, cluster_name: str = "") -> None:
        self.addresses: list[Address] = [parse_address(a) for a in addresses]
        self._credentials = tls.credentials()
        self._client_auth = tls.client_ca_file is not None
        tcp = [a for a in self.addresses if a.unix_path is None]
        if tcp and self._credentials is None and not insecure_tcp:
            raise AddressError(f"refusing to serve at {tcp[0]} without TLS: any local user could control the agent; "
                               "give --server-tls-cert-file and --server-tls-key-file (and "
                               "--server-tls-client-ca-file for mutual TLS), or --server-insecure-tcp to accept that")
        for address in self.addresses:
            if address.unix_path is not None:
                prepare_socket_path(address.unix_path)
            check_bindable(address)
        self.broadcaster = Broadcaster(target=", ".join(map(str, self.addresses)), cluster_name=cluster_name)
        self.commands = commands
        self.stopping = threading.Event()
        self._server: grpc.Server | None = None
        self._service: TetraService | None = None
        self._sockets: list[tuple[Path, tuple[int, int, int]]] = []  # what we bound, to remove only ours

    def start(self, agent: "Agent") -> None:
        self._service = TetraService(agent, self.broadcaster, self.commands, self.stopping)
        handlers = [_handlers(self._service, pb.DESCRIPTOR.services_by_name["Tetra"]),
                    _handlers(TetragonService(self._service),
                              tg_sensors.DESCRIPTOR.services_by_name["FineGuidanceSensors"])]
        server = grpc.server(ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="tetra-api"),
                             handlers=handlers, maximum_concurrent_rpcs=WORKERS,
                             options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                                      ("grpc.so_reuseport", 0)])
        for address in self.addresses:
            self._bind(server, address)
        server.start()
        self._server = server
        log.info("API serving at %s", ", ".join(map(str, self.addresses)))
        for address in self.addresses:
            if address.unix_path is None and not self._client_auth:
                log.warning("API at %s: %s: any local user can control the agent and read every event", address,
                            "plain TCP (--server-insecure-tcp)" if self._credentials is None
                            else "TLS without client certificates (no --server-tls-client-ca-file)")

    def _bind(self, server: grpc.Server, address: Address) -> None:
        if address.unix_path is None:
            if self._credentials is not None:
                _add_port(lambda: server.add_secure_port(address.target, self._credentials), address)
            else:
                _add_port(lambda: server.add_insecure_port(address.target), address)
            return
        path = address.unix_path
        prepare_socket_path(path)  # again: time has passed since the constructor checked
        old_umask = os.umask(0o177)  # the socket is born 0600: no moment when others could connect
        try:
            _add_port(lambda: server.add_insecure_port(address.target), address)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._sockets.append((path, _identity(path)))

    def stop(self) -> None:
        """Fail queued calls, end streams, stop serving and remove our socket files."""
        self.stopping.set()
        self.commands.close()
        if self._server is not None:
            self._server.stop(STOP_GRACE_S).wait()
            self._server = None
        for path, identity in self._sockets:
            try:
                if _identity(path) == identity:  # not a socket another agent bound there since
                    path.unlink()
            except FileNotFoundError:
                pass
        self._sockets.clear()


def _identity(path: Path) -> tuple[int, int, int]:
    """Device, inode and change time: an inode number alone may be reused by a newer file."""
    st = path.lstat()
    return st.st_dev, st.st_ino, st.st_ctime_ns


def _add_port(add: Callable[[], int], address: Address) -> None:
    """gRPC says a bind failed by returning 0 or, in newer versions, raising RuntimeError."""
    try:
        port = add()
    except RuntimeError as err:
        raise AddressError(f"cannot serve at {address}: {err}") from None
    if port == 0:
        raise AddressError(f"cannot serve at {address}: the address is in use or not local")


def _handlers(service: object, descriptor: ServiceDescriptor) -> grpc.GenericRpcHandler:
    """One handler per RPC of ``descriptor`` that ``service`` has a method for (the others are
    UNIMPLEMENTED, gRPC's answer for a call the server does not know)."""
    handlers = {}
    for method in descriptor.methods:
        if not hasattr(service, method.name):
            continue
        request_class = GetMessageClass(method.input_type)
        behavior = _guarded(getattr(service, method.name))
        deserialize = _lenient(request_class)
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                behavior, request_deserializer=deserialize, response_serializer=_already_bytes)
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                behavior, request_deserializer=deserialize,
                response_serializer=GetMessageClass(method.output_type).SerializeToString)
    return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)


def _already_bytes(data: bytes) -> bytes:
    """GetEvents yields events serialized by the Broadcaster, once for every subscriber."""
    return data


def _lenient(request_class: Any) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return request_class.FromString(data)
        except DecodeError as err:
            return Malformed(err)

    return deserialize


def _guarded(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {request.error}")
        return behavior(request, context)

    return handle
