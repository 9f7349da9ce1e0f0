#!/usr/bin/env bash
# Builds a minimal busybox root filesystem for container tests; prints its path. Cached: a second run is instant.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${VIRTBUS_ROOTFS_DIR:-$repo/tools/.cache/rootfs-busybox}

# The stamp is written last, so a half-built tree from an interrupted run is rebuilt.
if [ -f "$out/.virtbus-rootfs" ] && [ -x "$out/bin/busybox" ]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# apt-get download drops privileges to _apt, which needs a directory it can write.
chmod 0777 "$work"
download() { (cd "$work" && apt-get download -q busybox-static >/dev/null 2>&1); }
# Absent or stale package lists (a fresh machine): refresh them once and retry.
download || { apt-get update -q >/dev/null 2>&1 && download; } || {
  echo "build-busybox.sh: apt-get download busybox-static failed, also after apt-get update" >&2
  exit 1
}
dpkg-deb -x "$work"/busybox-static_*.deb "$work/pkg"

staging="$out.tmp.$$"
rm -rf "$staging"
mkdir -p "$staging"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,proc,sys,dev,tmp,run,root,var/log}
chmod 1777 "$staging/tmp"
install -m 0755 "$work/pkg/bin/busybox" "$staging/bin/busybox"

# One link per applet, at the path busybox itself names (bin/sh, sbin/init, usr/bin/head…).
while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  ln -sf /bin/busybox "$staging/$applet"
done < <("$staging/bin/busybox" --list-full)

cat > "$staging/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$staging/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP

# Busybox init: SIGUSR2 powers off, SIGTERM reboots, SIGINT runs ctrlaltdel (a reboot here).
cat > "$staging/etc/inittab" <<'INITTAB'
::sysinit:/etc/init.d/rcS
::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/echo virtbus-container-halting
INITTAB

cat > "$staging/etc/init.d/rcS" <<'RCS'
#!/bin/sh
grep -q ' /proc ' /proc/mounts 2>/dev/null || mount -t proc proc /proc
# The rootfs directory may be shared by several containers: scratch space stays private.
grep -q ' /tmp ' /proc/mounts || mount -t tmpfs -o mode=1777 tmpfs /tmp
echo "virtbus busybox container $(hostname) up"
echo CONTAINER-READY
RCS
chmod 0755 "$staging/etc/init.d/rcS"

echo "busybox-static $(dpkg-deb -f "$work"/busybox-static_*.deb Version)" > "$staging/.virtbus-rootfs"
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$staging" "$out"
echo "$out"
