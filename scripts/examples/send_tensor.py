#!/usr/bin/env python3
"""An independent sender for the netml fragment protocol, version 1.

Written from docs/protocol.md alone (no code of crates/wire or pktgen was consulted), with
the Python standard library only, so that it checks the specification is enough to build a
sender. Section numbers (§) below refer to docs/protocol.md.

It builds N tensors (a seeded random tensor of a given shape and dtype, or the raw bytes of
a file), cuts each into fragments (§4, §5), spreads the images over a few flows (source
ports, §7), and either writes Ethernet/IPv4 (or IPv6, optionally VLAN-tagged) frames into a
classic pcap file (--pcap) or sends the fragments over UDP sockets (--udp HOST:PORT). It
can add deliberate faults that a receiver must count:

  --dup K       K fragments are sent a second time right after the original, while their
                image is still incomplete: the receiver drops them as `duplicate` (§8.2).
  --late-dup K  K fragments are sent again right after their image completed: `late`.
  --corrupt K   K extra copies of fragments with one bit of the fragment header flipped (the
                UDP checksum is computed after the flip, so only the fragment header
                checksum can catch it): the receiver drops them as `checksum` (§8.1).
  --restart K   then the sender "restarts": its first K images are sent again with the same
                identity, a new tensor and a new descriptor timestamp, each in --order. By
                §7 each is a new incarnation of its id: fragments sent before its fragment 0
                are `late` (they carry no timestamp), fragment 0 and the rest are accepted,
                and it completes iff fragment 0 came first (otherwise it is evicted).
  --replay K    then the next K images are sent again byte for byte (the same timestamp):
                all their fragments are `late` (§7, §8.2).

It prints a JSON summary of what it wrote to stdout: frames, images, duplicates,
corrupted frames, per-image identity and CRC-32, and the counters a receiver that follows
the specification must report for this traffic ("expect").

--recv-results HOST:PORT waits for result messages (§9) on PORT .. PORT+flows-1 and prints
them as JSON (model, image, status name, arrived, crc32, sender_timestamp, stages, top_k);
--self-test checks this implementation against the worked example of §10.
"""

import argparse
import json
import random
import selectors
import socket
import struct
import sys
import time
import zlib

MAGIC = 0x4E4D  # "NM", §4.1
RESULT_MAGIC = 0x4E52  # "NR", §9
VERSION = 1
FLAG_DESCRIPTOR = 0x1  # §4.2
HEADER_LEN = 22
DESCRIPTOR_LEN = 64
RESULT_LEN = 72

DTYPES = {"u8": (1, 1), "f16": (2, 2), "f32": (3, 4)}  # name: (code, element size), §4.3
LAYOUTS = {"plain": 0, "nchw": 1, "nhwc": 2}
# §9 status codes
STATUS = {
    0: "ok",
    1: "overloaded",
    2: "unknown_model",
    3: "failed",
    4: "shape_mismatch",
    5: "incomplete",
}

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8


# ---------------------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------------------


def ones_complement_sum(data: bytes) -> int:
    """RFC 1071 sum of big-endian 16-bit words with end-around carry (odd length padded)."""
    if len(data) % 2:
        data += b"\0"
    s = 0
    for (w,) in struct.iter_unpack("!H", data):
        s += w
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def inet_checksum(data: bytes) -> int:
    """The Internet checksum: one's complement of the one's-complement sum."""
    return ~ones_complement_sum(data) & 0xFFFF


def crc32(data: bytes) -> int:
    """§4.5: the zlib CRC-32."""
    return zlib.crc32(data) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------
# Fragment protocol (§4, §5)
# ---------------------------------------------------------------------------------------


def descriptor(dtype: int, layout: int, shape, timestamp_ns: int, tensor_crc: int) -> bytes:
    """§4.3: the 64-byte tensor descriptor."""
    if not 1 <= len(shape) <= 6:
        raise ValueError("rank must be 1..=6")
    dims = list(shape) + [0] * (6 - len(shape))
    d = struct.pack("!BBBB6IQI", dtype, layout, len(shape), 0, *dims, timestamp_ns, tensor_crc)
    d += bytes(DESCRIPTOR_LEN - len(d))
    assert len(d) == DESCRIPTOR_LEN
    return d


