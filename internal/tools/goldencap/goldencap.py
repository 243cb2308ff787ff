#!/usr/bin/env python3
"""goldencap: capture packets that the Linux kernel itself sends and store
them as golden test vectors for the engine/wire parsers.

Run it through capture.sh (which checks the tools first):

    sudo internal/tools/goldencap/capture.sh [OUTDIR]

Every scenario runs in network namespaces of its own (named gc-*), created
here and deleted again at the end (also on error). A scenario either
  * creates a TUN device (IFF_TUN|IFF_NO_PI, no offloads, so the kernel hands
    out fully checksummed raw IP packets) inside a namespace and plays the
    remote peer itself by reading/writing the TUN fd ("inner" mode: this
    file is re-executed with `ip netns exec NS python3 goldencap.py inner ...`),
  * or uses a veth pair between namespaces for the Ethernet/ARP/802.1Q frames.
tcpdump writes one pcap per scenario; a tshark display filter picks the frame
for each golden file; the raw bytes come straight from the pcap, and the
"# fields:" values are tshark's decode (-T json) of those bytes alone (a
one-packet pcap), so they can be re-checked from the file itself:

    python3 internal/tools/goldencap/goldencap.py verify [DIR]

Only the Python standard library is used. Processes started here are stopped
by PID; namespaces created here are deleted by name.
"""

import argparse
import fcntl
import json
import os
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SELF_REL = "internal/tools/goldencap/goldencap.py"
DEFAULT_OUT = os.path.join(REPO, "engine", "wire", "testdata", "golden")

# Addresses (all inside namespaces made here).
K4, P4 = "10.7.0.1", "10.7.0.2"          # kernel / peer on the TUN
K6, P6 = "fd00:7::1", "fd00:7::2"
FAR4, FAR6 = "10.7.3.2", "fd00:7:3::2"    # behind the router's small-MTU veth

# ---------------------------------------------------------------- helpers


def sh(cmd, check=True):
    """Run a shell command string, fail loudly."""
    r = subprocess.run(cmd, shell=True, text=True, capture_output=True)
    if check and r.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s%s" % (r.returncode, cmd, r.stdout, r.stderr))
    return r.stdout


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def a4(s):
    return socket.inet_pton(socket.AF_INET, s)


def a6(s):
    return socket.inet_pton(socket.AF_INET6, s)


def ip4(src, dst, proto, payload, ttl=64, ident=0, df=True, opts=b"", tos=0):
    assert len(opts) % 4 == 0
    ihl = 5 + len(opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(payload), ident,
                    0x4000 if df else 0, ttl, proto, 0, a4(src), a4(dst)) + opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def ip6(src, dst, nh, payload, hlim=64, flow=0, tclass=0):
    first = (6 << 28) | (tclass << 20) | flow
    return struct.pack("!IHBB16s16s", first, len(payload), nh, hlim, a6(src), a6(dst)) + payload


def l4_with_csum(seg, off, src, dst, proto, v6):
    if v6:
        pseudo = a6(src) + a6(dst) + struct.pack("!I3xB", len(seg), proto)
    else:
        pseudo = a4(src) + a4(dst) + struct.pack("!BBH", 0, proto, len(seg))
    c = csum(pseudo + seg)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return seg[:off] + struct.pack("!H", c) + seg[off + 2:]


def tcp(src, dst, sport, dport, seq, ack, flags, win=502, opts=b"", payload=b"", v6=False):
    assert len(opts) % 4 == 0
    doff = (20 + len(opts)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      doff << 4, flags, win, 0, 0) + opts + payload
    return l4_with_csum(seg, 16, src, dst, 6, v6)


def udp(src, dst, sport, dport, payload, v6=False):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return l4_with_csum(seg, 6, src, dst, 17, v6)


def icmp4(typ, code, rest, payload):
    m = struct.pack("!BBH", typ, code, 0) + rest + payload
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def icmp6(src, dst, typ, code, rest, payload):
    m = struct.pack("!BBH", typ, code, 0) + rest + payload
    return l4_with_csum(m, 2, src, dst, 58, True)


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def parse_tcp4(p):
    """Return a dict for an IPv4/TCP packet, else None."""
    if len(p) < 20 or p[0] >> 4 != 4 or p[9] != 6:
        return None
    ihl = (p[0] & 15) * 4
    t = p[ihl:]
    sport, dport, seq, ack, offb, flags, win = struct.unpack("!HHIIBBH", t[:16])
    doff = (offb >> 4) * 4
    opts, payload = t[20:doff], t[doff:]
    tsval = None
    i = 0
    while i < len(opts):
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        ln = opts[i + 1]
        if k == 8:
            tsval = struct.unpack("!I", opts[i + 2:i + 6])[0]
        i += max(ln, 2)
    return dict(src=socket.inet_ntoa(p[12:16]), dst=socket.inet_ntoa(p[16:20]), sport=sport,
                dport=dport, seq=seq, ack=ack, flags=flags, win=win, opts=opts,
                payload=payload, tsval=tsval)


# ---------------------------------------------------------------- inner side

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


class Tun:
    def __init__(self, name="tun0"):
        self.fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
        self.name = name

    def write(self, pkt):
        os.write(self.fd, pkt)

    def expect(self, pred, what, timeout=4.0):
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                raise RuntimeError("timed out waiting for " + what)
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                p = os.read(self.fd, 65535)
                if pred(p):
                    return p

    def close(self):
        os.close(self.fd)


class Capture:
    """tcpdump -w on one interface; started and stopped by PID."""

    def __init__(self, iface, path):
        self.cmd = ["tcpdump", "-Z", "root", "-n", "--immediate-mode", "-U", "-i", iface, "-w", path]
        self.p = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, text=True)
        while True:
            line = self.p.stderr.readline()
            if not line:
                raise RuntimeError("tcpdump did not start: " + " ".join(self.cmd))
            if "listening on" in line:
                break

    def stop(self):
        time.sleep(0.5)
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGINT)
        try:
            self.p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait()


def bg(cmd):
    """Start a helper command (list) in the background."""
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def reap(p, timeout=3):
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()


def tun_setup():
    tun = Tun("tun0")
    for c in ("ip link set lo up",
              "ip link set dev tun0 addrgenmode none",
              "ip link set dev tun0 mtu 1500 up",
              "ip addr add %s/24 dev tun0" % K4,
              "ip -6 addr add fe80::1/64 dev tun0 nodad",
              "ip -6 addr add %s/64 dev tun0 nodad" % K6,
              "sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0"):
        sh(c)
    return tun


