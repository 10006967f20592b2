#!/usr/bin/env bash
# Install everything vpnlab needs on a Debian/Ubuntu machine (run as root).
# Idempotent: packages already present are left alone.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "ci/setup.sh: run as root (it installs packages): sudo $0" >&2
  exit 2
fi

# strongSwan's charon with the plugins vpnlab loads (kernel-libipsec is in
# libcharon-extra-plugins, vici in strongswan-swanctl, openssl in the standard
# plugins, curve25519 in the extra plugins); nftables for NAT; iproute2 for
# the kernel ESP probe and the safety tests;
# ping and python3 for the hand-written benchmark baseline; openssl to
# verify the test CA's certificates in a unit test; tshark for the
# test that reads vpnlab's pcap files with Wireshark's dissectors; qemu,
# Debian's stock kernel (which has ESP as modules) and a static busybox
# (virtme-ng builds its initramfs from it) for `--kernel` (VM mode, with
# virtme-ng from PyPI below); xmllint to validate the JUnit report against
# its schema in a test; Debian's Chromium (with the fonts it recommends)
# for the test that opens the HTML report in a real browser. No recommends: they would pull the dynamic
# busybox, which conflicts with busybox-static.
PACKAGES=(strongswan-charon strongswan-swanctl libcharon-extra-plugins
          libstrongswan-standard-plugins libstrongswan-extra-plugins
          nftables iproute2 iputils-ping python3 tshark openssl
          qemu-system-x86 linux-image-amd64 busybox-static
          xl2tpd ppp pptpd pptp-linux tayga libxml2-utils
          chromium fonts-liberation)

# The packages among "$@" that are not installed.
not_installed() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

mapfile -t missing < <(not_installed "${PACKAGES[@]}")
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ci/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The strongswan-starter/charon-systemd services are not wanted: vpnlab
  # starts its own charons inside namespaces. policy-rc.d keeps apt from
  # starting daemons on the host.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.vpnlab
  chmod +x /usr/sbin/policy-rc.d.vpnlab
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    cp /usr/sbin/policy-rc.d.vpnlab /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.vpnlab' EXIT
  else
    rm -f /usr/sbin/policy-rc.d.vpnlab
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libreswan (second IKE stack). Debian's package conflicts with strongSwan's,
# so its files are unpacked into a private prefix instead of installed; only
# its shared-library dependencies (and certutil, for pluto's NSS database)
# come from apt. vpnlab looks for pluto there (VPNLAB_LIBRESWAN overrides).
LIBRESWAN_PREFIX=${VPNLAB_LIBRESWAN:-/opt/vpnlab/libreswan}
if [ ! -x "$LIBRESWAN_PREFIX/usr/libexec/ipsec/pluto" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show libreswan >/dev/null 2>&1 || apt-get update -qq
  # The library dependencies, whatever this release calls them.
  mapfile -t LSWDEPS < <(apt-cache depends --no-recommends --no-suggests libreswan \
    | awk '$1 ~ /Depends:/ && $2 ~ /^lib/ {print $2}' | sort -u | grep -vx libnss3-tools)
  echo "ci/setup.sh: installing libreswan's libraries: ${LSWDEPS[*]} libnss3-tools"
  apt-get install -y -qq --no-install-recommends "${LSWDEPS[@]}" libnss3-tools >/dev/null
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt downloads as the _apt user
  (cd "$tmp" && apt-get download -qq libreswan)
  mkdir -p "$LIBRESWAN_PREFIX"
  dpkg -x "$tmp"/libreswan_*.deb "$LIBRESWAN_PREFIX"
  rm -rf "$tmp"
  echo "ci/setup.sh: libreswan unpacked into $LIBRESWAN_PREFIX"
fi
if ldd "$LIBRESWAN_PREFIX/usr/libexec/ipsec/pluto" | grep -q "not found"; then
  echo "ci/setup.sh: pluto in $LIBRESWAN_PREFIX misses libraries:" >&2
  ldd "$LIBRESWAN_PREFIX/usr/libexec/ipsec/pluto" | grep "not found" >&2
  exit 2
fi

# virtme-ng boots a kernel with the host's root shared read-only (VM mode).
if ! command -v vng >/dev/null 2>&1; then
  PIP=$(command -v pip3 || command -v pip || true)
  if [ -z "$PIP" ]; then
    apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    PIP=$(command -v pip3)
  fi
  echo "ci/setup.sh: installing virtme-ng (pip)"
  # Debian's own python refuses system-wide pip installs without this flag.
  "$PIP" install -q virtme-ng 2>/dev/null || "$PIP" install -q --break-system-packages virtme-ng
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi

# UML (`--kernel uml`, and `auto` without working KVM): vpnlab builds its own
# User-Mode Linux kernel from Debian's linux-source-6.12 (see
# harness/src/batch/vm/uml/kernel.config) and runs it as the unprivileged
# user vpnlab-uml, in group dip for pppd. The kernel itself is built by
# `vpnlab uml-kernel` (ci/test.sh, ci/run-scenarios.sh), once, into
# /var/cache/vpnlab/uml.
UML_PACKAGES=(linux-source-6.12 bc bison flex make gcc libc6-dev xz-utils binutils)
if apt-cache show linux-source-6.12 >/dev/null 2>&1 || { apt-get update -qq && apt-cache show linux-source-6.12 >/dev/null 2>&1; }; then
  mapfile -t uml_missing < <(not_installed "${UML_PACKAGES[@]}")
  if [ "${#uml_missing[@]}" -gt 0 ]; then
    echo "ci/setup.sh: installing ${uml_missing[*]} (to build the UML kernel)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${uml_missing[@]}" >/dev/null
  fi
  export VPNLAB_BUILD_UML=1
else
  echo "ci/setup.sh: linux-source-6.12 is not available here: no UML; VM cells use qemu"
fi
UML_USER=${VPNLAB_UML_USER:-vpnlab-uml}
if ! id "$UML_USER" >/dev/null 2>&1; then
  echo "ci/setup.sh: creating the unprivileged user $UML_USER (UML runs as it)"
  useradd --system --no-create-home --shell /usr/sbin/nologin --groups dip "$UML_USER"
fi

if ! command -v cargo >/dev/null 2>&1; then
  for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
    [ -x "$d/cargo" ] && export PATH="$d:$PATH"
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "ci/setup.sh: Rust is missing: install Rust 1.85 or newer with rustup (https://rustup.rs), then run this again" >&2
  exit 2
fi
