#!/usr/bin/env bash
# Run vessel's Go tests inside a qemu guest booted with Debian's kernel on a
# pure cgroup v2 (unified) hierarchy with every controller enabled.
#
# Usage: .ci/qemu/run-v2-tests.sh [options] PKG...
#   PKG          go package patterns relative to the module dir (./cgroups, ., ./...)
#   -run REGEX   only tests matching REGEX (go test -run)
#   -skip REGEX  skip tests matching REGEX (go test -skip)
#   -short       pass -test.short
#   -bench REGEX run the benchmarks matching REGEX too (go test -bench)
#   -benchtime D benchmark time or count, e.g. 3x (go test -benchtime)
#   -timeout DUR per-package go test timeout inside the guest (default 10m)
#   -C DIR       module directory to build from (default: this repository's root)
#   -add SRC:DST copy host file or directory SRC to DST in the guest (repeatable)
#   -env K=V     set environment variable K to V for the tests in the guest (repeatable)
#   -no-probe    do not build internal/probe/cmd/probe into the guest
#   -leftovers-fail  fail a package that leaves cgroups, mounts or links behind
#                (always reported as VESSEL-QEMU-LEFTOVER lines either way)
#   -keep        keep the work directory (initramfs, test binaries, log)
#
# Environment:
#   VESSEL_QEMU_CACHE     cache for the kernel and busybox (default /var/cache/vessel-qemu)
#   VESSEL_QEMU_TIMEOUT   wall-clock limit for the whole guest run in seconds (default 1500)
#   VESSEL_QEMU_MEM       guest memory in MiB (default 3072)
#   VESSEL_QEMU_SMP       guest CPUs (default 2)
#   VESSEL_QEMU_ACCEL     qemu accelerator (default tcg; kvm hangs on the CI VM)
#   VESSEL_QEMU_KERNEL_PKG  Debian kernel package (default: what linux-image-amd64 depends on)
#   VESSEL_QEMU_MODULES   replaces the default list of kernel modules to load
#   VESSEL_QEMU_EXTRA_MODULES  added to the default list
#   VESSEL_QEMU_APPEND    extra kernel command line arguments
#
# Exit status: 0 only if every package's test binary exited 0 and every
# package's VESSEL-QEMU-RESULT line was seen; 1 on test failure; 2 on a
# harness problem (bad usage, build failure, boot failure, timeout).
set -euo pipefail

job_start=$(date +%s)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)

say() { printf 'run-v2-tests: %s\n' "$*" >&2; }
fail() {
	say "error: $*"
	exit 2
}

bench_re="" benchtime="" run_re="" skip_re="" short=0 go_timeout="10m" moddir="$repo_root" keep=0 probe=1 leftovers_fail=0
adds=()
envs=()
pkgs=()
while (($#)); do
	case "$1" in
	-run | --run) run_re=${2?"-run needs a value"}; shift 2 ;;
	-run=* | --run=*) run_re=${1#*=}; shift ;;
	-skip | --skip) skip_re=${2?"-skip needs a value"}; shift 2 ;;
	-skip=* | --skip=*) skip_re=${1#*=}; shift ;;
	-short | --short) short=1; shift ;;
	-bench | --bench) bench_re=${2?"-bench needs a value"}; shift 2 ;;
	-benchtime | --benchtime) benchtime=${2?"-benchtime needs a value"}; shift 2 ;;
	-timeout | --timeout) go_timeout=${2?"-timeout needs a value"}; shift 2 ;;
	-timeout=* | --timeout=*) go_timeout=${1#*=}; shift ;;
	-C) moddir=${2?"-C needs a directory"}; shift 2 ;;
	-add | --add) adds+=("${2?"-add needs SRC:DST"}"); shift 2 ;;
	-env | --env) envs+=("${2?"-env needs K=V"}"); shift 2 ;;
	-no-probe | --no-probe) probe=0; shift ;;
	-keep | --keep) keep=1; shift ;;
	-leftovers-fail | --leftovers-fail) leftovers_fail=1; shift ;;
	-h | -help | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	--) shift; pkgs+=("$@"); break ;;
	-*) fail "unknown option $1 (see --help)" ;;
	*) pkgs+=("$1"); shift ;;
	esac
