#!/usr/bin/env bash
# Installs what building and testing rsttrace needs, skipping whatever is
# already there. Safe to run any number of times; run by `cargo xtask` before
# every build and by .ci/run. Needs root for apt and mounts.
set -euo pipefail

LLVM_VERSION=22
BPF_LINKER_VERSION=0.13.0
log() { printf 'bootstrap: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: LLVM for bpf-linker, iproute2/nftables for the network
# namespace tests and tcpdump for their packet capture (the ground truth they
# compare rsttrace with; the QEMU guests get it too), qemu + busybox for the
# kernel matrix, bpftrace (and tcpdump) for the comparison benchmarks.
packages=(
  "llvm-${LLVM_VERSION}-dev" "libpolly-${LLVM_VERSION}-dev" libzstd-dev zlib1g-dev
  iproute2 nftables procps tcpdump
  # cargo xtask bench: BPF program statistics, and what rsttrace is compared with.
  bpftool bpftrace
  # cargo xtask vm-test: QEMU, the guest's static shell, modinfo and xz for
  # kernel modules, the key that checks Debian's archive for kernel packages.
  qemu-system-x86 busybox-static kmod xz-utils debian-archive-keyring
  # systemd-analyze verify on the unit (it looks up the man pages with man).
  systemd man-db
  # cargo xtask deb: dpkg-shlibdeps for the package's dependencies.
  dpkg-dev
  # tests/metrics.rs scrapes rsttrace with a real Prometheus; promtool checks
  # the exposition and the shipped alert rules (packaging/prometheus/).
  prometheus
  # tests/load_balancer.rs puts a real load balancer in front of a backend.
  haproxy
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # llvm-22 comes from bookworm-security: a stale package list does not know it.
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Prometheus's package enables and starts its own server on :9090; the
  # tests start theirs on free ports and need no other. Where systemd runs,
  # a server this script brought in is stopped and disabled again.
  # The same for haproxy's (the tests start theirs in a namespace).
  if [ -d /run/systemd/system ]; then
    for service in prometheus haproxy; do
      if [[ " ${missing[*]} " == *" $service "* ]]; then
        as_root systemctl disable --now "$service.service" >/dev/null 2>&1 || true
      fi
    done
  fi
fi

# Nightly with rust-src builds the eBPF crate (-Z build-std=core).
if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
for c in rust-src clippy; do
  if ! rustup component list --toolchain nightly --installed | grep -q "^$c"; then
    log "adding $c to nightly"
    rustup component add "$c" --toolchain nightly
  fi
done
for c in rustfmt clippy; do
  rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

# bpf-linker linked against Debian's LLVM: without LLVM_SYS_<ver>1_PREFIX it
# links against /usr/lib and fails to build.
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if ! "$cargo_bin/bpf-linker" --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  log "building bpf-linker $BPF_LINKER_VERSION against LLVM $LLVM_VERSION (about a minute)"
  env PATH="/usr/lib/llvm-${LLVM_VERSION}/bin:$PATH" \
    "LLVM_SYS_${LLVM_VERSION}1_PREFIX=/usr/lib/llvm-${LLVM_VERSION}" \
    cargo install --locked bpf-linker --version "$BPF_LINKER_VERSION" \
      --no-default-features --features "llvm-${LLVM_VERSION}"
fi

# cargo-deb for `cargo xtask deb` (3.8.0 builds with rustc 1.85 and newer).
CARGO_DEB_VERSION=3.8.0
if ! "$cargo_bin/cargo-deb" --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  log "installing cargo-deb $CARGO_DEB_VERSION (about a minute)"
  cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

# tracefs and bpffs are not mounted on every machine.
if [ "$(id -u)" -eq 0 ]; then
  mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
fi
