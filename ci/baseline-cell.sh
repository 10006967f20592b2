#!/usr/bin/env bash
# vpnlab hand-written baseline: one IPsec NAT-T cell, built with ip/nft/charon/swanctl only.
#
#   client (192.168.1.2, inner 10.10.1.1) -- gw (192.168.1.1 | 203.0.113.1) -- server (203.0.113.2, inner 10.10.2.1)
#
# Two strongSwan charons (kernel-libipsec: userspace ESP over a TUN, always UDP-encapsulated),
# IKEv2 PSK, tunnel mode 10.10.1.1/32 <-> 10.10.2.1/32. The client initiates, then 3 pings and a
# UDP exchange on port 1701 go through the tunnel. This is the reference vpnlab's benchmark
# compares against, so it contains no fixed sleeps: only polling loops bounded by deadlines.
#
# Usage: ci/baseline-cell.sh [NAT profile] [NAT-T mode]
#   NAT profile: masquerade (default) | none | no-esp | block-4500
#   NAT-T mode:  auto (default) | force   (force = swanctl `encap = yes`)
# Env: BASELINE_UDP=0 skips the UDP check; BASELINE_VERBOSE=1 prints both ends' list-sas --raw,
# their routing table 220 and gw's nft ruleset with counters.
# Needs root, iproute2, nftables, iputils-ping, python3, strongswan-charon, strongswan-swanctl,
# libcharon-extra-plugins (kernel-libipsec). Touches nothing outside the namespaces it creates.
# Exit 0 only if the tunnel came up and every check passed.
set -euo pipefail

NAT=${1:-masquerade}
MODE=${2:-auto}
case $NAT in masquerade|none|no-esp|block-4500) ;; *) echo "unknown NAT profile: $NAT" >&2; exit 2;; esac
case $MODE in auto) ENCAP=no ;; force) ENCAP=yes ;; *) echo "unknown NAT-T mode: $MODE" >&2; exit 2;; esac
[ "$EUID" = 0 ] || { echo "needs root" >&2; exit 2; }
CHARON=/usr/lib/ipsec/charon
PY=/usr/bin/python3; [ -x "$PY" ] || PY=$(command -v python3 || true)  # avoid slow pyenv shims
for t in ip nft swanctl ping "$PY" unshare "$CHARON"; do
  command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 2; }
done

TAG=vlb$$                                   # unique namespace prefix
NODES=(client gw server)
DIR=$(mktemp -d /tmp/vpnlab-baseline.XXXXXX) # per-node config, logs, private /run
declare -A CHARON_PID
UDP_SRV=    # UDP echo server

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # charon needs ~1 s for a graceful SIGTERM shutdown; the namespaces are discarded anyway.
  for p in "${CHARON_PID[@]}" $UDP_SRV; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${CHARON_PID[@]}" $UDP_SRV; do wait "$p" 2>/dev/null || true; done
  for n in "${NODES[@]}"; do ip netns del "$TAG-$n" 2>/dev/null || true; done
  rm -rf "$DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { # print the evidence, then fail
  echo "FAIL: $*" >&2
  for f in "$DIR"/*/initiate.log "$DIR"/*/charon.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 25 "$f" >&2; }
  done
  exit 1
}

# poll CMD every 5 ms until it succeeds or SECS elapse (no fixed sleeps)
poll() {
  local secs=$1; shift
  local end=$(( ${EPOCHREALTIME/./} + secs * 1000000 ))
  until "$@"; do
    (( ${EPOCHREALTIME/./} < end )) || return 1
    sleep 0.005
  done
}

in_ns() { local n=$1; shift; ip netns exec "$TAG-$n" "$@"; }