def fragment_payloads(tensor: bytes, frag_size: int, model: int, image: int, desc: bytes):
    """§5 and §11: the UDP payload of every fragment of one image, in index order."""
    total = len(tensor)
    if total < 1 or not 1 <= frag_size <= 0xFFFF:
        raise ValueError("need total_bytes >= 1 and 1 <= frag_size <= 65535")
    count = -(-total // frag_size)
    if count > 0xFFFF:
        raise ValueError(f"{count} fragments: more than 65535 (raise --frag-size)")
    out = []
    for i in range(count):
        data = tensor[i * frag_size : min((i + 1) * frag_size, total)]
        flags = FLAG_DESCRIPTOR if i == 0 else 0
        hdr = bytearray(
            struct.pack(
                "!HBBIHHHIHH",
                MAGIC,
                (VERSION << 4) | flags,
                model,
                image,
                i,
                count,
                frag_size,
                total,
                0,  # checksum, filled in below
                0,  # reserved
            )
        )
        assert len(hdr) == HEADER_LEN
        if i == 0:
            hdr += desc
        # §4.4: over header (+ descriptor) with the field zeroed; 0x0000 is sent as is.
        struct.pack_into("!H", hdr, 18, inet_checksum(bytes(hdr)))
        out.append(bytes(hdr) + data)
    return out


def header_verifies(payload: bytes) -> bool:
    """§4.4, receiver side: the sum over the covered region (with checksum) is 0xFFFF."""
    covered = HEADER_LEN + (DESCRIPTOR_LEN if payload[2] & FLAG_DESCRIPTOR else 0)
    return ones_complement_sum(payload[:covered]) == 0xFFFF


def flip_header_bit(payload: bytes, k: int) -> bytes:
    """A copy of `payload` with one bit of the fragment header flipped.

    The flipped bit is in bytes 3..21 (model, image, index, count, frag_size, total_bytes,
    checksum, reserved): bytes 0..2 (magic, version, flags) are checked before the checksum
    and would make the frame `unrecognized` instead (§8.1). Every bit flip in the covered
    region changes the one's-complement sum, so the header checksum no longer verifies.
    """
    p = bytearray(payload)
    byte = 3 + (k * 7) % (HEADER_LEN - 3)
    p[byte] ^= 1 << (k % 8)
    assert not header_verifies(bytes(p)), "a single-bit flip must break the checksum"
    return bytes(p)


# ---------------------------------------------------------------------------------------
# Ethernet / IP / UDP (§2)
# ---------------------------------------------------------------------------------------


def mac_bytes(s: str) -> bytes:
    b = bytes(int(x, 16) for x in s.split(":"))
    if len(b) != 6:
        raise ValueError(f"bad MAC address {s!r}")
    return b


def udp_frame(src_mac, dst_mac, vlans, src, dst, payload: bytes) -> bytes:
    """An Ethernet II frame (optionally with up to two VLAN tags, outermost first, each
    (tpid, tci)) carrying one UDP datagram over IPv4 (IHL 5, DF, TTL 64, identification 0)
    or IPv6, with the IPv4 header checksum and the UDP checksum filled in."""
    (src_ip, src_port), (dst_ip, dst_port) = src, dst
    v6 = ":" in src_ip
    if v6 != (":" in dst_ip):
        raise ValueError("source and destination must both be IPv4 or both IPv6")
    udp_len = 8 + len(payload)
    if udp_len > 0xFFFF:
        raise ValueError("UDP datagram too long")
    if v6:
        sa, da = socket.inet_pton(socket.AF_INET6, src_ip), socket.inet_pton(socket.AF_INET6, dst_ip)
        pseudo = sa + da + struct.pack("!I3xB", udp_len, 17)
    else:
        sa, da = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
        pseudo = sa + da + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", src_port, dst_port, udp_len, 0) + payload
    c = inet_checksum(pseudo + udp)
    udp = udp[:6] + struct.pack("!H", c if c else 0xFFFF) + udp[8:]  # RFC 768: 0 -> 0xFFFF
    if v6:
        ip = struct.pack("!IHBB", 6 << 28, udp_len, 17, 64) + sa + da
        ethertype = ETH_IPV6
    else:
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, sa, da))
        struct.pack_into("!H", ip, 10, inet_checksum(bytes(ip)))
        ip = bytes(ip)
        ethertype = ETH_IPV4
    eth = dst_mac + src_mac
    for tpid, tci in vlans:
        eth += struct.pack("!HH", tpid, tci)
    eth += struct.pack("!H", ethertype)
    return eth + ip + udp


