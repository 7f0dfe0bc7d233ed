"""The generated gRPC code's stamp: scripts/gen_api.sh and tetra.api hash the same .proto files alike,
so that changing any of them (tetra.proto or Tetragon's) makes tetra.api ask for regeneration."""

import subprocess
from pathlib import Path

from tetra.api import proto_hash

REPO = Path(__file__).parents[2]


def test_gen_api_and_tetra_api_agree_on_the_hash() -> None:
    done = subprocess.run([str(REPO / "scripts" / "gen_api.sh"), "--hash"], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == proto_hash() == (REPO / "tetra" / "api" / "tetra_pb2.sha256").read_text().strip()


def test_the_hash_covers_tetragons_protos(tmp_path: Path) -> None:
    for name in ("tetra.proto", "tetragon/events.proto"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / "tetra.proto").write_text("a")
    (tmp_path / "tetragon" / "events.proto").write_text("b")
    before = proto_hash(tmp_path)
    (tmp_path / "tetragon" / "events.proto").write_text("c")
    assert proto_hash(tmp_path) != before
