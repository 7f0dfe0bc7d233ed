#!/usr/bin/env bash
# Prepare this machine for tetra, idempotently: Debian packages (bcc comes from
# python3-bpfcc, never from PyPI), a kernel header tree bcc can compile against,
# tracefs/debugfs, and a virtualenv in .venv that sees Debian's bcc.
# A second run on a prepared machine only checks and takes a few seconds.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv"
say() { printf 'setup: %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "setup: run me as root (bcc loads programs into the kernel)" >&2; exit 1; }

# 1. Debian packages. dpkg-query first, so that a prepared machine never touches apt.
packages=(python3-bpfcc bpftool linux-headers-amd64 python3-venv python3-dev gcc libc6-dev rsyslog logrotate)
# The VM test lane (tests/vm) boots Debian's stock kernel under QEMU for kprobes,
# fentry and BPF LSM; linux-image-amd64 matches linux-headers-amd64 above. The lane
# boots both of bookworm's kernel series: 6.1 and 6.12 (from bookworm-security).
packages+=(qemu-system-x86 linux-image-amd64 busybox-static cpio kmod xz-utils zstd)
packages+=(linux-image-6.12-amd64 linux-headers-6.12-amd64)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Kernel headers. bcc compiles against /lib/modules/$(uname -r)/build. When the
# running kernel ships none (a custom VM kernel), use the distribution's tree. Its
# struct layouts are another kernel's: tetra's probes take every struct offset from
# the running kernel's BTF instead (tetra/kernel/btf.py), so only macros and
# tracepoint plumbing come from these headers.
kver=$(uname -r)
if [ ! -e "/lib/modules/$kver/build/include" ]; then
    # linux-headers-amd64's own tree (6.1), the one the host has always been tested
    # with, even when the VM lane's 6.12 headers are installed beside it.
    dep=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 2>/dev/null | grep -o 'linux-headers-[^ ,]*-amd64' | head -n 1)
    distro=/usr/src/$dep
    [ -n "$dep" ] && [ -d "$distro" ] || distro=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | head -n 1)
    [ -n "$distro" ] || { echo "setup: no kernel headers for $kver and none from Debian" >&2; exit 1; }
    dver=${distro#/usr/src/linux-headers-}
    if [ -d "/lib/modules/$kver" ] && [ ! -L "/lib/modules/$kver" ]; then
        ln -sfn "/lib/modules/$dver/build" "/lib/modules/$kver/build"
    else
        ln -sfn "/lib/modules/$dver" "/lib/modules/$kver"
    fi
    say "no headers for kernel $kver; using Debian's $dver headers (struct offsets come from BTF)"
fi

# 3. tracefs and debugfs (bcc looks in both).
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug

# 4. The virtualenv on Debian's python3 (the one bcc is built for), seeing its
# site packages. Reinstall only when pyproject.toml changed.
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
stamp="$venv/.tetra-installed"
want=$(sha256sum "$here/pyproject.toml" | cut -d' ' -f1)
reinstalled=no
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing tetra and its dependencies into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$here[test]"
    echo "$want" > "$stamp"
    reinstalled=yes
fi

# 5. The gRPC code, generated from tetra/api/tetra.proto and tetra/api/tetragon/*.proto
# and never committed. Regenerated when a .proto changed (their hash is the stamp,
# which tetra.api also checks at import) or grpcio-tools/protobuf may have (a reinstall).
api="$here/tetra/api"
api_stamp="$api/tetra_pb2.sha256"
want_api=$("$here/scripts/gen_api.sh" --hash)
if [ "$reinstalled" = yes ] || [ "$(cat "$api_stamp" 2>/dev/null)" != "$want_api" ] \
        || [ ! -f "$api/tetra_pb2.py" ] || [ ! -f "$api/tetra_pb2_grpc.py" ] \
        || [ ! -f "$api/tetragon/sensors_pb2_grpc.py" ]; then
    say "generating the gRPC code from tetra/api/tetra.proto and tetra/api/tetragon/*.proto"
    "$here/scripts/gen_api.sh" "$venv/bin/python"
fi
# 6. The compiled event path (tetra/_speed), built from source with the virtualenv's Cython;
# rebuilt only when its .pyx changed. Without it tetra runs the pure-Python path.
"$here/scripts/build_speed.sh" "$venv/bin/python"
"$venv/bin/python" -c "import bcc, tetra, tetra.api" \
    || { echo "setup: the virtualenv cannot import bcc, tetra or tetra.api" >&2; exit 1; }
say "ready: $venv/bin/tetra"
