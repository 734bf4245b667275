#!/usr/bin/env bash
# Proof that the appliance works: builds the image from ./Dockerfile with a private Docker engine,
# runs it on loopback, boots a simulated phone over HTTP, HTTPS and TFTP, restarts it with its data,
# stops it within a bound, and removes everything it created. Run as root on Debian (bookworm).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

need() { command -v "$1" >/dev/null 2>&1; }
if ! need dockerd || ! need debootstrap || ! need atftp || ! need curl || [ ! -x /usr/bin/docker ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap atftp curl ca-certificates >/dev/null
fi

T=$(mktemp -d /tmp/edgeprov-container.XXXXXX)
SOCK="unix://$T/docker.sock"
# Debian's client, whose built-in BuildKit needs no buildx plugin (another docker may come first on PATH).
D() { /usr/bin/docker -H "$SOCK" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs() { node -e 'console.log((Number(process.argv[1]) / 1000).toFixed(1))' "$1"; }
NAME=edgeprov-ct-$$
VOLUME=edgeprov-ct-data-$$
DOCKERD_PID=

cleanup() {
  set +e
  if [ -n "$DOCKERD_PID" ]; then
    D rm -f "$NAME" >/dev/null 2>&1
    D volume rm -f "$VOLUME" >/dev/null 2>&1
    D rmi -f edgeprov:container-test >/dev/null 2>&1
    kill "$DOCKERD_PID" 2>/dev/null
    wait "$DOCKERD_PID" 2>/dev/null
  fi
  # dockerd leaves mounts under its roots (the host network namespace, overlay layers).
  for m in $(mount | awk -v t="$T" 'index($3, t) == 1 {print $3}' | sort -r); do umount "$m" 2>/dev/null || umount -l "$m"; done
  rm -rf "$T"
}
trap cleanup EXIT

# --- a private engine, every path under $T --------------------------------------------------------
dockerd --data-root "$T/docker" --exec-root "$T/exec" --host "$SOCK" --pidfile "$T/docker.pid" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false >"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 100); do D info >/dev/null 2>&1 && break; sleep 0.2; done
D info >/dev/null || { cat "$T/dockerd.log"; echo "dockerd did not start"; exit 1; }

# --- the base image the Dockerfile names, made locally (no registry is reachable here) ------------
BASE=node:20-bookworm-slim
if ! D image inspect "$BASE" >/dev/null 2>&1; then
  # The cache is keyed by its recipe: a new Node or a changed recipe makes a new base.
  RECIPE="bookworm minbase +passwd,ca-certificates; node $(node -v) with npm $(npm -v) and headers; v2"
  CACHE=${EDGEPROV_BASE_CACHE:-/var/cache/edgeprov/base-$(echo "$RECIPE" | sha256sum | cut -c1-12).tar}
  if [ ! -s "$CACHE" ]; then
    echo "== making $BASE with debootstrap (minbase) and this machine's Node $(node -v)"
    RFS="$T/rootfs"
    debootstrap --variant=minbase --include=passwd,ca-certificates bookworm "$RFS" http://deb.debian.org/debian >"$T/debootstrap.log" 2>&1 \
      || { tail -20 "$T/debootstrap.log"; exit 1; }
    cp "$(readlink -f "$(command -v node)")" "$RFS/usr/local/bin/node"
    # Like the official image: Node's headers in /usr/local/include/node (native addons build against them).
    mkdir -p "$RFS/usr/local/include"
    cp -a "$(dirname "$(readlink -f "$(command -v node)")")/../include/node" "$RFS/usr/local/include/node"
    mkdir -p "$RFS/usr/local/lib/node_modules"
    cp -a "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")" "$RFS/usr/local/lib/node_modules/npm"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$RFS/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$RFS/usr/local/bin/npx"
    rm -rf "$RFS/var/cache/apt/archives/"*.deb "$RFS/var/lib/apt/lists/"*
    mkdir -p "$(dirname "$CACHE")"
    tar -C "$RFS" -cf "$CACHE.tmp" . && mv "$CACHE.tmp" "$CACHE"
    rm -rf "$RFS"
  fi
  D import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["node"]' "$CACHE" "$BASE" >/dev/null
fi

# --- build from the repository's Dockerfile ------------------------------------------------------
# The TLS-intercepting proxy's CA goes in as a build secret, never into a layer.
SECRET=()
CA=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
if [ -s "$CA" ]; then SECRET=(--secret "id=ca,src=$CA"); fi
echo "== building the image"
START=$(now_ms)
DOCKER_BUILDKIT=1 D build --network host "${SECRET[@]}" -t edgeprov:container-test . >"$T/build.log" 2>&1 || { tail -40 "$T/build.log"; exit 1; }
BUILD_S=$(secs $(( $(now_ms) - START )))
SIZE_MB=$(( $(D image inspect -f '{{.Size}}' edgeprov:container-test) / 1000000 ))
COMPILERS=$(D run --rm --entrypoint sh edgeprov:container-test -c 'command -v gcc g++ make cc' || true)
if [ -n "$COMPILERS" ]; then echo "the runtime image has a compiler: $COMPILERS"; exit 1; fi

# --- run on loopback, fresh volume --------------------------------------------------------------
run_container() {
  D run -d --name "$NAME" --network host -v "$VOLUME:/data" \
    -e EDGEPROV_HOST=127.0.0.1 -e EDGEPROV_PUBLIC_HOSTS=127.0.0.1 -e EDGEPROV_AUTH_SCRYPT_COST=16384 \
    edgeprov:container-test >/dev/null
}
wait_healthy() {
  for _ in $(seq 1 150); do
    [ "$(D inspect -f '{{.State.Health.Status}}' "$NAME")" = healthy ] && return 0
    [ "$(D inspect -f '{{.State.Running}}' "$NAME")" = true ] || { D logs "$NAME" | tail -20; return 1; }
    sleep 0.2
  done
  D logs "$NAME" | tail -20
  return 1
}
START=$(now_ms)
run_container
wait_healthy || { echo "container never became healthy"; exit 1; }
START_S=$(secs $(( $(now_ms) - START )))
[ "$(D exec "$NAME" id -u)" != 0 ] || { echo "runs as root"; exit 1; }

echo "== first administrator with docker exec"
D exec "$NAME" edgeprov init --email admin@example.com --password 'container test password' >/dev/null

API=http://127.0.0.1:80/api/v1
TOKEN=$(curl -sf "$API/auth/token" -H 'content-type: application/json' -d '{"email":"admin@example.com","password":"container test password"}' | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')
j() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(process.argv[1].split(".").reduce((o,k)=>o[k],v))})' "$1"; }
call() { curl -sf -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
TID=$(call "$API/tenants" -d '{"name":"Container"}' | j id)
SITE=$(call "$API/tenants/$TID/sites" -d '{"name":"Loopback","subnets":["127.0.0.0/8"]}' | j id)
call "$API/tenants/$TID/devices" -d "{\"mac\":\"0004f2c0c0c0\",\"siteId\":\"$SITE\",\"lines\":[{\"index\":1,\"address\":\"4242\",\"authPassword\":\"x\"}]}" >/dev/null
PROV=$(call "$API/tenants/$TID/provisioning")
USER_=$(echo "$PROV" | j username); PASS=$(echo "$PROV" | j password)
HTTP_BASE=$(echo "$PROV" | j httpBase); HTTPS_BASE=$(echo "$PROV" | j httpsBase)
D exec "$NAME" cat /data/tls/ca.crt >"$T/ca.crt"

echo "== phone over HTTP, HTTPS and TFTP"
node bin/edgeprov.js phone-sim --url "$HTTP_BASE" --mac 0004f2c0c0c0 --user "$USER_" --password "$PASS" | tail -1
node bin/edgeprov.js phone-sim --url "$HTTPS_BASE" --mac 0004f2c0c0c0 --user "$USER_" --password "$PASS" --ca "$T/ca.crt" | tail -1
for f in 0004f2c0c0c0.cfg 0004f2c0c0c0-device.cfg defaults.cfg; do
  atftp --option "blksize 1468" -g -r "$f" -l "$T/$f" 127.0.0.1 69
done
grep -q 'reg.1.address="4242"' "$T/0004f2c0c0c0-device.cfg" || { echo "TFTP config lacks the line"; exit 1; }

echo "== firmware over TFTP from the native pump"
# Into a file first: under pipefail, grep -q leaving early would fail the pipe with SIGPIPE.
D logs "$NAME" >"$T/serve.log" 2>&1
grep -q '"firmwarePump":"native"' "$T/serve.log" || { grep 'TFTP listening' "$T/serve.log"; echo "the image lacks the native TFTP pump"; exit 1; }
head -c 3000000 /dev/urandom >"$T/3111-48500-001.sip.ld"
curl -sf -H "authorization: Bearer $TOKEN" -T "$T/3111-48500-001.sip.ld" "$API/firmware/9.9.9.1/images/3111-48500-001.sip.ld" >/dev/null
atftp --option "blksize 1468" -g -r fw/9.9.9.1/3111-48500-001.sip.ld -l "$T/fw.ld" 127.0.0.1 69
cmp "$T/fw.ld" "$T/3111-48500-001.sip.ld" || { echo "TFTP firmware differs"; exit 1; }

echo "== restart keeps the data"
D restart -t 10 "$NAME" >/dev/null
wait_healthy || { echo "not healthy after restart"; exit 1; }
# Into a file first, as above: grep -q must not be able to cut the pipe.
call "$API/tenants/$TID/devices/0004f2c0c0c0" >"$T/device.json" && grep -q '"mac":"0004f2c0c0c0"' "$T/device.json" || { echo "device lost on restart"; exit 1; }

echo "== docker stop within the bound"
START=$(now_ms)
D stop -t 10 "$NAME" >/dev/null
STOP_MS=$(( $(now_ms) - START ))
STOP_S=$(secs "$STOP_MS")
[ "$(D inspect -f '{{.State.ExitCode}}' "$NAME")" = 0 ] || { D logs "$NAME" | tail; echo "unclean exit"; exit 1; }
if [ "$STOP_MS" -gt 5000 ]; then echo "docker stop took ${STOP_S}s"; exit 1; fi

echo "container test passed: image ${SIZE_MB} MB, build ${BUILD_S} s, start to healthy ${START_S} s, stop ${STOP_S} s"
