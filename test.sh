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
# debootstrap needs the network: those tests (the Debian image, the
# booted Debian system) stay on the host run.
tools=$(mktemp -d /tmp/vessel-guest-tools.XXXXXX)
trap 'rm -rf "$tools"' EXIT
if ! .ci/qemu/guest-tools.sh "$tools" tar ip mkfs.xfs; then
	failed+=("guest tools")
elif ! VESSEL_QEMU_MEM=${VESSEL_QEMU_MEM:-4096} .ci/qemu/run-v2-tests.sh -timeout 20m \
	-add /opt/vessel-criu:/opt/vessel-criu -add "$tools:/opt/vessel-tools" \
	-env PATH=/opt/vessel-tools/bin:/bin:/sbin:/usr/bin:/usr/sbin \
	-skip 'TestDebianImageRunsApt|TestBootSystemd' \
	. ./cgroups ./limits ./security ./network ./checkpoint; then
	failed+=("cgroup v2 guest")
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
echo "test.sh: every phase passed (host, cgroup v2 guest, XFS quota guest)"
