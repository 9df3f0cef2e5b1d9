#!/usr/bin/env bash
# Installs a CRIU that works on this kernel into a private prefix, without
# touching the machine's libc or any installed package.
#
# Debian 12's criu 3.17.1 fails `criu check` on kernel 6.18 (vdso). Debian
# 13's (trixie) criu 4.1.1 dumps plain processes but fails on any TCP
# socket on kernels >= 6.16 ("Can't get 1:16 opt": SO_PASSCRED is now
# refused on inet sockets; fixed in CRIU 4.2), so the default is Debian
# 14's (forky) criu 4.2.x; VESSEL_CRIU_SUITE=trixie selects 4.1.1. We fetch
# criu and every shared library it loads from that suite, unpack them with `dpkg -x` under $PREFIX/root, and run criu
# through that tree's own dynamic loader with --library-path, so nothing
# of the host's /lib is used by criu and nothing of that suite reaches the host.
#
# apt is used through a private configuration (its own sources list, lists
# and cache under $PREFIX/apt) that names only that suite, pinned to priority
# 100 as a second guard: the machine's own apt state, sources and pins are
# not changed, so no `apt-get upgrade` can ever pull its packages.
#
# Result: $PREFIX/bin/criu, a wrapper any tool (go-criu, `vessel
# checkpoint --criu`) can run as the criu binary. Idempotent: a second run
# with a working wrapper does nothing.
#
# Usage: .ci/install-criu.sh [PREFIX]   (default /opt/vessel-criu)
set -euo pipefail

PREFIX=${1:-${VESSEL_CRIU_PREFIX:-/opt/vessel-criu}}
MIRROR=${VESSEL_CRIU_MIRROR:-http://deb.debian.org/debian}
SUITE=${VESSEL_CRIU_SUITE:-forky}
ARCH=$(dpkg --print-architecture)
WRAPPER=$PREFIX/bin/criu

if [ "$(id -u)" != 0 ]; then
	echo "install-criu.sh: run as root" >&2
	exit 1
fi

case "$ARCH" in
amd64) LOADER=lib64/ld-linux-x86-64.so.2 MULTIARCH=x86_64-linux-gnu ;;
arm64) LOADER=lib/ld-linux-aarch64.so.1 MULTIARCH=aarch64-linux-gnu ;;
*)
	echo "install-criu.sh: architecture $ARCH not supported" >&2
	exit 1
	;;
esac

# write_wrapper ROOT LOADER LIBPATH writes $WRAPPER.
write_wrapper() {
	mkdir -p "$PREFIX/bin"
	{
		echo '#!/bin/sh'
		echo "# criu from Debian $SUITE, run through its own dynamic loader and libraries"
		echo "# (installed by vessel's .ci/install-criu.sh). Only criu itself uses them:"
		echo '# programs criu starts (ip, iptables, tar) are the host'"'"'s own.'
		echo '#'
		echo '# CRIU_FAULT=130 makes criu catch the end of its parasite code by syscall'
		echo '# tracing instead of a hardware breakpoint: under some hypervisors (this'
		echo '# CI'"'"'s VMs) debug-register breakpoints never fire, and criu dump then'
		echo '# hangs for ever right after "new_sp=... ip ...". Set'
		echo '# VESSEL_CRIU_HW_BREAKPOINTS=1 to use breakpoints where they work.'
		echo 'if [ "${VESSEL_CRIU_HW_BREAKPOINTS:-0}" != 1 ] && [ -z "${CRIU_FAULT:-}" ]; then'
		echo '	CRIU_FAULT=130'
		echo '	export CRIU_FAULT'
		echo 'fi'
		echo "exec \"$1/$2\" --library-path \"$3\" \"$1/usr/sbin/criu\" \"\$@\""
	} >"$WRAPPER.new"
	chmod 755 "$WRAPPER.new"
	mv "$WRAPPER.new" "$WRAPPER"
}

