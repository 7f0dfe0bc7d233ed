"""The agent's gRPC API (tetra.proto) and the pieces both of its ends share.

::

    Pipeline._emit ──Event──> Broadcaster (a sink)               agent thread: never blocks
                                     │ event.data: the dict, made only while someone subscribes
                                     │ per subscriber: filter, put_nowait (full: drop + count)
                                     ▼
                           Subscriber queues (bounded)           gRPC threads
                                     │ Envelope.encoded(): dict -> protobuf bytes, once per event
                                     ▼
                             GetEvents streams ──> tetra getevents

    tetra tracingpolicy / status ──RPC──> gRPC thread: policy YAML validated (node budget, deadline)
                                            └──> CommandQueue ──> agent thread (bcc objects live there)

    tetra.proto     messages (Tetragon's field names) and the Tetra service
    convert         event dicts <-> messages, fast and exact (protojson's mapping)
    address         unix:// and host:port addresses, socket safety checks, TLS files
    broadcast       the Broadcaster sink, subscribers, envelopes
    status          the agent's status (tetra/status, filled by Agent.status) as a StatusResponse
    service         the RPC implementations
    server          the gRPC server: binding, permissions, start and stop
    client          the CLI's side: channel, calls, errors as messages

The modules generated from tetra.proto by scripts/setup.sh are never
committed; importing this package without them, or with modules generated
from an older tetra.proto (setup.sh records the hash it generated from),
raises ``ApiUnavailable``.
"""

import hashlib
from pathlib import Path

from tetra.errors import TetraError


class ApiUnavailable(TetraError, ImportError):
    """The generated gRPC modules are missing or stale: scripts/setup.sh was not run."""


def _check_generated() -> None:
    here = Path(__file__).parent
    proto, stamp = here / "tetra.proto", here / "tetra_pb2.sha256"
    if proto.exists() and stamp.exists():
        if hashlib.sha256(proto.read_bytes()).hexdigest() != stamp.read_text().strip():
            raise ApiUnavailable("the gRPC code is older than tetra/api/tetra.proto: run scripts/setup.sh to "
                                 "generate the gRPC code")


_check_generated()
try:
    from tetra.api import tetra_pb2 as pb
    from tetra.api import tetra_pb2_grpc as pb_grpc
except ImportError as err:
    raise ApiUnavailable("the gRPC code is missing: run scripts/setup.sh to generate the gRPC code") from err
except Exception as err:  # VersionError, RuntimeError: generated for another grpcio or protobuf
    raise ApiUnavailable(f"the gRPC code does not fit the installed grpcio/protobuf ({err}): run "
                         "scripts/setup.sh to generate the gRPC code") from err

__all__ = ["ApiUnavailable", "pb", "pb_grpc"]
