#!/usr/bin/env bash
# Assembles the root filesystem of the storefactory image from a built binary:
#
#   scripts/image-rootfs.sh BINARY DEST
#
# Used by both scripts/build-image.sh (no Docker) and the Dockerfile, so the two build the
# same image.
#
# Why self-contained and not static: the binary links glibc dynamically (the musl target
# is not available to every builder, and a static glibc binary still loads NSS modules at
# run time for name resolution, with the glibc it was built against). So the image gets
# the binary plus exactly the shared libraries `ldd` lists for it, copied from the machine
# that built it — the same files it was linked and tested against — and nothing else: no
# shell, no package manager. Plus CA certificates, /etc/passwd and /etc/group naming the
# non-root user the server runs as (10001), an nsswitch.conf, and /data (the database) and
# /tmp owned and writable as the container needs them.
set -euo pipefail

IMAGE_UID=10001
IMAGE_GID=10001

die() { printf '[image-rootfs] %s\n' "$*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 BINARY DEST"
binary=$1
dest=$2
[ -f "$binary" ] && [ -x "$binary" ] || die "$binary is not an executable file"
head -c 4 "$binary" | grep -q 'ELF' || die "$binary is not an ELF binary"
[ ! -e "$dest" ] || [ -z "$(ls -A "$dest")" ] || die "$dest exists and is not empty"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || die "$ca_bundle is missing: install the ca-certificates package"
for tool in ldd strip; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (packages libc-bin, binutils)"
done

mkdir -p "$dest"/usr/local/bin "$dest"/etc/ssl/certs "$dest"/data "$dest"/tmp
# Debug information is of no use in the image and is most of a debug build's size.
install -m 0755 "$binary" "$dest/usr/local/bin/storefactory"
strip --strip-debug "$dest/usr/local/bin/storefactory"

# `ldd` lines are `name => /path (0x...)`, or `/path (0x...)` for the dynamic loader;
# linux-vdso is provided by the kernel. A library that is not found fails the build.
if ldd "$binary" | grep -q 'not found'; then
  die "ldd cannot resolve every library of $binary"
fi
libraries=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libraries" ] || die "ldd lists no libraries for $binary (a static binary needs none: remove this check)"
packages=()
for lib in $libraries; do
  mkdir -p "$dest$(dirname "$lib")"
  # The loader's path is usually a symlink (/lib64 -> the multiarch directory): copy the file.
  cp -L "$lib" "$dest$lib"
  chmod 0755 "$dest$lib"
  if command -v dpkg-query >/dev/null 2>&1; then
    owner=$(dpkg-query -S "$(readlink -f "$lib")" 2>/dev/null | head -n1 | cut -d: -f1 || true)
    [ -z "$owner" ] || packages+=("$owner")
  fi
done
# The licences of what was copied travel with it.
for pkg in $(printf '%s\n' "${packages[@]}" | sort -u); do
  if [ -f "/usr/share/doc/$pkg/copyright" ]; then
    mkdir -p "$dest/usr/share/doc/$pkg"
    cp "/usr/share/doc/$pkg/copyright" "$dest/usr/share/doc/$pkg/copyright"
  fi
done

cp -L "$ca_bundle" "$dest$ca_bundle"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nstorefactory:x:%s:%s:storefactory:/data:/usr/sbin/nologin\n' \
  "$IMAGE_UID" "$IMAGE_GID" > "$dest/etc/passwd"
printf 'root:x:0:\nstorefactory:x:%s:\n' "$IMAGE_GID" > "$dest/etc/group"
# glibc resolves names with its built-in files and dns modules; Kubernetes mounts
# /etc/hosts and /etc/resolv.conf.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$dest/etc/nsswitch.conf"
chmod 0644 "$dest"/etc/passwd "$dest"/etc/group "$dest"/etc/nsswitch.conf "$dest$ca_bundle"

chmod 1777 "$dest/tmp"
chmod 0750 "$dest/data"
chown "$IMAGE_UID:$IMAGE_GID" "$dest/data" 2>/dev/null \
  || die "cannot give $dest/data to $IMAGE_UID:$IMAGE_GID: run as root"