# --- topology: one `ip -batch` per node; veth pairs are created inside the namespaces, never
# in the caller's. client and server create the veths, so gw goes last.
ip -batch - <<EOF
netns add $TAG-client
netns add $TAG-gw
netns add $TAG-server
EOF
ip -n "$TAG-client" -batch - <<EOF
link set lo up
link add eth0 type veth peer name lan netns $TAG-gw
addr add 192.168.1.2/24 dev eth0
addr add 10.10.1.1/32 dev lo
link set eth0 up
route add default via 192.168.1.1
EOF
ip -n "$TAG-server" -batch - <<EOF
link set lo up
link add eth0 type veth peer name wan netns $TAG-gw
addr add 203.0.113.2/24 dev eth0
addr add 10.10.2.1/32 dev lo
link set eth0 up
EOF
ip -n "$TAG-gw" -batch - <<EOF
link set lo up
addr add 192.168.1.1/24 dev lan
addr add 203.0.113.1/24 dev wan
link set lan up
link set wan up
EOF

# --- NAT profile: an nftables ruleset applied inside gw -------------------------------------
{
  echo "table ip vpnlab {"
  if [ "$NAT" != none ]; then
    echo "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;"
    echo "    oifname \"wan\" masquerade; }"
  fi
  echo "  chain forward { type filter hook forward priority filter; policy accept;"
  [ "$NAT" = no-esp ]     && echo "    ip protocol { esp, ah } counter drop"
  [ "$NAT" = block-4500 ] && echo "    udp dport 4500 counter drop; udp sport 4500 counter drop"
  echo "  }"
  echo "}"
} > "$DIR/gw.nft"
in_ns gw sh -c "sysctl -qw net.ipv4.ip_forward=1 && nft -f '$DIR/gw.nft'"   # per-netns sysctl
# without NAT the server needs a way back to the client's private network
[ "$NAT" = none ] && ip -n "$TAG-server" route add 192.168.1.0/24 via 203.0.113.1

# --- strongSwan: one charon per end, private /run, own strongswan.conf ----------------------
# conf NODE LOCAL_TS REMOTE_TS REMOTE_ADDRS LOCAL_ID REMOTE_ID
conf() {
  local d=$DIR/$1
  # run/ becomes charon's /run; swanctl --load-all --file also scans x509/, private/ ...
  # next to the file, so give it empty ones
  mkdir -p "$d"/{run,x509,x509ca,x509ocsp,x509aa,x509ac,x509crl,pubkey,private,rsa,ecdsa,bliss,pkcs8,pkcs12}
  cat > "$d/strongswan.conf" <<EOF
charon {
  # Explicit, minimal plugin list. kernel-libipsec (userspace ESP over TUN) must come before
  # kernel-netlink, or the kernel XFRM backend wins (no ESP here: CHILD_SA fails, ENOSYS);
  # kernel-netlink still provides routes/addresses; kdf provides KDF_PRF(+) for IKE keys.
  load = nonce openssl kdf kernel-libipsec kernel-netlink socket-default vici
  # fail fast: 0.5 s + 0.5 s + 0.5 s, i.e. a lost exchange gives up after 1.5 s
  retransmit_timeout = 0.5
  retransmit_base = 1.0
  retransmit_tries = 2
  install_routes = yes          # routes to the remote TS via ipsec0 in table 220
  plugins {
    vici { socket = unix://$d/run/charon.vici }
  }
  syslog { }                    # no syslog
  filelog {
    log { path = $d/charon.log
          default = 1
          flush_line = yes }
  }
}
swanctl {
  load = nonce                  # swanctl needs no plugin for PSK; empty would mean "all" (slow)
}
EOF
  cat > "$d/swanctl.conf" <<EOF
connections {
  cell {
    version = 2
    remote_addrs = $4
    encap = $ENCAP
    local { auth = psk
            id = $5 }
    remote { auth = psk
             id = $6 }
    children {
      cell { mode = tunnel
             local_ts = $2
             remote_ts = $3 }
    }
  }
}
secrets {
  ike-cell { id-1 = client
             id-2 = server
             secret = vpnlab-baseline-psk }
}
EOF
}
conf client 10.10.1.1/32 10.10.2.1/32 203.0.113.2 client server
conf server 10.10.2.1/32 10.10.1.1/32 %any        server client

for n in client server; do
  # charon writes /run/charon.pid: give it a private /run (bind of $DIR/$n/run) in its own
  # mount namespace, inside the node's network namespace. STRONGSWAN_CONF selects the config.
  # (ip netns exec already gives a private, slave mount namespace; unshare -m makes it explicit.)
  STRONGSWAN_CONF=$DIR/$n/strongswan.conf ip netns exec "$TAG-$n" \
    unshare -m sh -c "mount --bind '$DIR/$n/run' /run && exec $CHARON" \
    >"$DIR/$n/charon.out" 2>&1 &
  CHARON_PID[$n]=$!
done

vici() { local n=$1; shift; STRONGSWAN_CONF=$DIR/$n/strongswan.conf swanctl "$@" --uri "unix://$DIR/$n/run/charon.vici"; }
# ready = VICI answers (stop polling early if charon died)
vici_ready() { ! kill -0 "${CHARON_PID[$1]}" 2>/dev/null || vici "$1" --stats >/dev/null 2>&1; }
for n in client server; do
  poll 5 vici_ready "$n" || fail "charon ($n): no VICI socket after 5 s"
  kill -0 "${CHARON_PID[$n]}" 2>/dev/null || fail "charon ($n) exited"
  vici "$n" --load-all --file "$DIR/$n/swanctl.conf" >"$DIR/$n/load.log" 2>&1 \
    || fail "swanctl --load-all ($n)"
done

# UDP echo server on 10.10.2.1:1701 (L2TP's port), started early so it is bound in time.
# (background jobs are plain commands, not functions, so that $! is the process itself)
UDP=${BASELINE_UDP:-1}
if [ "$UDP" = 1 ]; then
  ip netns exec "$TAG-server" "$PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.10.2.1", 1701)); s.settimeout(10)
