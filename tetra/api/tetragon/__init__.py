"""Tetragon's gRPC API (package tetragon), as tetra serves it: the .proto files here
and the modules scripts/gen_api.sh generates from them (never committed).

Message and field names, types and numbers are Tetragon's, so that a client
generated from Tetragon's own .proto files works against tetra unchanged;
fields numbered 10000 to 19999 are tetra's additions, which such a client
skips. tests/unit/test_tetragon_proto_numbers.py holds the numbers to
Tetragon's documented ones.
"""
