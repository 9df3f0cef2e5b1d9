#!/usr/bin/env bash
# The whole test suite, as root, on a Debian machine with Go installed.
# It installs the Debian packages the tests use, checks formatting and vet,
# runs every package's tests on this host (whatever its cgroup layout), and
# then runs the cgroup-sensitive packages again inside a qemu guest booted
# with Debian's kernel on a pure cgroup v2 hierarchy.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"
export CGO_ENABLED=0

if [ "$(id -u)" != 0 ]; then
	echo "test.sh: run as root (the tests create namespaces, mounts and cgroups)" >&2
	exit 1
fi

# tool -> Debian package
declare -A need=(
	[busybox]=busybox-static
	[qemu-system-x86_64]=qemu-system-x86
	[cpio]=cpio
	[mksquashfs]=squashfs-tools
	[mkfs.ext4]=e2fsprogs
	[mkfs.erofs]=erofs-utils
	[ip]=iproute2
	[iperf3]=iperf3
	[bwrap]=bubblewrap
	[runc]=runc
	[newuidmap]=uidmap
	[debootstrap]=debootstrap
	[podman]=podman
	[containerd]=containerd
	[mkfs.xfs]=xfsprogs
	[gcc]=gcc
)
missing=()
for tool in "${!need[@]}"; do
	command -v "$tool" >/dev/null 2>&1 || [ -x "/bin/$tool" ] || [ -x "/sbin/$tool" ] || missing+=("${need[$tool]}")
done
# CNI plugins for the containerd CRI tests (not on PATH)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
	echo "test.sh: installing ${missing[*]}"
	# Another apt or dpkg (an unattended upgrade, another engineer's run) may
	# hold the lock: wait for it rather than fail at once.
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
		install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== CRIU in a private prefix (.ci/install-criu.sh)"
.ci/install-criu.sh

echo "== gofmt, vet, static build"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed: $unformatted" >&2
	exit 1
fi
go vet ./...
go build ./...

echo "== staticcheck (staticcheck.conf)"
# A pinned release, fetched and built through the Go module proxy.
STATICCHECK_VERSION=v0.8.2
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...

# The host phase and the guest phases run whatever the other's outcome, so
# one run reports every failure; the script fails if any phase failed.
failed=()

echo "== tests on this host ($(uname -r))"
if ! go test -count=1 -p 1 -timeout 40m ./...; then
	failed+=("host ($(uname -r))")
fi

echo "== tests on a pure cgroup v2 guest (Debian kernel under qemu)"
# The guest is a busybox initramfs with no network beyond lo. CRIU comes
# from the private prefix above, with the host's GNU tar and iproute2 ip
# (which CRIU runs; busybox's lack the options it uses): the guest's
# kernel tracks dirty memory (soft-dirty), so there the checkpoint tests
# also run CRIU's pre-dump rounds, which this host's kernel cannot.
# debootstrap needs the network: the Debian image test stays on the
# host run, and the booted Debian system runs in a guest of its own
# below, with the tree the host run built.
tools=$(mktemp -d /tmp/vessel-guest-tools.XXXXXX)
cgo=$(mktemp -d /tmp/vessel-guest-cgo.XXXXXX)
trap 'rm -rf "$tools" "$cgo"' EXIT
# TestCgoCaller's dynamically linked program, built here (the guest has
# no C compiler), with the loader and C library it needs at their paths.
cgo_adds=()
if CGO_ENABLED=1 go build -o "$cgo/cgocaller" ./testdata/cgocaller; then
	cgo_adds=(-add "$cgo/cgocaller:/opt/vessel-cgo/cgocaller" -env VESSEL_CGO_CALLER=/opt/vessel-cgo/cgocaller)
	for lib in $(ldd "$cgo/cgocaller" | awk '/=> \// {print $3} $1 ~ /^\// {print $1}'); do
		cgo_adds+=(-add "$(readlink -f "$lib"):$lib")
	done
else
	failed+=("cgo caller build")
fi
if ! .ci/qemu/guest-tools.sh "$tools" tar ip mkfs.xfs; then
	failed+=("guest tools")
elif ! VESSEL_QEMU_MEM=${VESSEL_QEMU_MEM:-4096} .ci/qemu/run-v2-tests.sh -timeout 20m \
	-add /opt/vessel-criu:/opt/vessel-criu -add "$tools:/opt/vessel-tools" "${cgo_adds[@]}" \
	-env PATH=/opt/vessel-tools/bin:/bin:/sbin:/usr/bin:/usr/sbin \
	-skip 'TestDebianImageRunsApt|TestBootSystemd|TestBootExecCgroup' \
	. ./cgroups ./limits ./security ./network ./checkpoint ./internal/child; then
	failed+=("cgroup v2 guest")
fi

echo "== systemd booted in a container on the cgroup v2 guest"
# There systemd makes the container's cgroup a parent (controllers for
# its children, no processes of its own): Exec must still work. The
# Debian tree (about 270 MB) is the one the host run's boot tests built
# with debootstrap; the guest has no network to build it.
debian=/var/tmp/vessel-test-debian-systemd
if [ ! -f "$debian/complete" ]; then
	echo "test.sh: no Debian system tree at $debian (the host run's TestBootSystemd builds it)" >&2
	failed+=("booted system guest")
elif ! VESSEL_QEMU_MEM=${VESSEL_QEMU_MEM:-4096} .ci/qemu/run-v2-tests.sh -timeout 10m \
	-run '^(TestBootSystemd|TestBootExecCgroup)$' -add "$debian:$debian" .; then
	failed+=("booted system guest")
fi

echo "== XFS project quotas on the guest (this host's kernel has no CONFIG_XFS_QUOTA)"
if ! .ci/qemu/run-v2-tests.sh -timeout 5m -run 'TestProjectQuotaXFS' \
	-add "$tools:/opt/vessel-tools" -env PATH=/opt/vessel-tools/bin:/bin:/sbin:/usr/bin:/usr/sbin \
	./storage; then
	failed+=("XFS quota guest")
fi

if [ ${#failed[@]} -gt 0 ]; then
	printf 'test.sh: FAILED phases:' >&2
	printf ' [%s]' "${failed[@]}" >&2
	printf '\n' >&2
	exit 1
fi
echo "test.sh: every phase passed (host, cgroup v2 guest, booted system guest, XFS quota guest)"