# Already unpacked: only (re)write the wrapper.
ROOT=$PREFIX/root
LIBPATH=$ROOT/lib/$MULTIARCH:$ROOT/usr/lib/$MULTIARCH:$ROOT/lib:$ROOT/usr/lib
for l in "$LOADER" "usr/$LOADER"; do
	if [ "$(cat "$PREFIX/suite" 2>/dev/null)" = "$SUITE" ] && [ -x "$ROOT/usr/sbin/criu" ] && [ -e "$ROOT/$l" ] &&
		"$ROOT/$l" --library-path "$LIBPATH" "$ROOT/usr/sbin/criu" --version >/dev/null 2>&1; then
		write_wrapper "$ROOT" "$l" "$LIBPATH"
		echo "install-criu.sh: $("$WRAPPER" --version | head -1) already at $WRAPPER"
		exit 0
	fi
done

APT=$PREFIX/apt
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/debs" "$APT/etc/preferences.d" "$APT/etc/sources.list.d"
cat >"$APT/etc/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main
EOF
cat >"$APT/etc/preferences.d/vessel-criu" <<EOF
Package: *
Pin: release n=$SUITE
Pin-Priority: 100
EOF
aptopts=(
	-o "Dir::Etc::SourceList=$APT/etc/sources.list"
	-o "Dir::Etc::SourceParts=$APT/etc/sources.list.d"
	-o "Dir::Etc::Preferences=$APT/etc/preferences"
	-o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
	-o "Dir::State::Lists=$APT/lists"
	-o "Dir::Cache=$APT"
	-o "Dir::Cache::Archives=$APT/archives"
	-o "Dir::State::status=$APT/status"
	-o "APT::Architecture=$ARCH"
	-o "APT::Architectures::=$ARCH"
	-o "Debug::NoLocking=1"
	-o "APT::Sandbox::User=root"
	-q
)
# An empty dpkg status: resolve the suite's dependencies as if nothing were
# installed, so every library criu loads comes from the same release.
: >"$APT/status"

echo "install-criu.sh: reading $SUITE package lists"
apt-get "${aptopts[@]}" update >/dev/null

# Every package criu needs at run time, minus what is not a library (its
# dependencies on tools like iproute2 are satisfied by the host's own).
mapfile -t pkgs < <(apt-cache "${aptopts[@]}" depends --recurse --no-recommends --no-suggests \
	--no-conflicts --no-breaks --no-replaces --no-enhances criu |
	grep -v '^ ' | grep -v '^<' | sort -u |
	grep -E '^(criu|lib[a-z0-9.+-]+|gcc-[0-9]+-base)$' |
	grep -v -E '^(libc-bin|libpython|libperl|libselinux1-dev)')
echo "install-criu.sh: downloading ${pkgs[*]}"
(cd "$APT/debs" && apt-get "${aptopts[@]}" download "${pkgs[@]/%//$SUITE}" >/dev/null)

ROOT=$PREFIX/root.new
rm -rf "$ROOT"
mkdir -p "$ROOT"
for deb in "$APT"/debs/*.deb; do
	dpkg -x "$deb" "$ROOT"
done
if [ ! -x "$ROOT/usr/sbin/criu" ] || [ ! -e "$ROOT/$LOADER" ] && [ ! -e "$ROOT/usr/$LOADER" ]; then
	echo "install-criu.sh: criu or the dynamic loader missing from the downloaded packages" >&2
	exit 1
fi
# Merged-/usr packages keep the loader under usr/.
[ -e "$ROOT/$LOADER" ] || LOADER=usr/$LOADER

rm -rf "$PREFIX/root"
mv "$ROOT" "$PREFIX/root"
ROOT=$PREFIX/root
LIBPATH=$ROOT/lib/$MULTIARCH:$ROOT/usr/lib/$MULTIARCH:$ROOT/lib:$ROOT/usr/lib

write_wrapper "$ROOT" "$LOADER" "$LIBPATH"
echo "$SUITE" >"$PREFIX/suite"

# Every library must resolve inside the prefix.
if "$ROOT/$LOADER" --library-path "$LIBPATH" --list "$ROOT/usr/sbin/criu" | grep -q 'not found'; then
	"$ROOT/$LOADER" --library-path "$LIBPATH" --list "$ROOT/usr/sbin/criu" | grep 'not found' >&2
	echo "install-criu.sh: unresolved libraries" >&2
	exit 1
fi
rm -rf "$APT/debs" "$APT/archives"
echo "install-criu.sh: $("$WRAPPER" --version | head -1) installed at $WRAPPER"
"$WRAPPER" check || echo "install-criu.sh: warning: 'criu check' reports problems on this kernel" >&2
