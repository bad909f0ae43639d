#!/usr/bin/env bash
# Installs what rsttrace's tasks need, skipping whatever is already there.
# Safe to run any number of times. Needs root for apt and mounts.
#
#   bash xtask/bootstrap.sh [build|clippy|all]
#
#   build   what building and running rsttrace need: LLVM for bpf-linker,
#           nightly with rust-src, bpf-linker; tracefs and bpffs mounted.
#           `cargo xtask run` runs this part; run it by hand before a plain
#           `cargo build`.
#   clippy  build, and clippy on stable and nightly (`cargo xtask clippy`).
#   all     the default: clippy, and what the tests, the QEMU kernels, the
#           benchmarks and the Debian package need, and rustfmt
#           (`cargo xtask test`, `vm-test`, `bench`, `deb`, `setup`; .ci/run).
set -euo pipefail

LLVM_VERSION=22
BPF_LINKER_VERSION=0.13.0
log() { printf 'bootstrap: %s\n' "$*" >&2; }

part="${1:-all}"
case "$part" in
  build | clippy | all) ;;
  *)
    printf 'usage: bash xtask/bootstrap.sh [build|clippy|all] (all by default)\n' >&2
    exit 2
    ;;
esac
# clippy comes with the clippy part and with all.
with_clippy() { [ "$part" != build ]; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages for building: a C toolchain (cargo links with cc; rustup
# installs none), LLVM for bpf-linker (it links against libLLVM, Polly
# included), zstd and zlib, which LLVM links with.
packages=(
  gcc libc6-dev
  "llvm-${LLVM_VERSION}-dev" "libpolly-${LLVM_VERSION}-dev" libzstd-dev zlib1g-dev
)
if [ "$part" = all ]; then
  packages+=(
    # iproute2/nftables for the network namespace tests and tcpdump for their
    # packet capture (the ground truth they compare rsttrace with; the QEMU
    # guests get it too).
    iproute2 nftables procps tcpdump
    # cargo xtask bench: BPF program statistics, and what rsttrace is compared
    # with (tcpdump, above, too).
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
fi
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

# A nightly with rust-src builds the eBPF crate (-Z build-std=core); its
# clippy lints it (cargo xtask clippy). Pinned (rust-nightly, which
# rsttrace/build.rs and xtask read too): its LLVM must be the one bpf-linker
# links against (LLVM_VERSION); a newer nightly's bitcode fails to link
# ("Invalid record").
NIGHTLY="$(cat "$(dirname "$0")/../rust-nightly")"
if ! rustup toolchain list | grep -q "^${NIGHTLY}"; then
  log "installing the ${NIGHTLY} toolchain"
  rustup toolchain install "$NIGHTLY" --profile minimal
fi
nightly_components=(rust-src)
with_clippy && nightly_components+=(clippy)
for c in "${nightly_components[@]}"; do
  if ! rustup component list --toolchain "$NIGHTLY" --installed | grep -q "^$c"; then
    log "adding $c to ${NIGHTLY}"
    rustup component add "$c" --toolchain "$NIGHTLY"
  fi
done
# The default toolchain's clippy for the userspace pass, and its rustfmt for
# .ci/run's cargo fmt --check.
components=()
with_clippy && components+=(clippy)
[ "$part" = all ] && components+=(rustfmt)
for c in "${components[@]}"; do
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
if [ "$part" = all ] && ! "$cargo_bin/cargo-deb" --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  log "installing cargo-deb $CARGO_DEB_VERSION (about a minute)"
  cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

# tracefs and bpffs are not mounted on every machine.
if [ "$(id -u)" -eq 0 ]; then
  mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
fi
