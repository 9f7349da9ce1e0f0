#!/usr/bin/env bash
# Installs the Debian packages virtbus runs and tests with, only those whose binary is missing.
set -euo pipefail

# file-to-check:debian-package (a binary, or a data file such as syslinux's MBR)
REQUIRED=(
  /usr/sbin/nats-server:nats-server
  /usr/bin/qemu-system-x86_64:qemu-system-x86
  /usr/bin/qemu-img:qemu-utils
  /usr/share/OVMF/OVMF_CODE_4M.fd:ovmf
  /usr/bin/busybox:busybox-static
  /usr/bin/as:binutils
  /usr/bin/flock:util-linux
  /usr/bin/setpriv:util-linux
  /usr/bin/dpkg-deb:dpkg
  /usr/bin/gzip:gzip
  /usr/sbin/dnsmasq:dnsmasq-base
  /usr/sbin/nft:nftables
  /usr/sbin/ip:iproute2
  /usr/bin/nsenter:util-linux
  /usr/sbin/sysctl:procps
  /usr/bin/openssl:openssl
  /usr/bin/lxc-start:lxc
  /usr/bin/prometheus:prometheus
  /usr/sbin/lvm:lvm2
  /usr/sbin/mkfs.ext4:e2fsprogs
  /usr/sbin/debugfs:e2fsprogs
  /usr/bin/genisoimage:genisoimage
  /usr/bin/syslinux:syslinux
  /usr/lib/syslinux/mbr/mbr.bin:syslinux-common
  /usr/bin/mcopy:mtools
  /usr/sbin/mkfs.vfat:dosfstools
  /usr/bin/ssh:openssh-client
  /usr/bin/ssh-keygen:openssh-client
  /usr/bin/isoinfo:genisoimage
  /usr/bin/systemd-analyze:systemd
  /usr/bin/wrk:wrk
  # emulated TPMs of qemu domains (devices.tpm)
  /usr/bin/swtpm:swtpm
  /usr/bin/swtpm_setup:swtpm-tools
  # the web UI's browser tests (playwright-core drives it; no browser is downloaded)
  /usr/bin/chromium:chromium
)

missing=()
for entry in "${REQUIRED[@]}"; do
  binary=${entry%%:*}
  package=${entry##*:}
  [ -e "$binary" ] || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "virtbus needs these Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  [ -n "${CI:-}" ] && exit 1
  exit 0
fi

echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
