"""The Containerfile's build, without a container engine (none is on these machines).

Its apt step must name only packages scripts/setup.sh installs on the host (so
they are present here); every other step is run for real against a copy of
what it COPYs, with /opt/... paths moved into a temporary directory: the
virtualenv is made, tetra installed from the copy, the gRPC code generated,
and the image's own import check passes.
"""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_apt_packages_are_those_setup_installs() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    [apt] = [args for word, args in instructions() if word == "RUN" and "apt-get install" in args]
    install = apt.split("apt-get install", 1)[1].split("&&", 1)[0].split()
    packages = [word for word in install if not word.startswith("-")]
    assert packages and all(re.search(rf"\b{re.escape(p)}\b", setup) for p in packages), packages


def test_the_build_steps_run(tmp_path: Path) -> None:
    root = tmp_path / "opt"
    workdir = None
    for word, args in instructions():
        if word == "WORKDIR":
            workdir = root / args.removeprefix("/opt/")
            workdir.mkdir(parents=True)
        elif word == "COPY":
            assert workdir is not None
            *sources, dest = shlex.split(args)
            for source in sources:
                src, target = REPO / source, workdir / dest.rstrip("/") / Path(source).name \
                    if dest.endswith("/") else workdir / dest
                if src.is_dir():
                    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*_pb2*"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, target)
        elif word == "RUN" and "apt-get" not in args:
            assert workdir is not None
            command = args.replace("/opt/", f"{root}/").replace("python3 -m venv", "/usr/bin/python3 -m venv")
            done = subprocess.run(["bash", "-c", command], cwd=workdir, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [entry] = [args for word, args in instructions() if word == "ENTRYPOINT"]
    assert (root / "venv" / "bin" / "tetra").exists() and entry == '["tetra"]'
    version = subprocess.run([str(root / "venv" / "bin" / "tetra"), "--help"], capture_output=True, text=True)
    assert version.returncode == 0 and "agent" in version.stdout
