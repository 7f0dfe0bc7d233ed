"""The CLI's end of the API: a channel to the agent, its calls, and failures said plainly.

The CLI speaks Tetragon's FineGuidanceSensors, as Tetragon's own tetra does,
and tetra.api.v1.Tetra for the calls Tetragon has no match for (GetStatus).

Every gRPC failure becomes a ``ClientError`` whose message says what to do:
no agent at the address, a socket only root may use, a call that timed out,
or the agent's own reason (an invalid policy, an unknown name).
"""

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tetra.agent.config import DEFAULT_SERVER_ADDRESS
from tetra.api import pb, pb_grpc, tg_sensors_grpc
from tetra.api.address import Address, parse_address
from tetra.errors import TetraError

# Generous on purpose: the agent enforces its own limit on requests and says so
# (RESOURCE_EXHAUSTED), which is a clearer message than a local refusal.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_TETRA_METHODS = frozenset(pb.DESCRIPTOR.services_by_name["Tetra"].methods_by_name)  # the rest: Tetragon's


class ClientError(TetraError):
    """A call to the agent failed; the message is for the user."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ClientOptions:
    """Where the agent is and how to reach it (the CLI's --server-address, --timeout, --retries, --tls-*)."""

    address: str = DEFAULT_SERVER_ADDRESS
    timeout: float = 10.0
    retries: int = 0  # calls retried when the agent is unavailable, as Tetragon's tetra --retries
    tls_ca_files: tuple[str, ...] = ()
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_server_name: str | None = None


class Client:
    """One connection to an agent."""

    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self.address: Address = parse_address(options.address)
        channel_options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                                  ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
        if options.tls_server_name:
            channel_options.append(("grpc.ssl_target_name_override", options.tls_server_name))
        credentials = self._credentials()
        if credentials is None:
            self.channel = grpc.insecure_channel(self.address.target, options=channel_options)
        else:
            self.channel = grpc.secure_channel(self.address.target, credentials, options=channel_options)
        self.stub = tg_sensors_grpc.FineGuidanceSensorsStub(self.channel)
        self.tetra_stub = pb_grpc.TetraStub(self.channel)

    def _credentials(self) -> grpc.ChannelCredentials | None:
        o = self.options
        if not (o.tls_ca_files or o.tls_cert_file or o.tls_key_file):
            return None
        if bool(o.tls_cert_file) != bool(o.tls_key_file):
            raise ClientError("a client certificate needs both --tls-cert-file and --tls-key-file")
        return grpc.ssl_channel_credentials(
            root_certificates=b"\n".join(_read(f) for f in o.tls_ca_files) if o.tls_ca_files else None,
            private_key=_read(o.tls_key_file) if o.tls_key_file else None,
            certificate_chain=_read(o.tls_cert_file) if o.tls_cert_file else None)

    def call(self, method: str, request: Any) -> Any:
        """A unary call of FineGuidanceSensors, e.g. ``call("GetVersion", tg_sensors.GetVersionRequest())``,
        or tetra.api.v1's ``call("GetStatus", pb.GetStatusRequest())``; one the agent was not
        there for (UNAVAILABLE: not started yet, restarting) is retried ``retries`` times after a
        random wait of up to 1s, doubling, as gRPC's retry policy in Tetragon's tetra does."""
        attempt = 0
        while True:
            try:
                return self._call_once(method, request)
            except ClientError as err:
                if err.code != grpc.StatusCode.UNAVAILABLE or attempt >= self.options.retries:
                    raise
            time.sleep(random.uniform(0, 2.0 ** attempt))
            attempt += 1

    def _call_once(self, method: str, request: Any) -> Any:
        self._check_socket()
        try:
            stub = self.tetra_stub if method in _TETRA_METHODS else self.stub
            return getattr(stub, method)(request, timeout=self.options.timeout)
        except grpc.RpcError as err:
            raise self.error(err) from None

    def events(self, request: Any) -> Iterator[Any]:
        """The GetEvents stream; it has no deadline (it ends when the agent stops or on error)."""
        self._check_socket()
        stream = self.stub.GetEvents(request)
        try:
            yield from stream
        except grpc.RpcError as err:
            raise self.error(err) from None
        finally:
            stream.cancel()

    def close(self) -> None:
        self.channel.close()

    def _check_socket(self) -> None:
        """Say what is wrong with a unix socket path before gRPC hides it behind "unavailable"."""
        path = self.address.unix_path
        if path is None:
            return
        try:
            path.stat()
        except FileNotFoundError:
            raise ClientError(self._absent(), grpc.StatusCode.UNAVAILABLE) from None
        except PermissionError:  # the directory (0700) keeps others out before the socket does
            raise ClientError(_denied(self.address), grpc.StatusCode.PERMISSION_DENIED) from None
        except OSError as err:
            raise ClientError(f"cannot reach {self.address}: {err.strerror}", grpc.StatusCode.UNAVAILABLE) from None
        if not os.access(path, os.R_OK | os.W_OK):
            raise ClientError(_denied(self.address), grpc.StatusCode.PERMISSION_DENIED)

    def _absent(self) -> str:
        return f"no tetra agent at {self.address}: is `tetra agent` running?"

    def error(self, err: grpc.RpcError) -> ClientError:
        """The failure of a call as a message for the user."""
        code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
        details = str(err.details() or "")  # type: ignore[attr-defined]
        if code == grpc.StatusCode.UNAVAILABLE:
            if "ermission denied" in details:
                return ClientError(_denied(self.address), code)
            if "shutting down" in details or "stopping" in details:
                return ClientError(f"the agent at {self.address} is stopping", code)
            if any(word in details for word in ("SSL", "ssl", "TLS", "handshake", "certificate")):
                return ClientError(f"TLS with {self.address} failed (check --tls-ca-cert-files, --tls-cert-file, "
                                   f"--tls-key-file, --tls-server-name): {details}", code)
            if self.address.unix_path is None and "Socket closed" in details:
                # a TLS agent hangs up on a plain client, and on a TLS client without the certificate it wants
                return ClientError(f"the agent at {self.address} closed the connection: does it want TLS "
                                   "(--tls-ca-cert-files) or a client certificate (--tls-cert-file, --tls-key-file)?",
                                   code)
            return ClientError(f"{self._absent()} ({details})" if details else self._absent(), code)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ClientError(f"the agent at {self.address} did not answer within {self.options.timeout:g}s"
                               f"{': ' + details if details and 'Deadline' not in details else ''}", code)
        return ClientError(details or code.name.lower().replace("_", " "), code)


def _denied(address: Address) -> str:
    return f"permission denied on {address}: the agent's socket is for root (try sudo)"


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ClientError(f"{path}: {err.strerror}") from None

