"""The cache of compiled policy objects: what does not change between starts, kept on disk.

A policy's compiled object (tetra/sensors/bpfobj.py) depends only on its C
text, the compiler flags, the kernel (release, build, BTF), the kernel headers
bcc compiles against, bcc and tetra: all of it goes into the key, so a stale
entry is never found, only rebuilt. What is loaded into the kernel comes from
these files, so nobody but root may be able to change them: the directory is
root's and 0700, each file root's and writable by no one else, both checked
before every read; an entry that fails a check (owner, mode, a damaged or
altered content: the file carries a digest of what it holds) is rejected with
a log line, removed, and rebuilt. Entries unused for ``MAX_AGE_S`` (a kernel
or tetra upgrade leaves the old ones behind) are removed when the agent starts;
every use renews an entry's time.
"""

import hashlib
import logging
import os
import stat
import tempfile
import time
from pathlib import Path

import orjson

from tetra.sensors.bpfobj import ObjectSpec

log = logging.getLogger(__name__)
DEFAULT_DIR = "/var/cache/tetra"
FORMAT = 1
MAX_AGE_S = 30 * 86400
BTF_PATH = Path("/sys/kernel/btf/vmlinux")


class CacheUnusable(Exception):
    """The directory cannot be trusted or made (reason in the message)."""


def environment() -> dict[str, str]:
    """What, beside the C text and flags, decides what clang and bcc make of it."""
    from bcc.version import __version__ as bcc_version

    from tetra import __version__

    uname = os.uname()
    try:
        btf = hashlib.sha256(BTF_PATH.read_bytes()).hexdigest()
    except OSError:
        btf = "none"
    headers = Path("/lib/modules") / uname.release / "build"
    return {"format": str(FORMAT), "tetra": __version__, "bcc": bcc_version, "release": uname.release,
            "kernel_build": uname.version, "btf": btf, "headers": os.path.realpath(headers),
            "cpus": str(os.cpu_count())}


def cache_key(text: str, cflags: list[str], env: dict[str, str]) -> str:
    doc = orjson.dumps({"text": text, "cflags": cflags, "env": env}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(doc).hexdigest()


class ObjectCache:
    """Entries ``<key>.json`` in ``directory`` (created root-only if missing)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self._prepare()

    def _prepare(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.lstat(self.directory)
        except OSError as err:
            raise CacheUnusable(f"cannot create {self.directory}: {err.strerror}") from err
        if not stat.S_ISDIR(st.st_mode):
            raise CacheUnusable(f"{self.directory} is not a directory")
        if st.st_uid != os.geteuid():
            raise CacheUnusable(f"{self.directory} is owned by uid {st.st_uid}, not {os.geteuid()}")
        if st.st_mode & 0o022:
            raise CacheUnusable(f"{self.directory} is writable by others (mode {stat.S_IMODE(st.st_mode):o})")
        if st.st_mode & 0o077:
            os.chmod(self.directory, 0o700)
        self._prune()

    def _prune(self) -> None:
        """Remove entries unused for MAX_AGE_S, and temporary files a crashed write left."""
        now = time.time()
        for path in self.directory.iterdir():
            try:
                if now - path.lstat().st_mtime > (MAX_AGE_S if path.suffix == ".json" else 3600):
                    path.unlink()
            except OSError:
                continue

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> ObjectSpec | None:
        """The entry, or None when there is none or it was rejected (then removed: it is rebuilt)."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as err:
            return self._reject(path, f"cannot open it: {err.strerror}")
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return self._reject(path, "not a regular file")
            if st.st_uid != os.geteuid():
                return self._reject(path, f"owned by uid {st.st_uid}")
            if st.st_mode & 0o022:
                return self._reject(path, f"writable by others (mode {stat.S_IMODE(st.st_mode):o})")
            with os.fdopen(fd, "rb") as f:
                fd = -1
                data = f.read()
                os.utime(f.fileno())  # used: kept another MAX_AGE_S
        finally:
            if fd >= 0:
                os.close(fd)
        try:
            doc = orjson.loads(data)
            body = orjson.dumps(doc["object"], option=orjson.OPT_SORT_KEYS)
            if doc.get("format") != FORMAT or doc.get("key") != key:
                return self._reject(path, "written for another key or format")
            if doc.get("sha256") != hashlib.sha256(body).hexdigest():
                return self._reject(path, "its content does not match its digest")
            return ObjectSpec.from_json(doc["object"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            return self._reject(path, f"malformed: {err}")

    def put(self, key: str, spec: ObjectSpec) -> None:
        """Written to a temporary file and renamed: a reader sees the whole entry or none."""
        body = spec.to_json()
        doc = {"format": FORMAT, "key": key, "object": body,
               "sha256": hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()}
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps(doc))
            os.replace(tmp, self._path(key))
        except OSError as err:
            log.warning("policy cache: cannot write %s: %s", self._path(key), err.strerror)

    @staticmethod
    def _reject(path: Path, reason: str) -> None:
        log.warning("policy cache: %s rejected (%s); it is rebuilt", path, reason)
        try:
            os.unlink(path)
        except OSError:
            pass
        return None
