#!/bin/sh
# Build the offline base image `iolab-base:bookworm-<hash>` from Debian packages.
#
# Why: this lab must work where no image registry answers (so `python:3.11-slim`
# cannot be pulled). debootstrap fetches .deb packages from the same Debian
# mirror the host's apt already uses, unpacks a minimal bookworm ("minbase":
# essential + apt only) into a directory, and `docker import` turns that
# directory tree into a one-layer image. Python 3.11 comes from bookworm's
# python3 package (3.11.2), the same minor version the host's wheels target.
#
# Usage: docker/base/mkbase.sh TAG
#   IOLAB_DEBIAN_MIRROR=URL overrides the mirror read from the host's apt sources.
#   Needs root (debootstrap chroots and creates device nodes) and a running daemon.
set -eu

TAG=${1:?usage: mkbase.sh TAG}
SUITE=bookworm
# iproute2: tc, with which a shaped load's workers shape their eth0 (load.network).
# python3-venv: `python3 -m venv` + ensurepip's bundled pip, which installs the
# wheelhouse inside the image build with no network.
PACKAGES=python3,python3-venv,ca-certificates,iproute2

# Prints the first URI of each apt source whose suite is $1 (deb822 *.sources
# files, then the one-line sources.list format "deb [opts] URI SUITE ...").
apt_uris_for_suite() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v suite="$1" '
            function flush() { if (uris != "" && hit) print uris; uris = ""; hit = 0 }
            /^[[:space:]]*$/ { flush(); next }
            /^URIs:/   { uris = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
            END        { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        sed -n "s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) $1 .*/\2/p" "$f"
    done
}

# A bookworm source first; else (a newer Debian host) the mirror of its own
# release, which carries bookworm too.
mirror_from_apt_sources() {
    apt_uris_for_suite "$SUITE"
    if [ -r /etc/os-release ] && grep -q '^ID=debian' /etc/os-release; then
        apt_uris_for_suite "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    fi
}

MIRROR=${IOLAB_DEBIAN_MIRROR:-$(mirror_from_apt_sources | head -n1)}
if [ -z "$MIRROR" ]; then
    echo "mkbase: no Debian $SUITE mirror in /etc/apt/sources.list(.d); set IOLAB_DEBIAN_MIRROR" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "mkbase: debootstrap needs root; run as root or provide $TAG another way" >&2
    exit 2
fi
command -v debootstrap >/dev/null || { echo "mkbase: debootstrap missing (apt-get install debootstrap)" >&2; exit 2; }

ROOTFS=$(mktemp -d "${TMPDIR:-/tmp}/iolab-rootfs.XXXXXX")
trap 'rm -rf "$ROOTFS"' EXIT INT TERM

echo "mkbase: debootstrap $SUITE minbase from $MIRROR (a few minutes)" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >&2

# Keep the image small and deterministic-ish: no apt lists, caches or docs.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/usr/share/doc/* \
       "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/var/log/*.log

echo "mkbase: importing as $TAG" >&2
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --change 'LABEL iolab.base=debootstrap-bookworm' \
    - "$TAG" >&2
echo "$TAG"