d, peer = s.recvfrom(2048); s.sendto(b"echo:" + d, peer)' &
  UDP_SRV=$!
fi

show() { # BASELINE_VERBOSE=1: SAs of both ends, their table 220, gw's counters
  for n in client server; do echo "== $n list-sas"; vici "$n" --list-sas --raw || true; done
  for n in client server; do echo "== $n table 220"; ip -n "$TAG-$n" route show table 220 2>&1 || true; done
  echo "== gw ruleset"; in_ns gw nft list ruleset || true
}

# --- bring the tunnel up from the client ------------------------------------------------------
# (in the background + wait, so that INT/TERM interrupt it at once and run the cleanup)
t0=${EPOCHREALTIME/./}
vici client --initiate --ike cell --child cell --timeout 10 >"$DIR/client/initiate.log" 2>&1 &
if ! wait $!; then
  [ "${BASELINE_VERBOSE:-0}" = 1 ] && show
  fail "initiate (NAT=$NAT mode=$MODE) after $(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms: $(grep -h "^initiate" "$DIR/client/initiate.log")"
fi
[ "${BASELINE_VERBOSE:-0}" = 1 ] && show

# --- checks through the tunnel: ICMP (no pseudo-header) and UDP/1701 (pseudo-header) ---------
# (-w: with a deadline, ping exits non-zero unless all 3 replies arrive)
in_ns client ping -q -c 3 -i 0.01 -w 3 -I 10.10.1.1 10.10.2.1 >"$DIR/client/ping.log" 2>&1 \
  || fail "ping 10.10.1.1 -> 10.10.2.1: $(grep loss "$DIR/client/ping.log")"

if [ "$UDP" = 1 ]; then
  # the client resends every 20 ms until the echo comes back (or 3 s pass)
  in_ns client "$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.10.1.1", 1701)); s.settimeout(0.02)
end = time.monotonic() + 3
while time.monotonic() < end:
    s.sendto(b"vpnlab", ("10.10.2.1", 1701))
    try:
        d, peer = s.recvfrom(2048)
    except socket.timeout:
        continue
    sys.exit(0 if d == b"echo:vpnlab" and peer == ("10.10.2.1", 1701) else 1)
sys.exit(1)' || fail "UDP 10.10.1.1:1701 -> 10.10.2.1:1701"
  wait "$UDP_SRV" || fail "UDP echo server"
  UDP_SRV=
fi

echo "ok: NAT=$NAT mode=$MODE: tunnel up, 3/3 pings$( [ "$UDP" = 1 ] && echo ", UDP/1701 echo")"
