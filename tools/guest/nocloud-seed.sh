#!/bin/sh
# The test guest's stand-in for cloud-init (NoCloud): finds the seed labelled cidata, sets the host name (user-data's
# hostname, else meta-data's local-hostname) and creates users[].name with users[].ssh_authorized_keys. Enough of
# #cloud-config to prove the seed reached the guest; prints NOCLOUD-DONE (or NOCLOUD-NO-SEED) on the console.
for module in scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs; do
  [ -f "/lib/modules/$module.ko" ] && insmod "/lib/modules/$module.ko" 2>/dev/null
done

seed=
try=0
# ATA probing runs in the background after insmod and is slow under TCG on a busy host: up to 30 s
while [ -z "$seed" ] && [ "$try" -lt 60 ]; do
  for dev in /dev/sr* /dev/vd* /dev/sd*; do
    [ -b "$dev" ] || continue
    # the ISO9660 volume id: 32 bytes at byte 40 of sector 16 (this busybox has no blkid)
    case "$(dd if="$dev" bs=1 skip=32808 count=32 2>/dev/null)" in cidata* | CIDATA*) seed=$dev ;; esac
  done
  [ -n "$seed" ] || sleep 0.5
  try=$((try + 1))
done
[ -n "$seed" ] || { echo "NOCLOUD-NO-SEED" >/dev/console; exit 0; }
mkdir -p /run/cidata
mount -t iso9660 -o ro "$seed" /run/cidata 2>/dev/null || { echo "NOCLOUD-NO-SEED $seed does not mount" >/dev/console; exit 0; }

# "key: value" at the top level of a YAML file, surrounding quotes removed.
top() { sed -n "s/^$1:[[:space:]]*//p" "$2" 2>/dev/null | head -n 1 | sed "s/^[\"']//; s/[\"'][[:space:]]*\$//"; }
name=$(top hostname /run/cidata/user-data)
[ -n "$name" ] || name=$(top local-hostname /run/cidata/meta-data)
if [ -n "$name" ]; then
  hostname "$name"
  echo "$name" >/etc/hostname
fi

# users: a list of maps; name and ssh_authorized_keys (flow [a, b] or a block of "- a" lines) → "user NAME", "key TEXT".
awk '
  function unquote(v) { sub(/^[ \t]*["\047]?/, "", v); sub(/["\047]?[ \t]*$/, "", v); return v }
  /^[^ \t#-]/ { inusers = ($0 ~ /^users:/); inkeys = 0; next }
  !inusers { next }
  /^[ \t]*-?[ \t]*name:/ { v = $0; sub(/^[ \t]*-?[ \t]*name:/, "", v); print "user " unquote(v); inkeys = 0; next }
  /ssh_authorized_keys:/ {
    v = $0; sub(/.*ssh_authorized_keys:[ \t]*/, "", v)
    if (v ~ /^\[/) { sub(/^\[/, "", v); sub(/\][ \t]*$/, "", v); n = split(v, keys, ","); for (i = 1; i <= n; i++) print "key " unquote(keys[i]); inkeys = 0 }
    else inkeys = 1
    next
  }
  inkeys && /^[ \t]*- / { v = $0; sub(/^[ \t]*- /, "", v); print "key " unquote(v); next }
  { inkeys = 0 }
' /run/cidata/user-data >/run/cidata-users 2>/dev/null

user=
users=
while read -r kind value; do
  case "$kind" in
    user)
      user=$value
      users="$users${users:+,}$user"
      if ! grep -q "^$user:" /etc/passwd; then
        # uid and gid from 1000 up, as Debian's adduser (busybox's adduser wants files this guest does not have)
        id=1000
        while grep -q "^[^:]*:[^:]*:$id:" /etc/passwd; do id=$((id + 1)); done
        echo "$user:x:$id:$id::/home/$user:/bin/sh" >>/etc/passwd
        echo "$user:x:$id:" >>/etc/group
      fi
      mkdir -p "/home/$user/.ssh"
      : >>"/home/$user/.ssh/authorized_keys"
      ;;
    key) [ -n "$user" ] && echo "$value" >>"/home/$user/.ssh/authorized_keys" ;;
  esac
done </run/cidata-users
for home in /home/*; do
  [ -d "$home/.ssh" ] || continue
  owner=${home##*/}
  chmod 700 "$home/.ssh"
  chmod 600 "$home/.ssh/authorized_keys"
  chown -R "$owner:$owner" "$home"
done
echo "NOCLOUD-DONE hostname=$(hostname) users=$users" >/dev/console