done
((${#pkgs[@]})) || fail "no packages given (e.g. ./cgroups)"
[[ -d $moddir ]] || fail "-C $moddir: not a directory"
moddir=$(cd "$moddir" && pwd)
[[ $go_timeout =~ ^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))*$ ]] ||
	fail "-timeout $go_timeout: not a Go duration (e.g. 10m)"

cache=${VESSEL_QEMU_CACHE:-/var/cache/vessel-qemu}
total_timeout=${VESSEL_QEMU_TIMEOUT:-1500}
mem=${VESSEL_QEMU_MEM:-3072}
smp=${VESSEL_QEMU_SMP:-2}
accel=${VESSEL_QEMU_ACCEL:-tcg}
export DEBIAN_FRONTEND=noninteractive
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || fail "go not found in PATH"

# ---- host tools ----------------------------------------------------------
apt_updated=0
apt_update_once() {
	((apt_updated)) && return 0
	apt_updated=1
	say "apt-get update"
	apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || say "apt-get update failed (continuing)"
}
apt_install() {
	[[ $(id -u) == 0 ]] || fail "need root to install $* (apt-get install -y $*)"
	say "installing $*"
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2 ||
		{ apt_update_once; apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2; } ||
		fail "apt-get install $* failed"
}
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
((${#need[@]} == 0)) || apt_install "${need[@]}"

mkdir -p "$cache" || fail "cannot create cache dir $cache"
exec 9>"$cache/.lock"
flock 9

# Download a package's .deb (without installing it) into $1/.
apt_fetch() {
	local dir=$1 pkg=$2
	(cd "$dir" && apt-get -o APT::Sandbox::User=root download "$pkg" >&2) ||
		{ apt_update_once; (cd "$dir" && apt-get -o APT::Sandbox::User=root download "$pkg" >&2); }
}
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2; exit}'; }

# ---- kernel: Debian's linux-image, extracted, never installed --------------
kpkg=${VESSEL_QEMU_KERNEL_PKG:-}
if [[ -z $kpkg ]]; then
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
	if [[ -z $kpkg ]]; then
		apt_update_once
		kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
	fi
fi
kver_pkg=""
[[ -n $kpkg ]] && kver_pkg=$(candidate "$kpkg")
kdir=""
if [[ -n $kpkg && -n $kver_pkg ]]; then
	kdir="$cache/kernel/${kpkg}_${kver_pkg}"
	if [[ ! -f $kdir/.complete ]]; then
		say "fetching kernel $kpkg $kver_pkg into $kdir"
		rm -rf "$kdir" "$kdir.tmp"
		mkdir -p "$kdir.tmp/deb"
		apt_fetch "$kdir.tmp/deb" "$kpkg" || fail "apt-get download $kpkg failed"
		dpkg -x "$kdir.tmp"/deb/*.deb "$kdir.tmp/root" || fail "dpkg -x of $kpkg failed"
		rm -rf "$kdir.tmp/deb"
		kv=$(ls "$kdir.tmp/root/lib/modules" | head -n1)
		[[ -n $kv && -f $kdir.tmp/root/boot/vmlinuz-$kv ]] || fail "$kpkg has no vmlinuz/modules"
		echo "$kv" >"$kdir.tmp/kver"
		touch "$kdir.tmp/.complete"
		mv "$kdir.tmp" "$kdir"
	fi
else
	# Offline: use the newest kernel already in the cache.
	kdir=$(ls -d "$cache"/kernel/*/ 2>/dev/null | sort -V | tail -n1)
	kdir=${kdir%/}
	[[ -n $kdir && -f $kdir/.complete ]] || fail "cannot resolve linux-image-amd64 with apt and no kernel is cached in $cache/kernel"
	say "apt cannot resolve the kernel; using cached $kdir"
fi
kver=$(cat "$kdir/kver")
kmods="$kdir/root/lib/modules/$kver"
vmlinuz="$kdir/root/boot/vmlinuz-$kver"
# Index of every module: "name path depends" (name with _ for -, as the
# kernel spells it; depends= comes from each .ko's .modinfo section).
if [[ ! -s $kdir/modules.v2.idx ]]; then
	say "indexing the modules of $kver (once)"
	(cd "$kmods" && find kernel -name '*.ko' -print0 | xargs -0 awk -v RS='\0' '
		FNR == 1 { found = 0 }
		!found && /^depends=/ { found = 1; print FILENAME, substr($0, 9) }') |
		awk '!seen[$1]++ { n = $1; sub(/.*\//, "", n); sub(/\.ko$/, "", n); gsub(/-/, "_", n); print n, $1, $2 }' \
			>"$kdir/modules.v2.idx.tmp"
	mv "$kdir/modules.v2.idx.tmp" "$kdir/modules.v2.idx"
fi

# ---- busybox-static, extracted, never installed ----------------------------
bbver=$(candidate busybox-static)
if [[ -z $bbver ]]; then
	apt_update_once
	bbver=$(candidate busybox-static)
fi
if [[ -n $bbver ]]; then
	bbdir="$cache/busybox/${bbver//[:\/]/_}"
	if [[ ! -x $bbdir/busybox ]]; then
		say "fetching busybox-static $bbver"
		rm -rf "$bbdir.tmp"
		mkdir -p "$bbdir.tmp/deb"
		apt_fetch "$bbdir.tmp/deb" busybox-static || fail "apt-get download busybox-static failed"
		dpkg -x "$bbdir.tmp"/deb/*.deb "$bbdir.tmp/root"
		install -m 0755 "$bbdir.tmp/root/bin/busybox" "$bbdir.tmp/busybox"
		rm -rf "$bbdir.tmp/deb" "$bbdir.tmp/root"
		rm -rf "$bbdir"
		mv "$bbdir.tmp" "$bbdir"
	fi
else
	bbdir=$(ls -d "$cache"/busybox/*/ 2>/dev/null | sort -V | tail -n1)
	bbdir=${bbdir%/}
	[[ -n $bbdir && -x $bbdir/busybox ]] || fail "cannot resolve busybox-static with apt and none is cached"
fi
busybox="$bbdir/busybox"
flock -u 9

# ---- work dir and initramfs tree --------------------------------------------
work=$(mktemp -d /tmp/vessel-qemu.XXXXXX)
cleanup() { ((keep)) && say "work dir kept: $work" || rm -rf "$work"; }
trap cleanup EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,var/tmp,vessel/bin,src,lib/modules}
install -m 0755 "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh" # the guest init runs `busybox --install -s` for the rest
install -m 0755 "$here/guest-init.sh" "$root/init"
[[ $(id -u) == 0 ]] && mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || true
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
nogroup:x:65534:
EOF
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost vessel-qemu
::1	localhost ip6-localhost ip6-loopback
EOF
echo vessel-qemu >"$root/etc/hostname"
: >"$root/etc/resolv.conf"
printf 'hosts: files\n' >"$root/etc/nsswitch.conf"

# ---- kernel modules -----------------------------------------------------
declare -A modpath=() moddeps=()
while read -r n p d; do
	modpath[$n]=$p
	moddeps[$n]=$d
done <"$kdir/modules.v2.idx"
if [[ -n ${VESSEL_QEMU_MODULES:-} ]]; then
	wanted=(${VESSEL_QEMU_MODULES//,/ })
else
	# crc32c first: ext4/xfs/btrfs/nf_conntrack want the crypto-crc32c
	# soft dependency, which depends= does not name. xfrm_user: netlink
	# handles (vishvananda/netlink.NewHandle) open a NETLINK_XFRM socket.
	wanted=(crc32c_generic crc32c_intel xxhash_generic blake2b_generic sha256_generic
		overlay loop squashfs erofs ext4 xfs btrfs fuse
		veth bridge br_netfilter macvlan ipvlan dummy ifb tun
		nfnetlink nf_tables nf_conntrack nf_nat nf_conntrack_netlink
		sch_htb sch_tbf sch_ingress sch_netem sch_prio cls_u32 cls_bpf cls_matchall
		act_bpf act_mirred act_police act_gact
		xfrm_user inet_diag tcp_diag udp_diag unix_diag netlink_diag af_packet_diag)
	for n in "${!modpath[@]}"; do [[ $n == nft_* ]] && wanted+=("$n"); done
fi
extra_mods=${VESSEL_QEMU_EXTRA_MODULES:-}
wanted+=(${extra_mods//,/ })
declare -A visited=()
load_order=()
missing=()
visit() {
	local n=${1//-/_} p deps d
	[[ -n ${visited[$n]:-} ]] && return 0
	visited[$n]=1
	p=${modpath[$n]:-}
	if [[ -z $p ]]; then
		grep -q "/$n\.ko\$\|/${n//_/-}\.ko\$" "$kmods/modules.builtin" 2>/dev/null || missing+=("$n")
		return 0
	fi
	deps=${moddeps[$n]:-}
	for d in ${deps//,/ }; do visit "$d"; done
	load_order+=("$p")
}
for n in $(printf '%s\n' "${wanted[@]}" | awk '!seen[$0]++'); do visit "$n"; done
((${#missing[@]} == 0)) || say "warning: kernel $kver has no module named: ${missing[*]}"
for p in "${load_order[@]}"; do
	mkdir -p "$root/lib/modules/$kver/$(dirname "$p")"
	cp "$kmods/$p" "$root/lib/modules/$kver/$p"
done
cp "$kmods"/modules.builtin* "$kmods"/modules.order "$root/lib/modules/$kver/" 2>/dev/null || true
printf '%s\n' "${load_order[@]}" >"$root/vessel/modules.list"
# modules.dep + modules.alias for the kernel's own request_module() autoload.
"$busybox" depmod -b "$root" "$kver" || say "warning: depmod failed; module autoload will not work in the guest"

# ---- test binaries --------------------------------------------------------
modpath_go=$(cd "$moddir" && go list -m -f '{{.Path}}' 2>/dev/null | head -n1) ||
	fail "$moddir is not a Go module"
build_start=$(date +%s)
: >"$root/vessel/tests.list"
listing=$(cd "$moddir" && go list -e -f '{{.ImportPath}}|{{.Dir}}|{{len .TestGoFiles}}|{{len .XTestGoFiles}}' "${pkgs[@]}") ||
	fail "go list ${pkgs[*]} failed"
npkg=0
expected=()
build_failed=()
while IFS='|' read -r ip dir nt nx; do
	[[ -n $ip ]] || continue
	rel=${ip#"$modpath_go"}
	rel=.${rel}
	if ((nt + nx == 0)); then
		say "$rel: no test files, skipped"
		continue
	fi
	name=${rel#./}
	name=${name:-root}
	name=${name//\//_}.test
	say "building $rel"
	if ! (cd "$moddir" && CGO_ENABLED=0 go test -c -o "$root/vessel/bin/$name" "$ip"); then
		say "building the tests of $rel failed"
		build_failed+=("$rel")
		continue
	fi
	gdir="/src/${rel#./}"
	gdir=${gdir%/.}
	[[ $rel == . ]] && gdir=/src
	mkdir -p "$root$gdir"
	[[ -d $dir/testdata ]] && cp -a "$dir/testdata" "$root$gdir/"
	echo "$rel|/vessel/bin/$name|$gdir" >>"$root/vessel/tests.list"
	expected+=("$rel")
	npkg=$((npkg + 1))
done <<<"$listing"
build_end=$(date +%s)
if ((npkg == 0)); then
	for rel in ${build_failed[@]+"${build_failed[@]}"}; do echo "FAIL     $rel (build failed)"; done
	((${#build_failed[@]})) && { echo "FAIL (status 1)"; exit 1; }
	say "no package with tests among: ${pkgs[*]}; nothing to run"
	exit 0
fi
[[ -n $run_re ]] && printf '%s' "$run_re" >"$root/vessel/run"
[[ -n $skip_re ]] && printf '%s' "$skip_re" >"$root/vessel/skip"
((short)) && touch "$root/vessel/short"
[[ -n $bench_re ]] && printf '%s' "$bench_re" >"$root/vessel/bench"
[[ -n $benchtime ]] && printf '%s' "$benchtime" >"$root/vessel/benchtime"
printf '%s' "$go_timeout" >"$root/vessel/timeout"
# The isolation probe (see internal/probe/doc.go): tests cannot build it in
# the guest (no Go toolchain there), so build it here and say where it is.
: >"$root/vessel/env"
if ((probe)) && [[ -d $moddir/internal/probe/cmd/probe ]]; then
	say "building internal/probe/cmd/probe"
	mkdir -p "$root/usr/local/bin"
	if (cd "$moddir" && CGO_ENABLED=0 go build -o "$root/usr/local/bin/probe" ./internal/probe/cmd/probe); then
		echo "VESSEL_PROBE=/usr/local/bin/probe" >>"$root/vessel/env"
	else
		say "warning: building the probe failed; tests that need it will fail"
	fi
fi
for kv in ${envs[@]+"${envs[@]}"}; do
	[[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= && $kv != *$'\n'* ]] || fail "-env $kv: want NAME=VALUE on one line"
	printf '%s\n' "$kv" >>"$root/vessel/env"
done
for a in ${adds[@]+"${adds[@]}"}; do
	src=${a%%:*} dst=${a#*:}
	[[ $a == *:* && -e $src && $dst == /* ]] || fail "-add $a: want SRC:DST with an existing SRC and an absolute DST"
	mkdir -p "$root$(dirname "$dst")"
	cp -a "$src" "$root$dst"
done

# ---- initramfs --------------------------------------------------------------
initrd="$work/initrd.cpio.gz"
(cd "$root" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$initrd"
say "initramfs $(du -h "$initrd" | cut -f1) ($npkg package(s), ${#load_order[@]} modules, kernel $kver), built in $((build_end - build_start))s"

# ---- boot -----------------------------------------------------------------
append="console=ttyS0 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 panic=-1 quiet mitigations=off rdinit=/init ${VESSEL_QEMU_APPEND:-}"
log="$work/guest.log"
say "booting: qemu-system-x86_64 -accel $accel -m $mem -smp $smp (limit ${total_timeout}s)"
boot_start=$(date +%s)
set +e
timeout -k 10 "$total_timeout" qemu-system-x86_64 -accel "$accel" -cpu max -m "$mem" -smp "$smp" \
	-nographic -no-reboot -nodefaults -serial stdio -monitor none \
	-kernel "$vmlinuz" -initrd "$initrd" -append "$append" </dev/null 2>&1 |
	tr -d '\r' | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$log" | sed -u 's/^/qemu| /'
qrc=${PIPESTATUS[0]}
set -e
boot_end=$(date +%s)

# ---- verdict --------------------------------------------------------------
status=0
for rel in ${build_failed[@]+"${build_failed[@]}"}; do
	echo "FAIL     $rel (build failed, not run)"
	status=1
done
echo "==== vessel cgroup v2 (qemu, kernel $kver) results ===="
for rel in "${expected[@]}"; do
	line=$(grep -aF "VESSEL-QEMU-RESULT pkg=$rel exit=" "$log" | tail -n1 || true)
	if [[ -z $line ]]; then
		echo "MISSING  $rel (no result line: the guest crashed, hung or timed out)"
		status=2
		continue
	fi
	code=$(sed -n 's/.* exit=\([0-9]*\).*/\1/p' <<<"$line")
	secs=$(sed -n 's/.* seconds=\([0-9]*\).*/\1/p' <<<"$line")
	leftover=$(grep -aF "VESSEL-QEMU-LEFTOVER pkg=$rel " "$log" || true)
	if [[ $code == 0 && -n $leftover ]] && ((leftovers_fail)); then
		echo "FAIL     $rel left things behind (${secs}s): ${leftover#*pkg=$rel }"
		((status == 2)) || status=1
	elif [[ $code == 0 ]]; then
		echo "ok       $rel (${secs}s)"
	else
		echo "FAIL     $rel exit=$code (${secs}s)"
		((status == 2)) || status=1
	fi
done
grep -a 'VESSEL-QEMU-LEFTOVER' "$log" || true
if ! grep -aq 'VESSEL-QEMU-DONE' "$log"; then
	((qrc == 124)) && echo "guest killed after the ${total_timeout}s limit (VESSEL_QEMU_TIMEOUT)"
	grep -a 'VESSEL-QEMU-ERROR' "$log" || true
	echo "guest did not finish (qemu exit $qrc)"
	status=2
fi
ready=$(grep -a 'VESSEL-QEMU-READY' "$log" | sed -n 's/.* uptime=\([0-9.]*\)s.*/\1/p' || true)
job_end=$(date +%s)
echo "time: total $((job_end - job_start))s (build $((build_end - build_start))s, guest $((boot_end - boot_start))s, guest ready after ${ready:-?}s uptime)"
if ((status == 0)); then echo "PASS"; else echo "FAIL (status $status)"; fi
exit "$status"
