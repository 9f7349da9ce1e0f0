#!/usr/bin/env bash
# Builds the tiny test guest (Debian cloud kernel + busybox initramfs), a bootable disk of it (syslinux) and the KVM
# multiboot stub; cached between runs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${VIRTBUS_GUEST_DIR:-$REPO/tools/.cache/guest}
CMDLINE='console=ttyS0 quiet panic=-1'
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk virtio_console virtio_balloon button evdev)
# Loaded only with virtbus.nocloud=1: the IDE cdrom that holds the cloud-init seed (this kernel has no AHCI).
SEED_MODULES=(scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs)
# What the bootable disk's syslinux passes to the kernel.
DISK_CMDLINE="$CMDLINE virtbus.net=dhcp virtbus.nocloud=1 virtbus.sshd=1"
OUTPUTS=(vmlinuz initramfs.gz initramfs-agent.gz kvm-stub.elf disk.qcow2 manifest.json)

# Editing this script or the stub invalidates the cache too.
RECIPE=$(cat "$HERE/build.sh" "$HERE/build-disk.sh" "$HERE/kvm-stub.S" "$HERE/nocloud-seed.sh" | sha256sum | cut -d' ' -f1)

log() { echo "guest-build: $*" >&2; }

mkdir -p "$OUT"
# Concurrent test processes share one cache directory: one builds, the others wait and reuse.
exec 9>"$OUT/.lock"
flock 9

resolve_kernel_package() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

manifest_field() {
  [ -f "$OUT/manifest.json" ] || return 0
  sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\\1/p" "$OUT/manifest.json" | head -n1
}

all_outputs_present() {
  local f
  for f in "${OUTPUTS[@]}"; do [ -s "$OUT/$f" ] || return 1; done
}

cache_usable=false
all_outputs_present && [ "$(manifest_field recipe)" = "$RECIPE" ] && cache_usable=true

# apt-cache costs ~1 s; its answer can only have changed if the package lists changed since the last build.
if [ "$cache_usable" = true ] && [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -newer "$OUT/manifest.json" 2>/dev/null | head -n1)" ]; then
  echo "$OUT"
  exit 0
fi

package=$(resolve_kernel_package || true)
if [ -z "$package" ] && [ "$cache_usable" = false ]; then
  # A fresh machine has empty package lists.
  log "apt-cache knows no cloud kernel; running apt-get update"
  apt-get update -q >/dev/null 2>&1 || log "apt-get update failed"
  package=$(resolve_kernel_package || true)
fi

if [ "$cache_usable" = true ]; then
  if [ -z "$package" ]; then
    log "apt lookup failed (offline?); using the cached guest"
    echo "$OUT"
    exit 0
  fi
  if [ "linux-image-$(manifest_field release)" = "$package" ]; then
    touch "$OUT/manifest.json"
    echo "$OUT"
    exit 0
  fi
  log "cached kernel $(manifest_field release) differs from $package; rebuilding"
fi