TUN_DOC = ("[inside NS: open /dev/net/tun, ioctl TUNSETIFF name=tun0 flags=IFF_TUN|IFF_NO_PI; "
           "ip link set lo up; ip link set dev tun0 addrgenmode none; ip link set dev tun0 mtu 1500 up; "
           "ip addr add 10.7.0.1/24 dev tun0; ip -6 addr add fe80::1/64 dev tun0 nodad; "
           "ip -6 addr add fd00:7::1/64 dev tun0 nodad; sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0; "
           "tcpdump -Z root -n --immediate-mode -U -i tun0 -w PCAP; the peer 10.7.0.2 / fd00:7::2 is goldencap.py itself on the TUN fd]")

SCEN = {}


def scenario(name, iface="tun0", tun=True):
    def deco(fn):
        SCEN[name] = (fn, iface, tun)
        return fn
    return deco


def is_ip4_proto(proto, src=K4):
    return lambda p: len(p) >= 20 and p[0] >> 4 == 4 and p[9] == proto and socket.inet_ntoa(p[12:16]) == src


def is_ip6_nh(nh, src=K6):
    return lambda p: len(p) >= 40 and p[0] >> 4 == 6 and p[6] == nh and socket.inet_ntop(socket.AF_INET6, p[8:24]) == src


def is_icmp4(typ):
    return lambda p: is_ip4_proto(1)(p) and p[(p[0] & 15) * 4] == typ


def is_icmp6(typ, src=K6):
    return lambda p: is_ip6_nh(58, src)(p) and p[40] == typ


@scenario("tcp4_client")
def s_tcp4_client(tun):
    """python3: s=socket.socket(); s.setblocking(False); s.connect_ex(('10.7.0.2', 80)) -> kernel SYN out of tun0"""
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((P4, 80))
    tun.expect(lambda p: (t := parse_tcp4(p)) is not None and t["flags"] == SYN, "SYN")
    s.close()


@scenario("tcp4_ecn")
def s_tcp4_ecn(tun):
    """sysctl -w net.ipv4.tcp_ecn=1; python3: socket.socket().connect_ex(('10.7.0.2', 80)) nonblocking -> kernel ECN-setup SYN (SYN|ECE|CWR)"""
    sh("sysctl -qw net.ipv4.tcp_ecn=1")
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((P4, 80))
    tun.expect(lambda p: (t := parse_tcp4(p)) is not None and t["flags"] & SYN, "SYN")
    s.close()


