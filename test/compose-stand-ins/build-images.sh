#!/bin/sh
# The images deploy/compose/compose.yaml starts from: the official ones when this machine has them or
# can pull them, else stand-ins built here from Debian packages (a machine whose only registries are
# Debian's and npm's). Used by test/deploy-compose.e2e.test.ts; prints one line per image.
#   test/compose-stand-ins/build-images.sh [DEBIAN_MIRROR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mirror=${1:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

have() { docker image inspect "$1" >/dev/null 2>&1; }
pulled() { timeout 60 docker pull -q "$1" >/dev/null 2>&1; }

if ! have debian:bookworm-slim && ! pulled debian:bookworm-slim; then
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }
  tar -C "$work/rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
  echo "debian:bookworm-slim: stand-in (debootstrap from $mirror)"
else
  echo "debian:bookworm-slim: present"
fi

if ! have node:20-bookworm-slim && ! pulled node:20-bookworm-slim; then
  node=$(command -v node)
  case "$("$node" -v)" in v20.*) ;; *) echo "node:20-bookworm-slim: this machine's node is $("$node" -v), not 20" >&2; exit 1 ;; esac
  prefix=$(dirname "$(dirname "$(readlink -f "$node")")")
  mkdir "$work/node"
  cp "$here/node/Dockerfile" "$work/node/"
  cp "$(readlink -f "$node")" "$work/node/node"
  cp -a "$prefix/lib/node_modules/npm" "$work/node/npm"
  cp -a "$prefix/include/node" "$work/node/include"
  cat /usr/local/share/ca-certificates/*.crt > "$work/node/extra-ca.pem" 2>/dev/null || : > "$work/node/extra-ca.pem"
  docker build -q -t node:20-bookworm-slim "$work/node" >"$work/node.log" 2>&1 || { tail -20 "$work/node.log"; exit 1; }
  echo "node:20-bookworm-slim: stand-in (this machine's node $("$node" -v))"
else
  echo "node:20-bookworm-slim: present"
fi

# The three Debian-package images at once (each mostly waits on its apt downloads).
pids=""
for pair in postgres:15=postgres redis:7=redis haproxy:2.8=haproxy; do
  (
    image=${pair%%=*}
    if ! have "$image" && ! pulled "$image"; then
      log="$work/${pair#*=}.log"
      docker build -q -t "$image" "$here/${pair#*=}" >"$log" 2>&1 || { echo "$image: the stand-in did not build:"; tail -20 "$log"; exit 1; }
      echo "$image: stand-in (Debian packages)"
    else
      echo "$image: present"
    fi
  ) &
  pids="$pids $!"
done
status=0
for pid in $pids; do wait "$pid" || status=1; done
exit $status
