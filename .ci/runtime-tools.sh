#!/bin/bash
# Runs the OCI runtime-tools validation suite against vessel and runc in one
# run, and reports each runtime's passed/failed counts and the assertions
# that runc passes and vessel does not.
#
#   .ci/runtime-tools.sh [OUTDIR]
#
# As root. The suite's source comes from the Go module proxy
# (github.com/opencontainers/runtime-tools at RUNTIME_TOOLS_VERSION); its
# validation programs and runtimetest are built with Go, and each program
# runs once per runtime with RUNTIME set (the suite's own protocol: TAP
# output, one program per spec area). vessel is built from this checkout
# (CGO_ENABLED=0); runc is Debian's (apt-get install runc).
#
# One change is made to the suite's copy: its cgroups go below vessel-test
# (/vessel-test/rt-cgrouptest, vessel-test/rt-testdir/... relative), where
# this project's tests keep theirs, instead of /cgrouptest and testdir/.
#
# OUTDIR (default: a new temporary directory) keeps each program's TAP
# output per runtime (OUTDIR/runc/NAME.tap, OUTDIR/vessel/NAME.tap) and
# the summary (OUTDIR/summary.txt).
set -euo pipefail

version=${RUNTIME_TOOLS_VERSION:-v0.9.1-0.20250523060157-0ea5ed0382a2}
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$(mktemp -d /tmp/runtime-tools-XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/rt-src-XXXXXX)
# The suite makes its bundles in TMPDIR; runc, given a container without a
# mount namespace (linux_ns_itype), mounts /proc, /dev, ... of such a bundle
# in the host's mount namespace and never unmounts them. Everything below
# the private TMPDIR is unmounted at the end, and the cgroups the suite's
# runs leave below vessel-test (runc keeps its intermediates) removed.
bundles="$work/tmp"
mkdir -p "$bundles"
chmod 755 "$work" "$bundles" # the linux_uid_mappings container's root (a mapped user) passes through them
cleanup() {
	grep -o " $bundles[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$work"
	find /sys/fs/cgroup -mindepth 2 -maxdepth 8 -type d \( -name rt-cgrouptest -o -name rt-testdir \) -path '*/vessel-test/*' 2>/dev/null |
		while read -r d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "runtime-tools.sh: run as root" >&2; exit 1; }
command -v runc >/dev/null || { echo "runtime-tools.sh: runc is missing (apt-get install runc)" >&2; exit 1; }

echo "== runtime-tools $version (Go module source)"
dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/opencontainers/runtime-tools@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "runtime-tools.sh: module download failed" >&2; exit 1; }
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
sed -i 's|AbsCgroupPath = "/cgrouptest"|AbsCgroupPath = "/vessel-test/rt-cgrouptest"|; s|RelCgroupPath = "testdir/cgrouptest/container"|RelCgroupPath = "vessel-test/rt-testdir/cgrouptest/container"|' \
	"$work/src/cgroups/cgroups.go"

echo "== building the suite and vessel"
cd "$work/src"
rm -rf vendor # a module zip carries only vendor/modules.txt: dependencies come from the proxy
CGO_ENABLED=0 go build -mod=mod -tags "netgo osusergo" -o runtimetest ./cmd/runtimetest
tests=()
for f in validation/*/*.go; do
	name=$(basename "$(dirname "$f")")
	[ "$name" = util ] && continue
	go build -mod=mod -o "validation/$name.t" "./$(dirname "$f")"
	tests+=("$name")
done
(cd "$here" && CGO_ENABLED=0 go build -o "$work/vessel" ./cmd/vessel)

# run RUNTIME: every program, with a time limit each.
run() {
	local rt=$1 bin=$2
	mkdir -p "$out/$rt"
	for name in "${tests[@]}"; do
		TMPDIR=$bundles RUNTIME=$bin timeout 120 "./validation/$name.t" >"$out/$rt/$name.tap" 2>"$out/$rt/$name.err" || true
	done
}
echo "== running ${#tests[@]} programs against runc, then vessel"
run runc "$(command -v runc)"
run vessel "$work/vessel"

# Assertions as "program: description" with their result, per runtime.
results() {
	local rt=$1
	for name in "${tests[@]}"; do
		sed -n -E "s/^(not ok|ok) [0-9]+ (- )?(.*)$/\1\t$name: \3/p" "$out/$rt/$name.tap" |
			awk -F'\t' '{ n[$2]++; print $1 "\t" $2 " #" n[$2] }'
	done
}
summary() {
	local rt=$1 pass fail aborted=0
	pass=$(results "$rt" | grep -c '^ok	' || true)
	fail=$(results "$rt" | grep -c '^not ok	' || true)
	for name in "${tests[@]}"; do
		# A program that stopped before its plan's count of results.
		plan=$(sed -n -E 's/^1\.\.([0-9]+).*/\1/p' "$out/$rt/$name.tap" | head -1)
		got=$(grep -cE '^(not )?ok ' "$out/$rt/$name.tap" || true)
		if [ -z "$plan" ] || [ "$got" -lt "$plan" ]; then
			aborted=$((aborted + 1))
			echo "  $rt: $name stopped early ($got of ${plan:-?} results): $(head -c 300 "$out/$rt/$name.err" | tr '\n' ' ')"
		fi
	done
	echo "$rt: $pass passed, $fail failed, $aborted programs stopped early"
}
{
	summary runc
	summary vessel
	echo "== assertions runc passes and vessel fails or never reaches"
	comm -23 <(results runc | sed -n 's/^ok	//p' | sort) <(results vessel | sed -n 's/^ok	//p' | sort)
	echo "== assertions vessel passes and runc fails or never reaches"
	comm -13 <(results runc | sed -n 's/^ok	//p' | sort) <(results vessel | sed -n 's/^ok	//p' | sort)
} | tee "$out/summary.txt"
echo "(TAP output and errors of each program: $out)"
