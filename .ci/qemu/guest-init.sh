#!/bin/sh
# /init of the vessel cgroup v2 test guest (run by busybox sh as PID 1).
#
# Stage 1 (inside the initramfs): copy everything onto a real tmpfs and
# switch_root to it, because pivot_root(2) refuses to work when the root
# is the initial rootfs, and container tests pivot_root.
# Stage 2: mount the API filesystems and a pure cgroup v2 hierarchy, load
# the kernel modules, run every test binary listed in /vessel/tests.list,
# print one VESSEL-QEMU-RESULT line per package and power off.
#
# Written by .ci/qemu/run-v2-tests.sh; the host parses the VESSEL-QEMU-*
# lines, so keep their format stable.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root USER=root LOGNAME=root TMPDIR=/tmp TERM=dumb LANG=C.UTF-8
export VESSEL_IN_QEMU=1

die() {
	echo "VESSEL-QEMU-ERROR $*"
	poweroff -f
	sleep 5
	exit 1
}

if [ "$1" != stage2 ]; then
	/bin/busybox --install -s || echo "VESSEL-QEMU-ERROR busybox --install failed"
	mount -t proc proc /proc || die "mount /proc"
	mkdir -p /newroot
	mount -t tmpfs -o mode=0755,size=90% rootfs-tmpfs /newroot || die "mount tmpfs /newroot"
	for e in /* /.[!.]*; do
		case "$e" in
		/newroot | /proc | /sys | /dev | '/.[!.]*') continue ;;
		esac
		cp -a "$e" /newroot/ || die "copy $e to the tmpfs root"
	done
	mkdir -p /newroot/proc /newroot/sys /newroot/dev
	umount /proc
	exec switch_root /newroot /init stage2
	die "switch_root failed"
fi

# ---- stage 2 -------------------------------------------------------------
mount -t proc proc /proc || die "mount /proc"
mount -t sysfs sysfs /sys || die "mount /sys"
mount -t devtmpfs devtmpfs /dev 2>/dev/null || [ -c /dev/null ] || die "mount /dev"
mkdir -p /dev/pts /dev/shm /tmp /run /var/tmp /root
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=0755 run /run
chmod 1777 /var/tmp
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup ||
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || die "mount cgroup2"
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
# Like a systemd host: every mount shared, so tests see realistic propagation.
mount --make-rshared / || echo "VESSEL-QEMU-WARN cannot make / rshared"

# Keep kernel chatter (OOM kills the tests provoke, ...) off the console
# so it does not split test output; failed packages get a dmesg tail.
dmesg -n 1

# Kernel modules, in dependency order; built-in ones are not in the list.
kver=$(uname -r)
failed_mods=""
nmods=0
if [ -s /vessel/modules.list ]; then
	while read -r rel; do
		[ -n "$rel" ] || continue
		out=$(insmod "/lib/modules/$kver/$rel" 2>&1) || case "$out" in
		*"exists"*) ;;
		*) failed_mods="$failed_mods ${rel##*/}" ;;
		esac
		nmods=$((nmods + 1))
	done </vessel/modules.list
fi
[ -n "$failed_mods" ] && echo "VESSEL-QEMU-WARN modules that did not load:$failed_mods"

# Enable every controller the kernel offers for the root's children.
ctrls=$(cat /sys/fs/cgroup/cgroup.controllers)
for c in $ctrls; do
	echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
		echo "VESSEL-QEMU-WARN cannot enable cgroup controller $c"
done

ip link set lo up
hostname vessel-qemu

echo
read -r up _ </proc/uptime
echo "VESSEL-QEMU-READY kernel=$kver uptime=${up}s modules=$nmods cpus=$(nproc) mem_kb=$(awk '/MemTotal/{print $2}' /proc/meminfo)"
echo "VESSEL-QEMU-CGROUP controllers=\"$ctrls\" subtree_control=\"$(cat /sys/fs/cgroup/cgroup.subtree_control)\""

# Environment chosen on the host (NAME=VALUE lines; values taken verbatim).
if [ -s /vessel/env ]; then
	while IFS= read -r kv; do
		[ -n "$kv" ] && export "$kv"
	done </vessel/env
fi

# Test flags chosen on the host.
set --
[ -s /vessel/run ] && set -- "$@" "-test.run=$(cat /vessel/run)"
[ -s /vessel/skip ] && set -- "$@" "-test.skip=$(cat /vessel/skip)"
[ -f /vessel/short ] && set -- "$@" -test.short
[ -s /vessel/bench ] && set -- "$@" "-test.bench=$(cat /vessel/bench)"
[ -s /vessel/benchtime ] && set -- "$@" "-test.benchtime=$(cat /vessel/benchtime)"
timeout=$(cat /vessel/timeout 2>/dev/null)
[ -n "$timeout" ] || timeout=10m

count_state() {
	ncg=$(find /sys/fs/cgroup -mindepth 1 -type d | wc -l)
	nmnt=$(wc -l </proc/self/mountinfo)
	nlink=$(ls /sys/class/net | wc -l)
}

while IFS='|' read -r pkg bin dir; do
	[ -n "$pkg" ] || continue
	count_state
	cg0=$ncg mnt0=$nmnt link0=$nlink
	echo "VESSEL-QEMU-BEGIN pkg=$pkg"
	t0=$(date +%s)
	cd "$dir" || die "cd $dir"
	"$bin" -test.v -test.count=1 -test.timeout="$timeout" "$@" </dev/null 2>&1
	rc=$?
	cd /
	t1=$(date +%s)
	count_state
	if [ "$ncg" != "$cg0" ] || [ "$nmnt" != "$mnt0" ] || [ "$nlink" != "$link0" ]; then
		echo "VESSEL-QEMU-LEFTOVER pkg=$pkg cgroups=$cg0->$ncg mounts=$mnt0->$nmnt netlinks=$link0->$nlink"
		find /sys/fs/cgroup -mindepth 1 -type d | head -20 | sed 's/^/VESSEL-QEMU-LEFTOVER   cgroup /'
	fi
	if [ "$rc" != 0 ]; then
		dmesg | tail -n 40 | sed 's/^/VESSEL-QEMU-DMESG /'
	fi
	echo "VESSEL-QEMU-RESULT pkg=$pkg exit=$rc seconds=$((t1 - t0))"
done </vessel/tests.list

echo "VESSEL-QEMU-DONE"
sync
poweroff -f
sleep 5