[ -n "$package" ] || { log "cannot resolve linux-image-cloud-amd64 (apt-cache depends found nothing)"; exit 1; }
release=${package#linux-image-}

WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

SSH_PACKAGES=(dropbear-bin libtomcrypt1 libtommath1)
# qemu-ga in the initramfs, started when the domain has the org.qemu.guest_agent.0 port; its libraries come from the
# build host (libc, glib, libudev, liburing, libnuma: the packages qemu-system already pulls in).
QGA_PACKAGES=(qemu-guest-agent)
download() { (cd "$WORK" && apt-get download -q -o APT::Sandbox::User=root "$package" busybox-static "${SSH_PACKAGES[@]}" "${QGA_PACKAGES[@]}" >/dev/null); }
log "downloading $package and busybox-static"
if ! download; then
  # Stale package lists name versions the mirror no longer has: refresh them once and resolve again.
  log "apt-get download failed; running apt-get update and retrying"
  apt-get update -q >/dev/null 2>&1 || log "apt-get update failed"
  package=$(resolve_kernel_package || true)
  [ -n "$package" ] || { log "cannot resolve linux-image-cloud-amd64 after apt-get update"; exit 1; }
  release=${package#linux-image-}
  rm -f "$WORK"/*.deb
  download
fi
kernel_deb=$(ls "$WORK"/linux-image-*.deb)
busybox_deb=$(ls "$WORK"/busybox-static_*.deb)
kernel_deb_version=$(dpkg-deb -f "$kernel_deb" Version)
busybox_deb_version=$(dpkg-deb -f "$busybox_deb" Version)
dpkg-deb -x "$kernel_deb" "$WORK/kernel"
dpkg-deb -x "$busybox_deb" "$WORK/busybox"
dropbear_deb=$(ls "$WORK"/dropbear-bin_*.deb)
dropbear_deb_version=$(dpkg-deb -f "$dropbear_deb" Version)
for deb in "$WORK"/dropbear-bin_*.deb "$WORK"/libtomcrypt1_*.deb "$WORK"/libtommath1_*.deb; do dpkg-deb -x "$deb" "$WORK/dropbear"; done
cp "$WORK/kernel/boot/vmlinuz-$release" "$WORK/vmlinuz"
qga_deb=$(ls "$WORK"/qemu-guest-agent_*.deb)
qga_deb_version=$(dpkg-deb -f "$qga_deb" Version)
dpkg-deb -x "$qga_deb" "$WORK/qga"

# Copies an ELF binary's shared libraries (recursively) into ROOT/lib/x86_64-linux-gnu: from the given directories first,
# then the build host's.
copy_libs() {
  local root=$1 binary=$2 first=$3 file lib dir found
  local pending=("$binary")
  mkdir -p "$root/lib/x86_64-linux-gnu" "$root/lib64"
  cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
  while [ ${#pending[@]} -gt 0 ]; do
    file=${pending[0]}
    pending=("${pending[@]:1}")
    for lib in $(objdump -p "$file" | awk '/NEEDED/ { print $2 }'); do
      [ -e "$root/lib/x86_64-linux-gnu/$lib" ] && continue
      found=
      for dir in $first /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu; do
        [ -e "$dir/$lib" ] && { found=$dir/$lib; break; }
      done
      [ -n "$found" ] || { log "$(basename "$binary") needs $lib, found nowhere"; exit 1; }
      cp -L "$found" "$root/lib/x86_64-linux-gnu/$lib"
      pending+=("$root/lib/x86_64-linux-gnu/$lib")
    done
  done
}

# --- initramfs ---------------------------------------------------------------------------------------------------
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,run,var/run,var/log,etc/acpi/PWRF,etc/udhcpc,lib/modules}
cp "$WORK/busybox/bin/busybox" "$ROOT/bin/busybox"
while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  [ -e "$ROOT/$applet" ] || ln -s /bin/busybox "$ROOT/$applet"
done < <("$ROOT/bin/busybox" --list-full)

for module in "${MODULES[@]}" "${SEED_MODULES[@]}"; do
  found=$(find "$WORK/kernel/lib/modules/$release" -name "$module.ko" -print -quit)
  if [ -n "$found" ]; then cp "$found" "$ROOT/lib/modules/$module.ko"; else log "module $module not in the package (built in?)"; fi
done

cat >"$ROOT/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root PS1='# '
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
ip link set lo up
for module in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk virtio_console virtio_balloon button evdev; do
  [ -f "/lib/modules/$module.ko" ] && insmod "/lib/modules/$module.ko" 2>/dev/null
done
cmdline=$(cat /proc/cmdline)
# The guest agent, when the domain has its channel (no udev: find the port by its name in sysfs).
for port in /sys/class/virtio-ports/*; do
  [ "$(cat "$port/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
  mkdir -p /var/run /usr/local/var/run
  command -v qemu-ga >/dev/null || break
  if qemu-ga -d -m virtio-serial -p "/dev/${port##*/}" -f /var/run/qemu-ga.pid 2>/dev/console; then echo "GUEST-AGENT" >/dev/console; else echo "GUEST-AGENT-FAILED" >/dev/console; fi
done
acpid -c /etc/acpi
case " $cmdline " in
  *" virtbus.nocloud=1 "*) /sbin/nocloud-seed ;;
