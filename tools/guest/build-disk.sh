#!/usr/bin/env bash
# Makes WORK/disk.qcow2, a BIOS-bootable disk: syslinux's MBR, one active FAT partition at 1 MiB holding WORK/vmlinuz,
# WORK/initramfs.gz, WORK/ssh.cpio.gz (loaded after it: the kernel unpacks both) and syslinux (ldlinux.sys) with CMDLINE. Built without mounting anything (mkfs.vfat -C, mcopy,
# syslinux --offset); called by build.sh.
set -euo pipefail

WORK=$1
CMDLINE=$2
FAT_MIB=32
START=2048
export MTOOLS_SKIP_CHECK=1

for file in vmlinuz initramfs.gz ssh.cpio.gz; do [ -s "$WORK/$file" ] || { echo "build-disk: $WORK has no $file" >&2; exit 1; }; done

# -h: the partition's first sector, which syslinux's boot sector adds to its reads.
mkfs.vfat -C -n VIRTBUS -h "$START" "$WORK/fat.img" $((FAT_MIB * 1024)) >/dev/null
# SERIAL: syslinux's banner on ttyS0 shows a console reader that the guest came up through the bootloader.
cat >"$WORK/syslinux.cfg" <<CFG
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  INITRD /initramfs.gz,/ssh.cpio.gz
  APPEND $CMDLINE
CFG
mcopy -i "$WORK/fat.img" "$WORK/vmlinuz" "$WORK/initramfs.gz" "$WORK/ssh.cpio.gz" "$WORK/syslinux.cfg" ::/

disk="$WORK/disk.img"
rm -f "$disk"
truncate -s $(((START + FAT_MIB * 2048) * 512)) "$disk"
dd if="$WORK/fat.img" of="$disk" bs=512 seek="$START" conv=notrunc status=none
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" bs=440 count=1 conv=notrunc status=none

# Little-endian 32-bit value as printf escapes.
le32() {
  local v=$1
  printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((v & 255)) $(((v >> 8) & 255)) $(((v >> 16) & 255)) $(((v >> 24) & 255))
}
# Partition 1: active (0x80), type 0x0c (FAT, LBA), CHS fields unused (0xfe 0xff 0xff).
# shellcheck disable=SC2059
printf "\\x80\\xfe\\xff\\xff\\x0c\\xfe\\xff\\xff$(le32 "$START")$(le32 $((FAT_MIB * 2048)))" | dd of="$disk" bs=1 seek=446 conv=notrunc status=none
printf '\x55\xaa' | dd of="$disk" bs=1 seek=510 conv=notrunc status=none
syslinux --offset $((START * 512)) --install "$disk"

# Compressed qcow2, the format of a distribution's cloud image.
qemu-img convert -c -f raw -O qcow2 "$disk" "$WORK/disk.qcow2"
rm -f "$disk" "$WORK/fat.img" "$WORK/syslinux.cfg"
