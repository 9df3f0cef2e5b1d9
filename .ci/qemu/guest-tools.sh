#!/usr/bin/env bash
# Collects host programs that CRIU starts (GNU tar for tmpfs contents,
# iproute2's ip for a network namespace's addresses, routes and rules)
# with the shared libraries they load into DIR, for the busybox guest of
# run-v2-tests.sh, whose tar and ip applets lack the options CRIU uses.
# DIR/bin/NAME runs DIR/real/NAME through DIR/lib's copy of the dynamic
# loader, so nothing depends on the guest having a libc.
#
# Usage: .ci/qemu/guest-tools.sh DIR [PROGRAM...]   (default: tar ip)
# Then: run-v2-tests.sh -add DIR:/opt/vessel-tools -env PATH=/opt/vessel-tools/bin:/bin:/sbin:/usr/bin:/usr/sbin
set -euo pipefail

dir=${1:?usage: guest-tools.sh DIR [PROGRAM...]}
shift
progs=("$@")
((${#progs[@]})) || progs=(tar ip)
guest=/opt/vessel-tools

rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/real" "$dir/lib"
for p in "${progs[@]}"; do
	path=$(command -v "$p") || { echo "guest-tools.sh: $p not found" >&2; exit 1; }
	cp -L "$path" "$dir/real/$p"
	# Every library it loads, and the loader itself, flattened into lib/.
	ldd "$path" | awk '/=> \// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | while read -r lib; do
		cp -L "$lib" "$dir/lib/"
	done
	loader=$(ldd "$path" | awk '$1 ~ /^\/.*ld-linux/ {print $1}' | head -1)
	{
		echo '#!/bin/sh'
		echo "exec $guest/lib/$(basename "$loader") --library-path $guest/lib $guest/real/$p \"\$@\""
	} >"$dir/bin/$p"
	chmod 755 "$dir/bin/$p"
done
echo "guest-tools.sh: ${progs[*]} with $(ls "$dir/lib" | wc -l) libraries in $dir"
