#!/usr/bin/env bash
# Generate tetra's gRPC code from tetra/api/tetra.proto (never committed) with
# the grpcio-tools of the given Python, and stamp it with the .proto's hash,
# which tetra.api checks at import. Used by setup.sh and the Containerfile.
# Usage: scripts/gen_api.sh PYTHON
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${1:?usage: gen_api.sh PYTHON}
(cd "$here" && "$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
    tetra/api/tetra.proto)
sha256sum "$here/tetra/api/tetra.proto" | cut -d' ' -f1 > "$here/tetra/api/tetra_pb2.sha256"
