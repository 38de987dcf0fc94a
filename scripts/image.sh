#!/usr/bin/env bash
# The pipe-server image, built from a local Debian base with podman (no image registry needed).
#
#   scripts/image.sh base            make the base image once (debootstrap), reuse it afterwards
#   scripts/image.sh build [DIR [OPTION...]]
#                                    build the image from DIR (default: this checkout); OPTIONs go
#                                    to podman build (e.g. --target build for the build stage alone)
#
# Settings (environment): CHAINPIPE_BASE (default localhost/debian-base:bookworm),
# CHAINPIPE_IMAGE (default localhost/chainpipe), CHAINPIPE_TAG (default: the package version),
# DEBIAN_MIRROR (debootstrap's mirror; its own default when unset), CHAINPIPE_BUILD_CA (a CA bundle
# pip trusts in the build, for a TLS-inspecting proxy; default $PIP_CERT, else the host's bundle).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BASE="${CHAINPIPE_BASE:-localhost/debian-base:bookworm}"
IMAGE="${CHAINPIPE_IMAGE:-localhost/chainpipe}"

say() { printf 'image: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

version() {
  python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$root/pyproject.toml"
}

ensure_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "${missing[*]} missing; install them (apt-get install -y ${missing[*]}) or run as root"
  say "installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
}

make_base() {
  ensure_tools
  if podman image exists "$BASE"; then
    say "base $BASE exists; reusing it (podman rmi $BASE to make it again)"
    return 0
  fi
  [[ $(id -u) == 0 ]] || die "making the base image runs debootstrap, which needs root"
  local dir start=$SECONDS
  dir="$(mktemp -d /var/tmp/chainpipe-base.XXXXXX)"
  trap 'rm -rf "$dir"' RETURN
  say "debootstrap bookworm into $dir"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$dir" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; die "debootstrap failed (log: $dir.log)"; }
  rm -f "$dir.log"
  # Not needed in an image: downloaded packages, package lists, manuals and translations
  # (the packages' copyright files stay).
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
    "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
  find "$dir"/usr/share/doc -type f ! -name copyright -delete
  tar -C "$dir" -c . | podman import --quiet - "$BASE" >/dev/null
  say "base $BASE made in $((SECONDS - start)) s"
}

build() {
  local context="${1:-$root}" tag start=$SECONDS
  shift || true
  tag="${CHAINPIPE_TAG:-$(version)}"
  make_base
  local ca="${CHAINPIPE_BUILD_CA:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}" secret=()
  [[ -s $ca ]] && secret=(--secret "id=pip-ca,src=$ca")
  # --format docker keeps HEALTHCHECK (the OCI image format has no field for it).
  podman build --isolation chroot --format docker --build-arg "BASE=$BASE" "${secret[@]}" \
    -f "$root/Containerfile" -t "$IMAGE:$tag" -t "$IMAGE:latest" "$@" "$context"
  say "$IMAGE:$tag built in $((SECONDS - start)) s; size $(podman image inspect --format '{{.Size}}' "$IMAGE:$tag") bytes"
}

case "${1:-}" in
  base) make_base ;;
  build) shift; build "$@" ;;
  *) die "usage: scripts/image.sh base | build [CONTEXT_DIR [PODMAN_BUILD_OPTION...]]" ;;
esac
