"""The agent's gRPC APIs (tetra.proto, tetragon/*.proto) and the pieces both of their ends share.

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

    tetragon/       Tetragon's API (package tetragon: its names and field numbers) and its
                    FineGuidanceSensors service, which tetra's CLI and Tetragon's clients use
    tetra.proto     tetra.api.v1.Tetra: GetStatus, which Tetragon's API has no call for
    convert         event dicts <-> messages, fast and exact (protojson's mapping)
    address         unix:// and host:port addresses, socket safety checks, TLS files
    broadcast       the Broadcaster sink, subscribers, envelopes
    status          the agent's status (tetra/status, filled by Agent.status) as a StatusResponse
    diagnostics     settings, log ring and policy texts as a GetDiagnosticsResponse (tetra bugtool)
    service         the RPC implementations
    tetragon_service  FineGuidanceSensors, by way of service's calls
    server          the gRPC server: binding, permissions, start and stop
    client          the CLI's side: channel, calls, errors as messages

The modules generated from the .proto files by scripts/gen_api.sh (run by
scripts/setup.sh) are never committed; importing this package without them,
or with modules generated from older .proto files (gen_api.sh records the
hash it generated from), raises ``ApiUnavailable``.
"""

import hashlib
from pathlib import Path

from google.protobuf.descriptor import Descriptor

from tetra.errors import TetraError


class ApiUnavailable(TetraError, ImportError):
    """The generated gRPC modules are missing or stale: scripts/setup.sh was not run."""


def proto_hash(here: Path = Path(__file__).parent) -> str:
    """The hash of the .proto files, as scripts/gen_api.sh stamps it (the same files, in its order)."""
    protos = [here / "tetra.proto", *sorted(here.glob("tetragon/*.proto"), key=lambda p: p.name.encode())]
    return hashlib.sha256(b"".join(proto.read_bytes() for proto in protos)).hexdigest()


def _check_generated() -> None:
    here = Path(__file__).parent
    stamp = here / "tetra_pb2.sha256"
    if (here / "tetra.proto").exists() and stamp.exists():
        if proto_hash(here) != stamp.read_text().strip():
            raise ApiUnavailable("the gRPC code is older than tetra/api/*.proto: run scripts/setup.sh to "
                                 "generate the gRPC code")


_check_generated()
try:
    from tetra.api import tetra_pb2 as pb
    from tetra.api import tetra_pb2_grpc as pb_grpc
    from tetra.api.tetragon import events_pb2 as tg_events
    from tetra.api.tetragon import sensors_pb2 as tg_sensors
    from tetra.api.tetragon import sensors_pb2_grpc as tg_sensors_grpc
    from tetra.api.tetragon import tetragon_pb2 as tg_tetragon
except ImportError as err:
    raise ApiUnavailable("the gRPC code is missing: run scripts/setup.sh to generate the gRPC code") from err
except Exception as err:  # VersionError, RuntimeError: generated for another grpcio or protobuf
    raise ApiUnavailable(f"the gRPC code does not fit the installed grpcio/protobuf ({err}): run "
                         "scripts/setup.sh to generate the gRPC code") from err



def tetragon_events() -> Descriptor:
    """Tetragon's GetEventsResponse: what a filter's ``cel_expression`` reads (tetra.filters.cel),
    as Tetragon evaluates it against that message."""
    return tg_events.GetEventsResponse.DESCRIPTOR


__all__ = ["ApiUnavailable", "proto_hash", "pb", "pb_grpc", "tetragon_events", "tg_events", "tg_sensors",
           "tg_sensors_grpc", "tg_tetragon"]
