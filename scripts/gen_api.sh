#!/usr/bin/env bash
# Generate tetra's gRPC code (never committed) with the grpcio-tools of the
# given Python: tetra/api/tetra.proto (tetra.api.v1) and tetra/api/tetragon/
# *.proto (Tetragon's package tetragon), and stamp it with the hash of those
# .proto files, which tetra.api checks at import. Used by setup.sh and the
# Containerfile.
# Usage: scripts/gen_api.sh PYTHON     generate
#        scripts/gen_api.sh --hash     print the hash the stamp holds when up to date
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

# The .proto files in a fixed order (C collation), as tetra/api/__init__.py reads them.
proto_hash() {
    (cd "$here/tetra/api" && LC_ALL=C cat tetra.proto $(LC_ALL=C ls tetragon/*.proto)) | sha256sum | cut -d' ' -f1
}

if [ "${1:-}" = --hash ]; then
    proto_hash
    exit 0
fi
python=${1:?usage: gen_api.sh PYTHON | --hash}
# Tetragon's files import each other as "tetragon/NAME.proto" (their names in the descriptor
# pool, as in Tetragon's), and tetra.proto imports them the same way; protoc makes that
# "from tetragon import NAME_pb2", which must name this package instead.
(cd "$here/tetra/api" && "$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
    tetra.proto tetragon/*.proto)
sed -i 's/^import tetra_pb2 as /from tetra.api import tetra_pb2 as /' "$here"/tetra/api/tetra_pb2_grpc.py
sed -i 's/^from tetragon import /from tetra.api.tetragon import /' "$here"/tetra/api/tetra_pb2*.py \
    "$here"/tetra/api/tetra_pb2.pyi "$here"/tetra/api/tetragon/*_pb2*.py "$here"/tetra/api/tetragon/*_pb2.pyi
proto_hash > "$here/tetra/api/tetra_pb2.sha256"