@scenario("tcp4_server")
def s_tcp4_server(tun):
    """kernel listens on 10.7.0.1:8080 (python3 socket bind/listen/accept; the accepted socket does sendall(b'hello\\n'), reads 400 bytes, close()). The peer (hand-made segments written to tun0 from 10.7.0.2:40000, ISN 1000000, TSval 100,101,...) sends SYN [MSS 1460,SACK_PERM,TS,NOP,WS 7] -> kernel SYN-ACK; ACK; kernel sends PSH|ACK 'hello\\n'; peer ACKs it; peer sends bytes 100-199 then 300-399 of 400 (out of order) -> kernel dup ACKs with 1 then 2 SACK blocks; peer sends 0-99 and 200-299; app reads 400 bytes and closes -> kernel FIN|ACK; peer FIN|ACK; kernel ACK"""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((K4, 8080))
    srv.listen(1)
    got = {}

    def app():
        c, _ = srv.accept()
        c.sendall(b"hello\n")
        data = b""
        while len(data) < 400:
            d = c.recv(4096)
            if not d:
                break
            data += d
        got["data"] = data
        c.close()

    th = threading.Thread(target=app, daemon=True)
    th.start()
    sport, isn = 40000, 1000000
    ts = [100]

    def tsopt(ecr):
        ts[0] += 1
        return b"\x01\x01\x08\x0a" + struct.pack("!II", ts[0], ecr)

    def mine(p):
        t = parse_tcp4(p)
        return t if t and t["dport"] == sport and t["sport"] == 8080 else None

    syn_opts = b"\x02\x04\x05\xb4" + b"\x04\x02" + b"\x08\x0a" + struct.pack("!II", ts[0], 0) + b"\x01" + b"\x03\x03\x07"
    tun.write(ip4(P4, K4, 6, tcp(P4, K4, sport, 8080, isn, 0, SYN, 64240, syn_opts), ident=1))
    sa = mine(tun.expect(lambda p: (t := mine(p)) is not None and t["flags"] == SYN | ACK, "SYN-ACK"))
    kseq = sa["seq"] + 1
    kts = sa["tsval"]
    base = isn + 1

    def send(seq, flags, payload=b"", ident=[2]):
        ident[0] += 1
        tun.write(ip4(P4, K4, 6, tcp(P4, K4, sport, 8080, seq, kseq, flags, 502, tsopt(kts), payload), ident=ident[0]))

    send(base, ACK)
    d = mine(tun.expect(lambda p: (t := mine(p)) is not None and t["payload"], "data"))
    assert d["payload"] == b"hello\n", d
    kseq = d["seq"] + len(d["payload"])
    kts = d["tsval"]
    send(base, ACK)
    data = bytes((0x41 + i // 100) for i in range(400))  # 'A'*100 'B'*100 'C'*100 'D'*100
    send(base + 100, PSH | ACK, data[100:200])
    tun.expect(lambda p: (t := mine(p)) is not None and t["flags"] == ACK and b"\x05\x0a" in t["opts"], "SACK 1")
    send(base + 300, PSH | ACK, data[300:400])
    tun.expect(lambda p: (t := mine(p)) is not None and t["flags"] == ACK and b"\x05\x12" in t["opts"], "SACK 2")
    send(base, PSH | ACK, data[0:100])
    send(base + 200, PSH | ACK, data[200:300])
    f = mine(tun.expect(lambda p: (t := mine(p)) is not None and t["flags"] & FIN, "FIN"))
    th.join(3)
    assert got.get("data") == data, got
    kseq = f["seq"] + 1
    kts = f["tsval"]
    send(base + 400, FIN | ACK)
    tun.expect(lambda p: (t := mine(p)) is not None and t["flags"] == ACK and t["ack"] == base + 401, "last ACK")
    srv.close()


@scenario("tcp4_rst")
def s_tcp4_rst(tun):
    """peer writes to tun0 a SYN 10.7.0.2:40002 -> 10.7.0.1:9 (closed port; seq 2000000, MSS 1460) -> kernel RST|ACK"""
    tun.write(ip4(P4, K4, 6, tcp(P4, K4, 40002, 9, 2000000, 0, SYN, 64240, b"\x02\x04\x05\xb4"), ident=7))
    tun.expect(lambda p: (t := parse_tcp4(p)) is not None and t["flags"] & RST, "RST")


@scenario("udp4")
def s_udp4(tun):
    """sh -c 'echo hi | socat -u - UDP:10.7.0.2:9999' -> kernel UDP datagram out of tun0"""
    p = bg(["sh", "-c", "echo hi | socat -u - UDP:%s:9999" % P4])
    tun.expect(is_ip4_proto(17), "UDP")
    reap(p)


@scenario("ipopts4")
def s_ipopts4(tun):
    """ping -R -c 1 -W 1 10.7.0.2 (record-route option) -> kernel echo request with IPv4 options out of tun0"""
    p = bg(["ping", "-R", "-c", "1", "-W", "1", P4])
    tun.expect(lambda p: is_icmp4(8)(p) and p[0] & 15 > 5, "echo request with options")
    reap(p)


@scenario("frag4")
def s_frag4(tun):
    """ping -c 1 -W 1 -s 3000 -M dont 10.7.0.2 (tun0 mtu 1500) -> kernel fragments the 3028-byte datagram into 3 IPv4 fragments"""
    p = bg(["ping", "-c", "1", "-W", "1", "-s", "3000", "-M", "dont", P4])
    tun.expect(lambda p: is_ip4_proto(1)(p) and (struct.unpack("!H", p[6:8])[0] & 0x3FFF) and not p[6] & 0x20, "last fragment")
    reap(p)


@scenario("icmp4")
def s_icmp4(tun):
    """ping -c 1 -W 1 10.7.0.2 -> kernel sends echo request; then the peer writes to tun0 an echo request 10.7.0.2 -> 10.7.0.1 (id 0x1234, seq 1, 56 bytes payload 0x00..0x37) -> kernel echo reply"""
    p = bg(["ping", "-c", "1", "-W", "1", P4])
    tun.expect(is_icmp4(8), "echo request")
    reap(p)
    tun.write(ip4(P4, K4, 1, icmp4(8, 0, struct.pack("!HH", 0x1234, 1), bytes(range(56))), ident=0x4242))
    tun.expect(is_icmp4(0), "echo reply")


@scenario("unreach4")
def s_unreach4(tun):
    """peer writes to tun0 a UDP datagram 10.7.0.2:40001 -> 10.7.0.1:9 (closed port) payload 'hello?\\n' -> kernel ICMP port unreachable"""
    tun.write(ip4(P4, K4, 17, udp(P4, K4, 40001, 9, b"hello?\n"), ident=0x1111))
    tun.expect(is_icmp4(3), "port unreachable")


@scenario("paramprob4")
def s_paramprob4(tun):
    """peer writes to tun0 an ICMP echo request 10.7.0.2 -> 10.7.0.1 whose IPv4 header carries a malformed Record Route option (type 7, len 7, pointer 2 < 4, then EOL; IHL 7) -> kernel ip_options_compile fails -> ICMP Parameter Problem pointer 22"""
    opts = bytes([7, 7, 2, 0, 0, 0, 0, 0])
    tun.write(ip4(P4, K4, 1, icmp4(8, 0, struct.pack("!HH", 0x2222, 1), b"bad option"), ident=0x2222, opts=opts))
    tun.expect(is_icmp4(12), "parameter problem")


@scenario("router4")
def s_router4(tun):
    """(router: net.ipv4.ip_forward=1, rv0 10.7.3.1/24 mtu 1280) peer writes to tun0 an ICMP echo request 10.7.0.2 -> 10.7.3.2 with TTL 1 (like ping -t 1) -> kernel ICMP time exceeded; then a 1400-byte DF UDP datagram 10.7.0.2:40003 -> 10.7.3.2:9 -> kernel ICMP fragmentation needed (next-hop MTU 1280)"""
    tun.write(ip4(P4, FAR4, 1, icmp4(8, 0, struct.pack("!HH", 0x3333, 1), bytes(range(56))), ttl=1, ident=0x3333))
    tun.expect(is_icmp4(11), "time exceeded")
    tun.write(ip4(P4, FAR4, 17, udp(P4, FAR4, 40003, 9, bytes(1400 - 28)), ident=0x3334))
    tun.expect(is_icmp4(3), "frag needed")


@scenario("tcp6_client")
def s_tcp6_client(tun):
    """python3: s=socket.socket(AF_INET6); s.setblocking(False); s.connect_ex(('fd00:7::2', 80)) -> kernel SYN out of tun0"""
    s = socket.socket(socket.AF_INET6)
    s.setblocking(False)
    s.connect_ex((P6, 80))
    tun.expect(is_ip6_nh(6), "SYN")
    s.close()


@scenario("udp6")
def s_udp6(tun):
    """sh -c 'echo hi | socat -u - UDP6:[fd00:7::2]:9999' -> kernel UDP datagram out of tun0"""
    p = bg(["sh", "-c", "echo hi | socat -u - UDP6:[%s]:9999" % P6])
    tun.expect(is_ip6_nh(17), "UDP")
    reap(p)


@scenario("icmp6")
def s_icmp6(tun):
    """ping -6 -c 1 -W 1 fd00:7::2 -> kernel echo request; then the peer writes to tun0 an echo request fd00:7::2 -> fd00:7::1 (id 0x1234, seq 1, 56 bytes 0x00..0x37) -> kernel echo reply"""
    p = bg(["ping", "-6", "-c", "1", "-W", "1", P6])
    tun.expect(is_icmp6(128), "echo request")
    reap(p)
    tun.write(ip6(P6, K6, 58, icmp6(P6, K6, 128, 0, struct.pack("!HH", 0x1234, 1), bytes(range(56)))))
    tun.expect(is_icmp6(129), "echo reply")


@scenario("unreach6")
def s_unreach6(tun):
    """peer writes to tun0 a UDP datagram [fd00:7::2]:40001 -> [fd00:7::1]:9 (closed port) payload 'hello?\\n' -> kernel ICMPv6 destination unreachable code 4 (port unreachable)"""
    tun.write(ip6(P6, K6, 17, udp(P6, K6, 40001, 9, b"hello?\n", v6=True)))
    tun.expect(is_icmp6(1), "port unreachable")


@scenario("paramprob6")
def s_paramprob6(tun):
    """peer writes to tun0 a packet fd00:7::2 -> fd00:7::1 with a Destination Options header holding option type 0x9e (unrecognized; action bits 10 = discard and send Parameter Problem) len 4, then UDP 40001 -> 9 -> kernel ICMPv6 parameter problem code 2, pointer 42"""
    dst = bytes([17, 0, 0x9E, 4, 0xDE, 0xAD, 0xBE, 0xEF])
    tun.write(ip6(P6, K6, 60, dst + udp(P6, K6, 40001, 9, b"hello?\n", v6=True)))
    tun.expect(is_icmp6(4), "parameter problem")


@scenario("router6")
def s_router6(tun):
    """(router: net.ipv6.conf.all.forwarding=1, rv0 fd00:7:3::1/64 mtu 1280) peer writes to tun0 an ICMPv6 echo request fd00:7::2 -> fd00:7:3::2 with hop limit 1 -> kernel ICMPv6 time exceeded; then a 1400-byte UDP datagram [fd00:7::2]:40003 -> [fd00:7:3::2]:9 -> kernel ICMPv6 packet too big (MTU 1280)"""
    tun.write(ip6(P6, FAR6, 58, icmp6(P6, FAR6, 128, 0, struct.pack("!HH", 0x3333, 1), bytes(range(56))), hlim=1))
    tun.expect(is_icmp6(3), "time exceeded")
    tun.write(ip6(P6, FAR6, 17, udp(P6, FAR6, 40003, 9, bytes(1400 - 48), v6=True)))
    tun.expect(is_icmp6(2), "packet too big")


@scenario("mld6")
def s_mld6(tun):
    """python3: socket(AF_INET6, SOCK_DGRAM).setsockopt(IPPROTO_IPV6, IPV6_JOIN_GROUP, ff02::1:2345 + ifindex(tun0)) -> kernel MLDv2 report (hop-by-hop header with router alert) from fe80::1 to ff02::16"""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    mreq = a6("ff02::1:2345") + struct.pack("@I", socket.if_nametoindex("tun0"))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    tun.expect(lambda p: is_ip6_nh(0, "fe80::1")(p) and a6("ff02::1:2345") in p, "MLD report")
    s.close()


@scenario("frag6")
def s_frag6(tun):
    """ping -6 -c 1 -W 1 -s 3000 -M want fd00:7::2 (tun0 mtu 1500) -> kernel fragments the echo request into 3 IPv6 fragments"""
    p = bg(["ping", "-6", "-c", "1", "-W", "1", "-s", "3000", "-M", "want", P6])
    tun.expect(lambda p: is_ip6_nh(44)(p) and not p[43] & 1 and struct.unpack("!H", p[42:44])[0] >> 3, "last fragment")
    reap(p)


@scenario("seg6")
def s_seg6(tun):
    """ip -6 route add fd00:7:9::1/128 encap seg6 mode inline segs fd00:7::2 dev tun0; ping -6 -c 1 -W 1 fd00:7:9::1 -> kernel echo request with a Segment Routing Header (routing type 4) inserted, sent to fd00:7::2"""
    sh("ip -6 route add fd00:7:9::1/128 encap seg6 mode inline segs %s dev tun0" % P6)
    p = bg(["ping", "-6", "-c", "1", "-W", "1", "fd00:7:9::1"])
    tun.expect(is_ip6_nh(43), "routing header")
    reap(p)


@scenario("dstopts6")
def s_dstopts6(tun):
    """python3: s=socket(AF_INET6, SOCK_DGRAM); s.setsockopt(IPPROTO_IPV6, IPV6_DSTOPTS, bytes([0,0, 0x1e,2,0xab,0xcd, 1,0])) (experimental option 0x1e len 2 + PadN len 0); s.sendto(b'dstopts\\n', ('fd00:7::2', 9999)) -> kernel UDP with destination options header"""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, bytes([0, 0, 0x1E, 2, 0xAB, 0xCD, 1, 0]))
    s.sendto(b"dstopts\n", (P6, 9999))
    tun.expect(is_ip6_nh(60), "dstopts")
    s.close()


@scenario("eth", iface="veth0", tun=False)
def s_eth(_):
    """[inside gc-eth-a: tcpdump -Z root -n --immediate-mode -U -i veth0 -w PCAP] ping -c 1 -W 2 10.7.1.2 (ARP request/reply, echo); python3: socket.create_connection(('10.7.1.2', 80), timeout=2) (nothing listens: kernel SYN, peer kernel RST)"""
    p = bg(["ping", "-c", "1", "-W", "2", "10.7.1.2"])
    reap(p, 5)
    try:
        socket.create_connection(("10.7.1.2", 80), timeout=2).close()
    except OSError:
        pass


@scenario("vlan", iface="vl0", tun=False)
def s_vlan(_):
    """[inside gc-vlan: tcpdump -Z root -n --immediate-mode -U -i vl0 -w PCAP] sh -c 'echo hi | socat -u - UDP:10.7.2.2:9999' (egress tc BPF pushes the 802.1Q tag)"""
    p = bg(["sh", "-c", "echo hi | socat -u - UDP:10.7.2.2:9999"])
    reap(p, 5)


def inner(name, pcap):
    fn, iface, use_tun = SCEN[name]
    tun = tun_setup() if use_tun else None
    if use_tun:
        time.sleep(0.2)
    cap = Capture(iface, pcap)
    try:
        fn(tun)
    finally:
        cap.stop()
        if tun:
            tun.close()


# ---------------------------------------------------------------- outer side

VLAN_BPF_C = r"""
/* tc egress classifier: push an 802.1Q tag (PCP 3, VID 100) on IPv4 frames.
 * Used because this kernel has no CONFIG_VLAN_8021Q (no vlan links) and no
 * act_vlan; bpf_skb_vlan_push makes the kernel insert the tag itself. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#define SEC(n) __attribute__((section(n), used))
static long (*bpf_skb_vlan_push)(struct __sk_buff *skb, __u16 proto, __u16 tci) =
	(void *)BPF_FUNC_skb_vlan_push;
SEC("tc") int vlan_push(struct __sk_buff *skb)
{
	if (skb->protocol != __builtin_bswap16(0x0800))
		return TC_ACT_OK;
	bpf_skb_vlan_push(skb, __builtin_bswap16(0x8100), (3 << 13) | 100);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
"""

ROUTER4_SETUP = [
    "ip -n {ns} link add rv0 type veth peer name rv1",
    "ip -n {ns} link set rv0 mtu 1280 up",
    "ip -n {ns} link set rv1 up",
    "ip -n {ns} addr add 10.7.3.1/24 dev rv0",
    "ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=1",
]
ROUTER6_SETUP = [
    "ip -n {ns} link add rv0 type veth peer name rv1",
    "ip -n {ns} link set rv0 mtu 1280 up",
    "ip -n {ns} link set rv1 up",
    "ip -n {ns} -6 addr add fd00:7:3::1/64 dev rv0 nodad",
    "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.forwarding=1",
]
ETH_SETUP = [
    "ip netns add gc-eth-b",
    "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
    "ip netns exec gc-eth-b sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
    "ip -n {ns} link add veth0 address 02:00:00:07:01:01 type veth peer name veth1 address 02:00:00:07:01:02 netns gc-eth-b",
    "ip netns exec {ns} ethtool -K veth0 tx off",
    "ip netns exec gc-eth-b ethtool -K veth1 tx off",
    "ip -n {ns} addr add 10.7.1.1/24 dev veth0",
    "ip -n gc-eth-b addr add 10.7.1.2/24 dev veth1",
    "ip -n {ns} link set lo up",
    "ip -n gc-eth-b link set lo up",
    "ip -n {ns} link set veth0 up",
    "ip -n gc-eth-b link set veth1 up",
]
VLAN_SETUP = [
    "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
    "ip -n {ns} link add vl0 address 02:00:00:07:02:01 type veth peer name vl1 address 02:00:00:07:02:02",
    "ip netns exec {ns} ethtool -K vl0 tx off",
    "ip -n {ns} addr add 10.7.2.1/24 dev vl0",
    "ip -n {ns} link set lo up",
    "ip -n {ns} link set vl0 up",
    "ip -n {ns} link set vl1 up",
    "ip -n {ns} neigh replace 10.7.2.2 lladdr 02:00:00:07:02:02 dev vl0 nud permanent",
    "clang -O2 -target bpf -I/usr/include/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu) -c {work}/vlan_push.c -o {work}/vlan_push.o",
    "ip netns exec {ns} tc qdisc add dev vl0 clsact",
    "ip netns exec {ns} tc filter add dev vl0 egress bpf direct-action obj {work}/vlan_push.o sec tc",
]

# scenario -> (namespace, setup commands, namespaces besides ns to delete)
SETUPS = {
    "router4": ("gc-router4", ROUTER4_SETUP, []),
    "router6": ("gc-router6", ROUTER6_SETUP, []),
    "eth": ("gc-eth-a", ETH_SETUP, ["gc-eth-b"]),
    "vlan": ("gc-vlan", VLAN_SETUP, []),
}

# golden name -> (scenario, display filter (must match; first match taken), description)
GOLDEN = [
    ("eth_ipv4_tcp_syn", "eth", "eth.type==0x0800 && tcp.flags==0x002 && ip.src==10.7.1.1",
     "Ethernet II frame with an IPv4 TCP SYN 10.7.1.1 -> 10.7.1.2:80 sent by the kernel over a veth pair"),
    ("arp_request", "eth", "arp.opcode==1 && arp.src.proto_ipv4==10.7.1.1",
     "ARP request (who-has 10.7.1.2 tell 10.7.1.1), broadcast, sent by the kernel over a veth pair"),
    ("arp_reply", "eth", "arp.opcode==2 && arp.src.proto_ipv4==10.7.1.2",
     "ARP reply (10.7.1.2 is-at 02:00:00:07:01:02), unicast, sent by the peer namespace's kernel over a veth pair"),
    ("eth_vlan_ipv4", "vlan", "vlan.id==100 && udp",
     "Ethernet frame with an 802.1Q tag (PCP 3, VID 100) carrying IPv4/UDP 10.7.2.1 -> 10.7.2.2:9999 'hi\\n'; tag inserted by the kernel (tc egress bpf_skb_vlan_push, since this kernel lacks 8021q)"),
    ("ipv4_tcp_syn", "tcp4_client",
     "tcp.flags==0x002 && tcp.options.mss_val==1460 && tcp.options.sack_perm && tcp.options.timestamp.tsval && tcp.options.wscale.shift",
     "IPv4 TCP SYN from the kernel (connect to 10.7.0.2:80) with MSS, SACK-permitted, timestamps, NOP, window scale options"),
    ("ipv4_tcp_synack", "tcp4_server", "tcp.flags==0x012 && ip.src==10.7.0.1",
     "IPv4 TCP SYN-ACK from a listening kernel socket (10.7.0.1:8080) answering an injected SYN with MSS/SACK_PERM/TS/WS"),
    ("ipv4_tcp_data", "tcp4_server", "tcp.flags==0x018 && ip.src==10.7.0.1 && tcp.len==6",
     "IPv4 TCP data segment (PSH|ACK, timestamps, payload 'hello\\n') from an established kernel connection"),
    ("ipv4_tcp_sack", "tcp4_server", "ip.src==10.7.0.1 && tcp.options.sack.count==2",
     "IPv4 TCP duplicate ACK from the kernel carrying 2 SACK blocks (peer sent bytes 100-199 and 300-399 before 0-99) plus timestamps"),
    ("ipv4_tcp_fin", "tcp4_server", "ip.src==10.7.0.1 && tcp.flags.fin==1",
     "IPv4 TCP FIN|ACK from the kernel after the application closed an established connection"),
    ("ipv4_tcp_rst", "tcp4_rst", "ip.src==10.7.0.1 && tcp.flags==0x014",
     "IPv4 TCP RST|ACK from the kernel answering a SYN to a closed port (10.7.0.1:9)"),
    ("ipv4_tcp_ecn_syn", "tcp4_ecn", "ip.src==10.7.0.1 && tcp.flags==0x0c2",
     "IPv4 TCP ECN-setup SYN (SYN|ECE|CWR) from the kernel with net.ipv4.tcp_ecn=1"),
    ("ipv4_udp", "udp4", "ip.src==10.7.0.1 && udp.dstport==9999",
     "IPv4 UDP datagram 'hi\\n' from the kernel (socat) to 10.7.0.2:9999"),
    ("ipv4_options", "ipopts4", "ip.src==10.7.0.1 && ip.hdr_len>20 && icmp.type==8",
     "IPv4 ICMP echo request with a Record Route IP option (ping -R), header built by the kernel"),
    ("ipv4_fragment_first", "frag4", "ip.src==10.7.0.1 && ip.flags.mf==1 && ip.frag_offset==0",
     "First IPv4 fragment (MF set, offset 0) of a 3028-byte ICMP echo request fragmented by the kernel (ping -s 3000 -M dont, MTU 1500)"),
    ("ipv4_fragment_last", "frag4", "ip.src==10.7.0.1 && ip.flags.mf==0 && ip.frag_offset>0",
     "Last IPv4 fragment (MF clear, offset 2960) of a 3028-byte ICMP echo request fragmented by the kernel"),
    ("icmpv4_echo_request", "icmp4", "ip.src==10.7.0.1 && icmp.type==8",
     "ICMPv4 echo request sent by the kernel for ping 10.7.0.2"),
    ("icmpv4_echo_reply", "icmp4", "ip.src==10.7.0.1 && icmp.type==0",
     "ICMPv4 echo reply generated by the kernel for an injected echo request (id 0x1234 seq 1)"),
    ("icmpv4_dest_unreach", "unreach4", "ip.src==10.7.0.1 && icmp.type==3 && icmp.code==3",
     "ICMPv4 destination unreachable / port unreachable from the kernel, quoting the original IPv4+UDP datagram"),
    ("icmpv4_frag_needed", "router4", "icmp.type==3 && icmp.code==4 && icmp.mtu==1280",
     "ICMPv4 destination unreachable / fragmentation needed (next-hop MTU 1280) from a forwarding kernel, quoting the DF datagram"),
    ("icmpv4_time_exceeded", "router4", "icmp.type==11 && icmp.code==0",
     "ICMPv4 time exceeded (TTL exceeded in transit) from a forwarding kernel for an echo request sent with TTL 1"),
    ("icmpv4_param_problem", "paramprob4", "icmp.type==12 && icmp.code==0",
     "ICMPv4 parameter problem (pointer 22) from the kernel for a packet whose Record Route option has pointer 2"),
    ("ipv6_tcp_syn", "tcp6_client",
     "ipv6.src==fd00:7::1 && tcp.flags==0x002 && tcp.options.mss_val && tcp.options.sack_perm && tcp.options.timestamp.tsval && tcp.options.wscale.shift",
     "IPv6 TCP SYN from the kernel (connect to [fd00:7::2]:80) with MSS, SACK-permitted, timestamps, NOP, window scale options"),
    ("ipv6_udp", "udp6", "ipv6.src==fd00:7::1 && udp.dstport==9999",
     "IPv6 UDP datagram 'hi\\n' from the kernel (socat) to [fd00:7::2]:9999"),
    ("icmpv6_echo_request", "icmp6", "ipv6.src==fd00:7::1 && icmpv6.type==128",
     "ICMPv6 echo request sent by the kernel for ping -6 fd00:7::2"),
    ("icmpv6_echo_reply", "icmp6", "ipv6.src==fd00:7::1 && icmpv6.type==129",
     "ICMPv6 echo reply generated by the kernel for an injected echo request (id 0x1234 seq 1)"),
    ("icmpv6_dest_unreach", "unreach6", "ipv6.src==fd00:7::1 && icmpv6.type==1 && icmpv6.code==4",
     "ICMPv6 destination unreachable code 4 (port unreachable) from the kernel, quoting the original IPv6+UDP datagram"),
    ("icmpv6_packet_too_big", "router6", "icmpv6.type==2 && icmpv6.mtu==1280",
     "ICMPv6 packet too big (MTU 1280) from a forwarding kernel, quoting the 1400-byte datagram (truncated to fit 1280)"),
    ("icmpv6_time_exceeded", "router6", "icmpv6.type==3 && icmpv6.code==0",
     "ICMPv6 time exceeded (hop limit exceeded in transit) from a forwarding kernel for an echo request sent with hop limit 1"),
    ("icmpv6_param_problem", "paramprob6", "icmpv6.type==4 && icmpv6.code==2",
     "ICMPv6 parameter problem code 2 (unrecognized IPv6 option, pointer 42) from the kernel for a destination option of type 0x9e"),
    ("ipv6_hopbyhop", "mld6", "ipv6.hopopts && icmpv6.type==143",
     "IPv6 MLDv2 report from the kernel (joining ff02::1:2345) with a hop-by-hop options header carrying router alert + PadN"),
    ("ipv6_fragment_first", "frag6", "ipv6.src==fd00:7::1 && ipv6.fraghdr.offset==0 && ipv6.fraghdr.more==1",
     "First IPv6 fragment (offset 0, M set) of a 3008-byte ICMPv6 echo request fragmented by the kernel (ping -6 -s 3000, MTU 1500)"),
    ("ipv6_fragment_last", "frag6", "ipv6.src==fd00:7::1 && ipv6.fraghdr.offset>0 && ipv6.fraghdr.more==0",
     "Last IPv6 fragment (M clear) of a 3008-byte ICMPv6 echo request fragmented by the kernel"),
    ("ipv6_routing", "seg6", "ipv6.routing.type==4",
     "IPv6 ICMPv6 echo request with a Segment Routing Header (routing type 4) inserted by the kernel's seg6 inline encapsulation"),
    ("ipv6_dstopts", "dstopts6", "ipv6.dstopts && udp",
     "IPv6 UDP datagram with a destination options header (experimental option 0x1e + PadN) set via setsockopt IPV6_DSTOPTS"),
]

TSHARK_OPTS = ["-n",
               "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
               "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
               "-o", "tcp.relative_sequence_numbers:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE",
               "-o", "tcp.calculate_timestamps:FALSE", "-o", "udp.calculate_timestamps:FALSE"]

# Derived / meta values that are not header fields (tshark adds them) are left
# out of the "# fields:" line.
SKIP_EXACT = {"eth.addr", "eth.addr.oui", "eth.lg", "eth.ig", "ip.addr", "ip.host", "ipv6.addr",
              "ipv6.host", "tcp.port", "udp.port", "tcp.stream", "udp.stream", "tcp.nxtseq",
              "tcp.flags.str", "tcp.time_delta", "tcp.time_relative", "udp.time_delta",
              "udp.time_relative", "tcp.completeness", "icmp.resp_to", "icmp.resptime",
              "icmpv6.resp_to", "icmpv6.resptime", "icmp.data_time", "icmp.data_time_relative",
              # tshark computes these from the handshake it saw, not from this header:
              "tcp.window_size", "tcp.window_size_scalefactor"}
SKIP_PREFIX = ("_ws.", "frame.", "tcp.analysis", "tcp.connection.", "ip.fragment", "ip.reassembled",
               "ipv6.fragment", "ipv6.reassembled", "tcp.segment", "tcp.reassembled")
SKIP_SUFFIX = ("_resolved", "_host")
# payload-like fields longer than this many bytes are left out (their bytes are in the hex)
PAYLOAD_FIELDS = {"data.data", "udp.payload", "tcp.payload"}
PAYLOAD_MAX = 64
# protocols whose subtree, when found inside another protocol (the packet quoted
# by an ICMP error), gets the "inner." prefix; "data" inherits its parent's prefix
PROTOS = {"eth", "vlan", "arp", "ip", "ipv6", "tcp", "udp", "icmp", "icmpv6"}


def read_pcap(path):
    with open(path, "rb") as f:
        b = f.read()
    magic = b[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise RuntimeError("not a pcap file: " + path)
    linktype = struct.unpack(e + "I", b[20:24])[0]
    pkts, off = [], 24
    while off + 16 <= len(b):
        _, _, incl, orig = struct.unpack(e + "IIII", b[off:off + 16])
        data = b[off + 16:off + 16 + incl]
        if incl != orig:
            raise RuntimeError("truncated capture in " + path)
        pkts.append(data)
        off += 16 + incl
    return linktype, pkts


def flatten(layers):
    """tshark -T json --no-duplicate-keys layers -> ordered {field: [values]}.
    Protocols nested inside another protocol (ICMP error quotes) get 'inner.'."""
    out = {}

    def add(k, v):
        out.setdefault(k, []).append(v)

    def walk(obj, prefix, depth):
        for k, v in obj.items():
            items = v if isinstance(v, list) else [v]
            for it in items:
                if isinstance(it, dict):
                    if k in PROTOS:
                        inner = depth > 0 and not prefix.endswith("inner.")
                        walk(it, prefix + ("inner." if inner else ""), depth + 1)
                    else:
                        walk(it, prefix, depth)
                elif isinstance(it, str):
                    if "." not in k:
                        continue  # text label, not a field
                    if k in SKIP_EXACT or k.startswith(SKIP_PREFIX) or k.endswith(SKIP_SUFFIX) or it == "":
                        continue
                    if k in PAYLOAD_FIELDS and len(it) > PAYLOAD_MAX * 3:
                        continue
                    add(prefix + k, it)

    for proto, body in layers.items():
        if proto == "frame":
            continue
        for b in (body if isinstance(body, list) else [body]):
            if isinstance(b, dict):
                walk(b, "", 1)
    return out


def fmt_fields(fields):
    parts = []
    for k, vs in fields.items():
        v = ",".join(vs)
        if any(c in v for c in ' "\t'):
            v = '"' + v.replace('"', "'") + '"'
        parts.append("%s=%s" % (k, v))
    return " ".join(parts)


def tshark_json(pcap, frame_no):
    r = subprocess.run(["tshark", "-r", pcap, *TSHARK_OPTS, "-Y", "frame.number==%d" % frame_no,
                        "-T", "json", "--no-duplicate-keys"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)[0]["_source"]["layers"]


def add_raw_seq(fields, pcap, frame_no):
    """tcp.seq_raw / tcp.ack_raw exist only with relative sequence numbers on
    (tshark's default), so ask tshark for them in a second, default-prefs pass
    and put them next to tcp.seq / tcp.ack (which are absolute here)."""
    if "tcp.seq" not in fields:
        return fields
    r = subprocess.run(["tshark", "-r", pcap, "-n", "-Y", "frame.number==%d" % frame_no, "-T", "fields",
                        "-E", "separator=/t", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw"],
                       capture_output=True, text=True, check=True)
    seq_raw, ack_raw = r.stdout.rstrip("\n").split("\t")
    assert [seq_raw] == fields["tcp.seq"] and [ack_raw] == fields["tcp.ack"], (seq_raw, ack_raw, fields)
    out = {}
    for k, v in fields.items():
        out[k] = v
        if k == "tcp.seq":
            out["tcp.seq_raw"] = [seq_raw]
        elif k == "tcp.ack":
            out["tcp.ack_raw"] = [ack_raw]
    return out


def select_frame(pcap, filt):
    r = subprocess.run(["tshark", "-r", pcap, *TSHARK_OPTS, "-Y", filt, "-T", "fields", "-e", "frame.number"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("tshark failed for %r: %s" % (filt, r.stderr))
    nums = [int(x) for x in r.stdout.split()]
    return nums[0] if nums else None


class Runner:
    def __init__(self, outdir, work, keep):
        self.outdir, self.work, self.keep = outdir, work, keep
        self.ns = []
        self.recipes = {}

    def cleanup(self):
        for ns in reversed(self.ns):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        self.ns = []

    def addns(self, ns):
        if ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
            subprocess.run(["ip", "netns", "del", ns])  # left over from an interrupted run of this script
        sh("ip netns add " + ns)
        self.ns.append(ns)

    def run_scenario(self, name):
        fn, iface, use_tun = SCEN[name]
        ns, setup, extra = SETUPS.get(name, ("gc-" + name.replace("_", "-"), [], []))
        pcap = os.path.join(self.work, name + ".pcap")
        for n in extra:
            if n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
                subprocess.run(["ip", "netns", "del", n])
        self.addns(ns)
        self.ns.extend(extra)  # created by setup commands; deleted with the rest
        cmds = [c.format(ns=ns, work="$WORK") for c in setup]
        try:
            for c in setup:
                sh(c.format(ns=ns, work=self.work))
            inner_cmd = ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "inner", name, pcap]
            p = subprocess.Popen(inner_cmd)
            try:
                rc = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                rc = -9
            if rc != 0:
                raise RuntimeError("scenario %s failed (rc %d)" % (name, rc))
        finally:
            self.cleanup()
        doc = " ".join((fn.__doc__ or "").split())
        recipe = ["ip netns add " + ns] + cmds + [
            "ip netns exec %s python3 %s inner %s $WORK/%s.pcap %s %s" % (
                ns, SELF_REL, name, name, TUN_DOC.replace("PCAP", "$WORK/%s.pcap" % name) if use_tun else "", doc),
            "ip netns del " + " ".join([ns] + extra)]
        self.recipes[name] = (pcap, " ; ".join(r.replace("  ", " ") for r in recipe))

    def write_golden(self, gname, scen, filt, desc):
        pcap, recipe = self.recipes[scen]
        n = select_frame(pcap, filt)
        if n is None:
            raise RuntimeError("%s: no frame matches %r in %s" % (gname, filt, pcap))
        linktype, pkts = read_pcap(pcap)
        link = {1: "ethernet", 101: "raw", 12: "raw", 14: "raw"}.get(linktype)
        if link is None:
            raise RuntimeError("unexpected linktype %d" % linktype)
        data = pkts[n - 1]
        fields = decode_alone(data, link, self.work)
        # status 1 = good. A first fragment's ICMP checksum covers the whole
        # datagram, so tshark (with reassembly off) reports 2 = unverified.
        ok = {"1", "2"} if gname.endswith("_fragment_first") else {"1"}
        # A quoted (possibly truncated) packet inside an ICMP error may also be unverifiable.
        bad = [k for k, vs in fields.items() if k.endswith("checksum.status")
               and any(v not in (ok | ({"2"} if k.startswith("inner.") else set())) for v in vs)]
        if bad:
            raise RuntimeError("%s: checksum not good: %s" % (gname, {k: fields[k] for k in bad}))
        if link == "raw" and data[0] >> 4 not in (4, 6):
            raise RuntimeError("%s: not an IP packet" % gname)
        madeby = ("(as root) internal/tools/goldencap/capture.sh %s(goldencap.py, scenario %s; WORK=its temp dir): %s ; "
                  "frame = first match of: tshark -r $WORK/%s.pcap -Y '%s'" % (gname + " ", scen, recipe, scen, filt))
        hx = data.hex()
        lines = ["# " + desc,
                 "# link: " + link,
                 "# made by: " + madeby,
                 "# fields: " + fmt_fields(fields)]
        lines += [hx[i:i + 64] for i in range(0, len(hx), 64)]
        with open(os.path.join(self.outdir, gname + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("wrote %s.txt (%d bytes, frame %d of %s.pcap)" % (gname, len(data), n, scen))


def decode_alone(data, link, tmpdir):
    """tshark's decode of these bytes alone: a one-packet pcap with time 0, so
    nothing depends on the rest of the capture or on the capture time."""
    pcap = os.path.join(tmpdir, "one.pcap")
    with open(pcap, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1 if link == "ethernet" else 101))
        f.write(struct.pack("<IIII", 0, 0, len(data), len(data)) + data)
    return add_raw_seq(flatten(tshark_json(pcap, 1)), pcap, 1)


def parse_fields(line):
    out = {}
    for tok in shlex.split(line):
        k, _, v = tok.partition("=")
        out[k] = v
    return out


def verify(outdir):
    """Re-check every golden file on its own: format, hex, and that tshark,
    fed only these bytes, decodes the same "# fields:" values."""
    problems = []
    names = sorted(f for f in os.listdir(outdir) if f.endswith(".txt"))
    with tempfile.TemporaryDirectory(prefix="goldencap-verify.") as tmp:
        for fn in names:
            path = os.path.join(outdir, fn)
            lines = open(path).read().split("\n")
            try:
                assert lines[0].startswith("# ") and len(lines[0]) > 2, "line 1: description"
                assert lines[1] in ("# link: raw", "# link: ethernet"), "line 2: link"
                assert lines[2].startswith("# made by: "), "line 3: made by"
                assert lines[3].startswith("# fields: "), "line 4: fields"
                hexl = lines[4:]
                assert hexl[-1] == "" and all(hexl[:-1]), "hex lines, one newline at the end"
                hexl = hexl[:-1]
                assert all(len(h) == 64 for h in hexl[:-1]) and 0 < len(hexl[-1]) <= 64, "64 hex chars a line"
                hx = "".join(hexl)
                assert all(c in "0123456789abcdef" for c in hx) and len(hx) % 2 == 0, "lowercase hex"
                data = bytes.fromhex(hx)
                got = {k: ",".join(v) for k, v in decode_alone(data, lines[1][len("# link: "):], tmp).items()}
                want = parse_fields(lines[3][len("# fields: "):])
                diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
                assert not diff, "fields differ: " + "; ".join(
                    "%s: file %r, tshark %r" % (k, want.get(k), got.get(k)) for k in diff)
            except (AssertionError, IndexError, ValueError) as e:
                problems.append("%s: %s" % (fn, e))
    for p in problems:
        print("VERIFY FAILED:", p, file=sys.stderr)
    print("verified %d files, %d problems" % (len(names), len(problems)))
    return 1 if problems else 0


def outer(args):
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="goldencap.")
    with open(os.path.join(work, "vlan_push.c"), "w") as f:
        f.write(VLAN_BPF_C)
    r = Runner(args.out, work, args.keep)
    wanted = [g for g in GOLDEN if not args.only or g[0] in args.only]
    scens = []
    for g in wanted:
        if g[1] not in scens:
            scens.append(g[1])
    failed = []
    try:
        for s in scens:
            try:
                r.run_scenario(s)
            except Exception as e:  # keep going: report at the end
                failed.append("scenario %s: %s" % (s, e))
        for g in wanted:
            if g[1] in r.recipes:
                try:
                    r.write_golden(*g)
                except Exception as e:
                    failed.append("golden %s: %s" % (g[0], e))
    finally:
        r.cleanup()
        if args.keep:
            print("pcaps kept in", work)
        else:
            for fn in os.listdir(work):
                os.unlink(os.path.join(work, fn))
            os.rmdir(work)
    for f in failed:
        print("FAILED:", f, file=sys.stderr)
    return 1 if failed else 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "inner":
        inner(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) >= 2 and sys.argv[1] == "verify":
        return verify(sys.argv[2] if len(sys.argv) > 2 else DEFAULT_OUT)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="directory for the golden .txt files")
    ap.add_argument("--keep", action="store_true", help="keep the pcaps (prints where)")
    ap.add_argument("only", nargs="*", help="golden names to (re)make; default all")
    args = ap.parse_args()
    rc = outer(args)
    return rc or verify(args.out)


if __name__ == "__main__":
    sys.exit(main())