esac
case " $cmdline " in
  *" virtbus.net=dhcp "*)
    if [ -e /sys/class/net/eth0 ]; then
      ip link set eth0 up
      udhcpc -i eth0 -n -q -t 5 -T 1 -s /etc/udhcpc/default.script >/dev/null 2>&1 || echo "GUEST-DHCP-FAILED"
    else
      echo "GUEST-DHCP-FAILED no eth0"
    fi
    ;;
esac
case " $cmdline " in
  *" virtbus.sshd=1 "*)
    # -R: host keys made at the first connection; -s: no password logins, keys only
    if dropbear -R -s -p 22 2>/dev/console; then echo "GUEST-SSHD" >/dev/console; else echo "GUEST-SSHD-FAILED" >/dev/console; fi
    ;;
esac
case " $cmdline " in
  *" virtbus.counter=1 "*)
    (n=0; while :; do n=$((n + 1)); echo "COUNTER $n" >/dev/console; sleep 0.5; done) &
    ;;
esac
# A marker on the VGA text console, found without OCR: no cursor, no blanking, a red block at rows 2-5, columns 3-22.
if [ -c /dev/tty1 ]; then
  { printf '\033[?25l\033[9;0]\033[0m\033[H\033[2J'; for row in 2 3 4 5; do printf '\033[%s;3H\033[41m%20s\033[0m' "$row" ''; done; } >/dev/tty1
fi
# The shell itself prints GUEST-READY once ttyS0 is open, so input typed after the marker is never lost.
ready='echo GUEST-READY; exec sh -l'
while :; do
  setsid cttyhack sh -c "$ready" || sleep 1
  ready='exec sh -l'
done
EOF

cat >"$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "GUEST-POWEROFF" >/dev/console
sync
poweroff -f
EOF

cat >"$ROOT/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}"
    for gateway in $router; do
      route add default gw "$gateway" dev "$interface"
      break
    done
    : >/etc/resolv.conf
    for server in $dns; do echo "nameserver $server" >>/etc/resolv.conf; done
    echo "GUEST-IP $ip" >/dev/console
    ;;
esac
exit 0
EOF
cp "$HERE/nocloud-seed.sh" "$ROOT/sbin/nocloud-seed"

# busybox has no chpasswd, which qemu-ga's guest-set-user-password runs: `user:password` lines on stdin, -e when crypted
cat >"$ROOT/usr/sbin/chpasswd" <<'EOF'
#!/bin/sh
crypted=0
[ "$1" = -e ] && crypted=1
while IFS=: read -r user pass; do
  [ -n "$user" ] || continue
  grep -q "^$user:" /etc/passwd || { echo "chpasswd: unknown user $user" >&2; exit 1; }
  if [ "$crypted" = 1 ]; then hash=$pass; else hash=$(mkpasswd -m sha512 "$pass") || exit 1; fi
  if grep -q "^$user:" /etc/shadow; then
    awk -F: -v u="$user" -v h="$hash" 'BEGIN { OFS = ":" } $1 == u { $2 = h } { print }' /etc/shadow >/etc/shadow.new && mv /etc/shadow.new /etc/shadow
  else
    echo "$user:$hash:19000:0:99999:7:::" >>/etc/shadow
  fi
done
EOF

chmod 755 "$ROOT/usr/sbin/chpasswd" "$ROOT/init" "$ROOT/etc/acpi/PWRF/00000080" "$ROOT/etc/udhcpc/default.script" "$ROOT/sbin/nocloud-seed"
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOT/etc/passwd"
echo 'root:x:0:' >"$ROOT/etc/group"
echo 'root:*:19000:0:99999:7:::' >"$ROOT/etc/shadow"
chmod 600 "$ROOT/etc/shadow"
# what guest-get-osinfo reports
printf 'ID=virtbus-test-guest\nNAME="virtbus test guest"\nPRETTY_NAME="virtbus test guest (busybox)"\nVERSION_ID=1\n' >"$ROOT/etc/os-release"