class PcapWriter:
    """Classic pcap (microsecond timestamps, little-endian, LINKTYPE_ETHERNET)."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def write(self, t_us: int, frame: bytes):
        self.f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
        self.f.write(frame)

    def close(self):
        self.f.close()


# ---------------------------------------------------------------------------------------
# Result messages (§9)
# ---------------------------------------------------------------------------------------


def parse_result(p: bytes):
    """§9: a result message as a dict, or {"error": reason} in the order the spec gives."""
    if len(p) < RESULT_LEN:
        return {"error": "truncated"}
    magic, vf, model, image, status, k, arrived, crc, ts = struct.unpack_from("!HBBIBBHIQ", p)
    if magic != RESULT_MAGIC or vf >> 4 != VERSION:
        return {"error": "unrecognized"}
    if len(p) < RESULT_LEN + 8 * k:
        return {"error": "truncated"}
    if status not in STATUS or k > 32:
        return {"error": "malformed"}
    stages = list(struct.unpack_from("!6Q", p, 24))
    top_k = []
    for j in range(k):
        cls, score = struct.unpack_from("!If", p, RESULT_LEN + 8 * j)
        top_k.append({"class": cls, "score": score})
    return {
        "model": model,
        "image": image,
        "status": STATUS[status],
        # Fragments the receiver had of an `incomplete` image; 0 for every other status.
        "arrived": arrived,
        # 0: the receiver did not compute it (§9), so there is nothing to compare.
        "crc32": crc,
        "sender_timestamp": ts,
        "stages": stages,
        "top_k": top_k,
    }


def receive_results(socks, expect: int, timeout_s: float):
    """Result messages arriving on `socks` until `expect` arrived or `timeout_s` passed."""
    out = []
    deadline = time.monotonic() + timeout_s
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while len(out) < expect:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(left):
            try:
                data, (host, port, *_) = key.fileobj.recvfrom(65535)
            except BlockingIOError:
                continue
            r = parse_result(data)
            lhost, lport = key.fileobj.getsockname()[:2]
            r["to"] = fmt_addr(lhost, lport)
            r["from"] = fmt_addr(host, port)
            out.append(r)
    sel.close()
    return out


def fmt_addr(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_hostport(s: str):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------------------------------
# Tensors and traffic
# ---------------------------------------------------------------------------------------


def parse_shape(s: str):
    dims = [int(x) for x in s.lower().split("x")]
    if not 1 <= len(dims) <= 6 or any(d < 1 or d > 0xFFFFFFFF for d in dims):
        raise ValueError(f"bad shape {s!r}: 1..=6 dimensions, each 1..=2^32-1")
    return dims


def random_tensor(rng: random.Random, shape, dtype: str) -> bytes:
    """Row-major, little-endian elements (§3): u8 uniform, f16/f32 uniform in [-1, 1)."""
    n = 1
    for d in shape:
        n *= d
    if dtype == "u8":
        return bytes(rng.getrandbits(8) for _ in range(n))
    code = "e" if dtype == "f16" else "f"
    return struct.pack(f"<{n}{code}", *(rng.uniform(-1.0, 1.0) for _ in range(n)))


def build_traffic(a):
    """Every image and the ordered list of (image index, kind, payload) to send."""
    dtype_code, esize = DTYPES[a.dtype]
    layout = LAYOUTS[a.layout]
    if a.file:
        with open(a.file, "rb") as f:
            raw = f.read()
        shape = parse_shape(a.shape) if a.shape else [len(raw) // esize]
    else:
        raw = None
        shape = parse_shape(a.shape or "1x3x32x32")
    if layout != 0 and len(shape) != 4:
        raise SystemExit("NCHW/NHWC need a rank-4 shape (§4.3)")
    nbytes = esize
    for d in shape:
        nbytes *= d
    if raw is not None and len(raw) != nbytes:
        raise SystemExit(f"{a.file}: {len(raw)} bytes, but shape {shape} x {esize} = {nbytes}")
    models = [int(m) for m in str(a.model).split(",")]
    if any(not 0 <= m <= 255 for m in models):
        raise SystemExit("model ids are 0..=255")

    rng = random.Random(a.seed)

    def make_image(flow, model, image_id, ts, restart=False):
        tensor = raw if raw is not None else random_tensor(rng, shape, a.dtype)
        c = crc32(tensor)
        desc = descriptor(dtype_code, layout, shape, ts, c)
        payloads = fragment_payloads(tensor, a.frag_size, model, image_id, desc)
        order = list(range(len(payloads)))
        if a.order == "reverse":
            order.reverse()
        elif a.order == "shuffle":
            rng.shuffle(order)
        return {
            "flow": flow,
            "model": model,
            "image": image_id,
            "crc32": c,
            "sender_timestamp": ts,
            "total_bytes": len(tensor),
            "shape": shape,
            "payloads": payloads,
            "order": order,
            "restart": restart,
        }

    next_id = {}  # (flow, model) -> next image id: consecutive per flow and model (§7)
    images = []
    for i in range(a.images):
        flow = i % a.flows
        model = models[i % len(models)]
        image_id = next_id.get((flow, model), a.first_image) & 0xFFFFFFFF
        next_id[(flow, model)] = image_id + 1
        images.append(make_image(flow, model, image_id, a.t0_ns + i * 1000))
    originals = len(images)
    if a.restart + a.replay > originals:
        raise SystemExit("--restart + --replay: at most --images")
    # The sender restarts (§7): the first --restart images again, same identity, a new tensor
    # and a new descriptor timestamp (a new incarnation), fragments in the --order of the run.
    for j in range(a.restart):
        im = images[j]
        ts = a.t0_ns + (originals + j) * 1000
        images.append(make_image(im["flow"], im["model"], im["image"], ts, restart=True))

    # Faults, chosen by a separate seeded generator: (image, position in its send order),
    # among the first images only.
    firsts = images[:originals]
    frng = random.Random(a.seed ^ 0x5EED)
    in_flight = [(i, p) for i, im in enumerate(firsts) for p in range(len(im["order"]) - 1)]
    if a.dup > len(in_flight):
        raise SystemExit(
            f"--dup {a.dup}: only {len(in_flight)} fragments are sent before their image's "
            "last one (single-fragment images cannot get an in-flight duplicate)"
        )
    dups = set(frng.sample(in_flight, a.dup))
    if a.late_dup > len(firsts):
        raise SystemExit("--late-dup: at most one per image")
    late = set(frng.sample(range(len(firsts)), a.late_dup))
    every = [(i, p) for i, im in enumerate(firsts) for p in range(len(im["order"]))]
    if a.corrupt > len(every):
        raise SystemExit("--corrupt: at most one per fragment")
    corrupt = set(frng.sample(every, a.corrupt))

    # Per image, its frames in send order (faults included): (image index, kind, index, payload).
    per_image = []
    k_flip = 0
    for i, im in enumerate(images):
        if im["restart"]:
            per_image.append([(i, "restart", idx, im["payloads"][idx]) for idx in im["order"]])
            continue
        seq = []
        for p, idx in enumerate(im["order"]):
            pl = im["payloads"][idx]
            seq.append((i, "fragment", idx, pl))
            if (i, p) in corrupt:
                seq.append((i, "corrupted", idx, flip_header_bit(pl, k_flip)))
                k_flip += 1
            if (i, p) in dups:
                seq.append((i, "duplicate", idx, pl))
        if i in late:
            idx = im["order"][0]
            seq.append((i, "late_duplicate", idx, im["payloads"][idx]))
        per_image.append(seq)
    # --replay: the images after the restarted ones are sent again byte for byte (the same
    # timestamp) once everything else of their flow was sent: every fragment is late (§7).
    for i in range(a.restart, a.restart + a.replay):
        im = images[i]
        per_image.append([(i, "replay", idx, im["payloads"][idx]) for idx in im["order"]])

    # Interleave: one image per flow in flight, flows served round robin frame by frame. A
    # flow's restarted images and replays come after all of its first images.
    queues = [[seq for seq in per_image if images[seq[0][0]]["flow"] == f] for f in range(a.flows)]
    sends = []
    while any(queues):
        for q in queues:
            if q:
                sends.append(q[0].pop(0))
                if not q[0]:
                    q.pop(0)
    return images, sends


def expected_restart(im):
    """What §7 and §8.2 say becomes of a restarted image's fragments, sent in im["order"]
    while the first image with its identity is remembered: those before fragment 0 cannot be
    told from stragglers (no timestamp) and are late; fragment 0, with its new timestamp,
    opens a new incarnation that takes the rest. It completes iff fragment 0 came first."""
    before = im["order"].index(0)
    return {"late": before, "accepted": len(im["order"]) - before, "completes": before == 0}


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: send_tensor.py --pcap out.pcap --images 12 --flows 3 --dup 2 --corrupt 2",
    )
    out = ap.add_argument_group("output (one of)")
    out.add_argument("--pcap", help="write Ethernet frames to this classic pcap file")
    out.add_argument("--udp", metavar="HOST:PORT", help="send the fragments over UDP sockets to HOST:PORT")
    out.add_argument(
        "--recv-results",
        metavar="HOST:PORT",
        help="do not send: wait for --expect result messages on PORT..PORT+flows-1 and print them",
    )
    out.add_argument("--self-test", action="store_true", help="check against the worked example (§10)")
    t = ap.add_argument_group("tensors")
    t.add_argument("--images", type=int, default=6, help="images to send (default 6)")
    t.add_argument("--shape", help="tensor shape, e.g. 1x3x32x32 (default; with --file: [file size])")
    t.add_argument("--dtype", choices=DTYPES, help="element type (default f32; u8 with --file)")
    t.add_argument("--layout", choices=LAYOUTS,
                   help="layout (default nchw; plain with --file and no --shape)")
    t.add_argument("--file", help="send the raw bytes of this file as every image's tensor")
    t.add_argument("--seed", type=int, default=1, help="seed of the tensors and faults (default 1)")
    t.add_argument("--model", default="1", help="model id(s), comma-separated, used in turn (default 1)")
    t.add_argument("--first-image", type=int, default=0, help="first image id of each flow and model")
    t.add_argument("--frag-size", type=int, default=1024, help="tensor bytes per fragment (default 1024)")
    t.add_argument("--order", choices=["forward", "reverse", "shuffle"], default="forward",
                   help="order of each image's fragments (default forward)")
    n = ap.add_argument_group("network")
    n.add_argument("--flows", type=int, default=3, help="flows (source ports) (default 3)")
    n.add_argument("--src", help="source address and first source port (default 10.0.0.1:40000; "
                   "with --udp: the default is to let the kernel choose)")
    n.add_argument("--dst", default="10.0.0.2:9000", help="destination address and port (pcap)")
    n.add_argument("--src-mac", default="02:00:00:00:00:01")
    n.add_argument("--dst-mac", default="02:00:00:00:00:02")
    n.add_argument("--vlan", action="append", default=[], metavar="[ad:]TCI",
                   help="VLAN tag, outermost first (repeatable, at most 2); ad: = 802.1ad")
    n.add_argument("--pps", type=float, default=100000, help="frame rate: pcap timestamps / UDP pacing")
    n.add_argument("--t0-ns", type=int, default=1_700_000_000_000_000_000,
                   help="time of the first frame and base of the sender timestamps (ns)")
    f = ap.add_argument_group("faults")
    f.add_argument("--dup", type=int, default=0, help="fragments duplicated while their image is in flight")
    f.add_argument("--late-dup", type=int, default=0, help="fragments resent after their image completed")
    f.add_argument("--corrupt", type=int, default=0, help="extra fragment copies with a header bit flipped")
    f.add_argument("--restart", type=int, default=0,
                   help="then restart: the first K images again, same ids, new tensors and timestamps (§7)")
    f.add_argument("--replay", type=int, default=0,
                   help="then the next K images again byte for byte, same timestamps: all late (§7)")
    r = ap.add_argument_group("results")
    r.add_argument("--expect", type=int, default=0, help="result messages to wait for")
    r.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for results")
    a = ap.parse_args()

    if a.self_test:
        return self_test()
    if a.layout is None:
        a.layout = "plain" if a.file and not a.shape else "nchw"
    if a.file and a.dtype is None:
        a.dtype = "u8"
    a.dtype = a.dtype or "f32"
    if a.flows < 1 or a.images < 1:
        raise SystemExit("need at least one flow and one image")
    bind_src = a.src is not None
    src_ip, first_port = parse_hostport(a.src or "10.0.0.1:40000")
    if first_port + a.flows - 1 > 0xFFFF:
        raise SystemExit("source ports beyond 65535")

    if a.recv_results:
        host, port = parse_hostport(a.recv_results)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        socks = []
        for fl in range(a.flows):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.bind((host, port + fl))
            socks.append(s)
        print("listening", file=sys.stderr, flush=True)
        results = receive_results(socks, a.expect, a.timeout)
        json.dump({"results": results, "count": len(results)}, sys.stdout)
        print()
        return 0 if len(results) >= a.expect else 1

    if bool(a.pcap) == bool(a.udp):
        raise SystemExit("give exactly one of --pcap, --udp, --recv-results, --self-test")
    if len(a.vlan) > 2:
        raise SystemExit("at most two VLAN tags (§2)")
    vlans = []
    for v in a.vlan:
        tpid = TPID_8021AD if v.startswith("ad:") else TPID_8021Q
        vlans.append((tpid, int(v.split(":")[-1], 0) & 0xFFFF))

    images, sends = build_traffic(a)
    src_of = lambda im: (src_ip, first_port + im["flow"])  # noqa: E731
    counts = {k: 0 for k in ("fragment", "duplicate", "late_duplicate", "corrupted", "restart", "replay")}
    results = None
    if a.pcap:
        w = PcapWriter(a.pcap)
        src_mac, dst_mac = mac_bytes(a.src_mac), mac_bytes(a.dst_mac)
        dst = parse_hostport(a.dst)
        gap_us = max(1, round(1e6 / a.pps)) if a.pps > 0 else 1
        t0_us = a.t0_ns // 1000
        for j, (i, kind, _idx, pl) in enumerate(sends):
            w.write(t0_us + j * gap_us, udp_frame(src_mac, dst_mac, vlans, src_of(images[i]), dst, pl))
            counts[kind] += 1
        w.close()
        sources = {fl: fmt_addr(src_ip, first_port + fl) for fl in range(a.flows)}
    else:
        host, port = parse_hostport(a.udp)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        # The local address the kernel routes from, so that the summary names real sources.
        with socket.socket(fam, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            local_ip = probe.getsockname()[0]
        socks = []
        for fl in range(a.flows):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            if fam == socket.AF_INET:
                # §2: Don't Fragment (Linux IP_MTU_DISCOVER = 10, IP_PMTUDISC_DO = 2).
                s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10), 2)
            # Not connected: an ICMP port unreachable must not fail the next send.
            s.bind((src_ip, first_port + fl) if bind_src else (local_ip, 0))
            socks.append(s)
        sources = {fl: fmt_addr(*socks[fl].getsockname()[:2]) for fl in range(a.flows)}
        gap = 1.0 / a.pps if a.pps > 0 else 0
        t_next = time.monotonic()
        for i, kind, _idx, pl in sends:
            socks[images[i]["flow"]].sendto(pl, (host, port))
            counts[kind] += 1
            if gap:
                t_next += gap
                d = t_next - time.monotonic()
                if d > 0:
                    time.sleep(d)
        if a.expect:
            results = receive_results(socks, a.expect, a.timeout)

    firsts = [im for im in images if not im["restart"]]
    fragments = sum(len(im["payloads"]) for im in firsts)
    assert counts["fragment"] == fragments
    # Per image: what a receiver that follows §7 and §8.2 makes of it.
    for im in images:
        if im["restart"]:
            im["expect"] = expected_restart(im)
        else:
            n = len(im["payloads"])
            im["expect"] = {"late": 0, "accepted": n, "completes": True}
    done = [im for im in images if im["expect"]["completes"]]
    evicted = [im for im in images if not im["expect"]["completes"]]
    summary = {
        "protocol_version": VERSION,
        "output": "pcap" if a.pcap else "udp",
        "frames": len(sends),
        "fragments": fragments,
        "images": len(firsts),
        "duplicates": counts["duplicate"],
        "late_duplicates": counts["late_duplicate"],
        "corrupted": counts["corrupted"],
        "restarted": counts["restart"],
        "replayed": counts["replay"],
        "bytes": sum(im["total_bytes"] for im in done),
        "frag_size": a.frag_size,
        "flows": a.flows,
        "dtype": a.dtype,
        "layout": a.layout,
        "order": a.order,
        "vlan_tags": len(vlans),
        # What a receiver that follows docs/protocol.md §8 counts for this traffic, using
        # the spec's names for the outcomes (and netml's for the evictions, which the spec
        # describes without naming: §7).
        "expect": {
            "frames": len(sends),
            "fragment": len(sends) - counts["corrupted"],
            "checksum": counts["corrupted"],
            "truncated": 0,
            "unrecognized": 0,
            "malformed": 0,
            "other": 0,
            "accepted": sum(im["expect"]["accepted"] for im in images),
            "duplicate": counts["duplicate"],
            "late": counts["late_duplicate"] + counts["replay"]
            + sum(im["expect"]["late"] for im in images),
            "out_of_range": 0,
            "inconsistent": 0,
            "images_completed": len(done),
            "fragments_completed": sum(len(im["payloads"]) for im in done),
            # Restarted images whose fragment 0 did not come first: evicted on timeout (or
            # at the end of the capture) with the fragments they took.
            "evicted": len(evicted),
            "fragments_evicted": sum(im["expect"]["accepted"] for im in evicted),
        },
        # Every image sent, the restarted ones again; `completes`: whether a receiver
        # completes it. §9 answers every image it accepted a fragment of: one it completes
        # with the outcome of processing it (`ok` without inference functions), one it
        # evicts `incomplete` with `arrived` = the fragments it took (`arrived` 0 here when
        # the image completes).
        "image_list": [
            {
                "source": sources[im["flow"]],
                "model": im["model"],
                "image": im["image"],
                "fragments": len(im["payloads"]),
                "total_bytes": im["total_bytes"],
                "crc32": im["crc32"],
                "crc32_hex": f"{im['crc32']:08x}",
                "sender_timestamp": im["sender_timestamp"],
                "restart": im["restart"],
                "completes": im["expect"]["completes"],
                "arrived": 0 if im["expect"]["completes"] else im["expect"]["accepted"],
            }
            for im in images
        ],
    }
    if results is not None:
        summary["results"] = results
    json.dump(summary, sys.stdout)
    print()
    return 0


# ---------------------------------------------------------------------------------------
# Self-test against §10 (the hex below is copied from docs/protocol.md)
# ---------------------------------------------------------------------------------------

EXAMPLE_FRAMES = [
    """02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00
       00 82 00 00 40 00 40 11 26 69 0a 00 00 01 0a 00
       00 02 9c 40 23 28 00 6e f3 66 4e 4d 11 07 01 02
       03 04 00 00 00 03 00 10 00 00 00 28 55 df 00 00
       01 02 04 00 00 00 00 01 00 00 00 02 00 00 00 04
       00 00 00 05 00 00 00 00 00 00 00 00 00 00 00 00
       3b 9a ca 00 0d a6 2e 3c 00 00 00 00 00 00 00 00
       00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
       00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f""",
    """02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00
       00 42 00 00 40 00 40 11 26 a9 0a 00 00 01 0a 00
       00 02 9c 40 23 28 00 2e 73 66 4e 4d 10 07 01 02
       03 04 00 01 00 03 00 10 00 00 00 28 9d 69 00 00
       10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f""",
    """02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00
       00 3a 00 00 40 00 40 11 26 b1 0a 00 00 01 0a 00
       00 02 9c 40 23 28 00 26 9f a6 4e 4d 10 07 01 02
       03 04 00 02 00 03 00 10 00 00 00 28 9d 68 00 00
       20 21 22 23 24 25 26 27""",
]

EXAMPLE_RESULT = """4e 52 10 07 01 02 03 04 00 02 00 00 0d a6 2e 3c
    00 00 00 00 3b 9a ca 00 00 00 00 00 00 00 13 88
    00 00 00 00 00 00 16 a8 00 00 00 00 00 00 17 70
    00 00 00 00 00 00 1d 4c 00 00 00 00 00 0e 7e f0
    00 00 00 00 00 0e 82 d8 00 00 00 03 3f 40 00 00
    00 00 00 01 3e 00 00 00"""


def self_test():
    checks = []

    def check(what, got, want):
        checks.append({"check": what, "ok": got == want})
        if got != want:
            print(f"FAIL {what}: got {got!r}, want {want!r}", file=sys.stderr)

    check("crc32('123456789')", crc32(b"123456789"), 0xCBF43926)
    words = bytes.fromhex("4E4D 1007 0102 0304 0001 0003 0010 0000 0028 0000 0000".replace(" ", ""))
    check("§4.4 example sum", ones_complement_sum(words), 0x6296)
    check("§4.4 example checksum", inet_checksum(words), 0x9D69)
    tensor = bytes(range(40))
    check("§10 tensor CRC-32", crc32(tensor), 0x0DA62E3C)
    desc = descriptor(1, LAYOUTS["nhwc"], [1, 2, 4, 5], 1_000_000_000, crc32(tensor))
    payloads = fragment_payloads(tensor, 16, 7, 0x01020304, desc)
    check("§10 fragment count", len(payloads), 3)
    for i, (pl, hexdump) in enumerate(zip(payloads, EXAMPLE_FRAMES)):
        want = bytes.fromhex("".join(hexdump.split()))
        got = udp_frame(
            mac_bytes("02:00:00:00:00:01"),
            mac_bytes("02:00:00:00:00:02"),
            [],
            ("10.0.0.1", 40000),
            ("10.0.0.2", 9000),
            pl,
        )
        check(f"§10 frame {i} bytes", got.hex(), want.hex())
        check(f"§10 frame {i} header checksum verifies", header_verifies(pl), True)
        for k in range(8 * (HEADER_LEN - 3)):
            if header_verifies(flip_header_bit(pl, k)):
                check(f"§4.4 bit flip {k} of frame {i} detected", False, True)
    r = parse_result(bytes.fromhex("".join(EXAMPLE_RESULT.split())))
    check(
        "§10 result message",
        r,
        {
            "model": 7,
            "image": 0x01020304,
            "status": "ok",
            "arrived": 0,
            "crc32": 0x0DA62E3C,
            "sender_timestamp": 1_000_000_000,
            "stages": [5000, 5800, 6000, 7500, 950000, 951000],
            "top_k": [{"class": 3, "score": 0.75}, {"class": 1, "score": 0.125}],
        },
    )
    # §9 for an evicted image: the example's header with status 5 (incomplete), k = 0,
    # arrived = 2, crc32 = 0, and no stage but rx_first and sent.
    msg = bytearray(bytes.fromhex("".join(EXAMPLE_RESULT.split()))[:RESULT_LEN])
    struct.pack_into("!BBHI", msg, 8, 5, 0, 2, 0)
    struct.pack_into("!6Q", msg, 24, 5000, 0, 0, 0, 0, 951000)
    r = parse_result(bytes(msg))
    check(
        "§9 incomplete result",
        (r["status"], r["arrived"], r["crc32"], r["top_k"], r["stages"]),
        ("incomplete", 2, 0, [], [5000, 0, 0, 0, 0, 951000]),
    )
    for code, name in STATUS.items():
        msg[8] = code
        check(f"§9 status {code}", parse_result(bytes(msg)).get("status"), name)
    msg[8] = len(STATUS)
    check("§9 unknown status", parse_result(bytes(msg)), {"error": "malformed"})
    ok = all(c["ok"] for c in checks)
    json.dump({"self_test": "pass" if ok else "fail", "checks": checks}, sys.stdout)
    print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
