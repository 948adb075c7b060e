#!/bin/sh
# Re-records the iperf3 and sockperf outputs in this directory, on this machine, between two network
# namespaces joined by a veth pair (the same topology the local provider gives suites/net). Needs root,
# iproute2, iperf3 and sockperf. Creates perfci_rec_{a,b} and deletes them on exit; no other traffic.
set -eu
cd "$(dirname "$0")"
A=perfci_rec_a; B=perfci_rec_b
cleanup() { ip netns delete "$A" 2>/dev/null || true; ip netns delete "$B" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add prec_a netns "$A" type veth peer name prec_b netns "$B"
ip -n "$A" addr add 10.231.0.1/30 dev prec_a; ip -n "$B" addr add 10.231.0.2/30 dev prec_b
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set prec_a up; ip -n "$B" link set prec_b up
inb() { ip netns exec "$B" "$@"; }
ina() { ip netns exec "$A" "$@"; }

# iperf3: a one-off server (-1) per client run
inb iperf3 -s -1 -B 10.231.0.2 -p 5201 -D; sleep 0.5
ina iperf3 -c 10.231.0.2 -p 5201 -t 3 -J > iperf3-netns-1stream.json
inb iperf3 -s -1 -B 10.231.0.2 -p 5201 -D; sleep 0.5
ina iperf3 -c 10.231.0.2 -p 5201 -t 3 -P 4 -J > iperf3-netns-4streams.json
# nobody listening: iperf3's own error document (exit 1)
ina iperf3 -c 10.231.0.2 -p 5209 -t 1 -J > iperf3-refused.json || true

# sockperf: TCP ping-pong, round trip (--full-rtt), 64-byte messages, 3 s
inb timeout 20 sockperf server --tcp -i 10.231.0.2 -p 5202 > /dev/null 2>&1 &
sleep 0.5
ina sockperf ping-pong --tcp -i 10.231.0.2 -p 5202 -m 64 -t 3 --full-rtt > sockperf-netns-tcp-rtt.txt 2>&1
kill $! 2>/dev/null || true
# nobody listening
ina sockperf ping-pong --tcp -i 10.231.0.2 -p 5209 -m 64 -t 1 --full-rtt > sockperf-refused.txt 2>&1 || true
{ uname -srm; iperf3 --version | head -1; sockperf --version 2>&1 | head -1; date -u +%FT%TZ; } > provenance.txt