(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | "$ROOT/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null | gzip -9 -n) >"$WORK/initramfs.gz"

# --- ssh.cpio.gz: dropbear for virtbus.sshd=1, a second initramfs only the disk loads (the -kernel tests stay small) --
# Its shared libraries: its own packages' first, then the build host's libc, libz and libcrypt (Debian's essential
# packages, the same release as the downloaded ones).
SSHROOT="$WORK/sshroot"
mkdir -p "$SSHROOT/usr/sbin" "$SSHROOT/etc/dropbear"
cp "$WORK/dropbear/usr/sbin/dropbear" "$SSHROOT/usr/sbin/dropbear"
copy_libs "$SSHROOT" "$SSHROOT/usr/sbin/dropbear" "$WORK/dropbear/usr/lib/x86_64-linux-gnu"
printf '/bin/sh\n/bin/ash\n' >"$SSHROOT/etc/shells"
(cd "$SSHROOT" && find . -mindepth 1 | LC_ALL=C sort | "$ROOT/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null | gzip -9 -n) >"$WORK/ssh.cpio.gz"

# --- initramfs-agent.gz: the initramfs plus qemu-ga and its libraries (Linux unpacks concatenated archives in order) --
QGAROOT="$WORK/qgaroot"
mkdir -p "$QGAROOT/usr/sbin"
cp "$WORK/qga/usr/sbin/qemu-ga" "$QGAROOT/usr/sbin/qemu-ga"
copy_libs "$QGAROOT" "$QGAROOT/usr/sbin/qemu-ga" ""
(cd "$QGAROOT" && find . -mindepth 1 | LC_ALL=C sort | "$ROOT/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null | gzip -9 -n) >"$WORK/qga.cpio.gz"
cat "$WORK/initramfs.gz" "$WORK/qga.cpio.gz" >"$WORK/initramfs-agent.gz"

# --- bootable disk -----------------------------------------------------------------------------------------------
bash "$HERE/build-disk.sh" "$WORK" "$DISK_CMDLINE"

# --- KVM multiboot stub ------------------------------------------------------------------------------------------
as --32 -o "$WORK/kvm-stub.o" "$HERE/kvm-stub.S"
ld -m elf_i386 -Ttext 0x100000 -o "$WORK/kvm-stub.elf" "$WORK/kvm-stub.o"

# --- manifest + publish ------------------------------------------------------------------------------------------
sha() { sha256sum "$WORK/$1" | cut -d' ' -f1; }
cat >"$WORK/manifest.json" <<EOF
{
  "kernel": { "package": "$package", "release": "$release", "debVersion": "$kernel_deb_version" },
  "busybox": { "package": "busybox-static", "debVersion": "$busybox_deb_version" },
  "dropbear": { "package": "dropbear-bin", "debVersion": "$dropbear_deb_version" },
  "guestAgent": { "package": "qemu-guest-agent", "debVersion": "$qga_deb_version", "channel": "org.qemu.guest_agent.0" },
  "cmdline": "$CMDLINE",
  "recipe": "$RECIPE",
  "flags": { "dhcp": "virtbus.net=dhcp", "counter": "virtbus.counter=1", "nocloud": "virtbus.nocloud=1", "sshd": "virtbus.sshd=1" },
  "diskCmdline": "$DISK_CMDLINE",
  "files": {
    "vmlinuz": { "sha256": "$(sha vmlinuz)" },
    "initramfs.gz": { "sha256": "$(sha initramfs.gz)" },
    "initramfs-agent.gz": { "sha256": "$(sha initramfs-agent.gz)" },
    "kvm-stub.elf": { "sha256": "$(sha kvm-stub.elf)" },
    "disk.qcow2": { "sha256": "$(sha disk.qcow2)" }
  },
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
# Manifest last: a crash mid-publish leaves no manifest, so the next run rebuilds.
rm -f "$OUT/manifest.json"
for f in "${OUTPUTS[@]}"; do mv -f "$WORK/$f" "$OUT/$f"; done
log "built $package into $OUT"
echo "$OUT"
