#!/usr/bin/env python3
# make_corpus.py - writes the seed corpus tests/fuzz/corpus/pgoutput/ from the
# captures here, in fuzz_pgoutput.c's format: a mode byte (bit 0: records are CopyData
# payloads), then records of [2-byte big-endian length][bytes].
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "..", "fuzz", "corpus", "pgoutput")


def load(name):
    return [bytes.fromhex(l.split()[1]) for l in open(os.path.join(HERE, name + ".hex"))]


def seq(msgs, copydata=False):
    out = bytes([1 if copydata else 0])
    for m in msgs:
        if copydata:
            m = b"w" + struct.pack(">QQq", 0x1000, 0x1000, 5) + m
        out += struct.pack(">H", len(m)) + m
    return out


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


os.makedirs(OUT, exist_ok=True)
p1 = load("proto1")
small = [m for m in p1 if len(m) < 2000]  # drop the 10 kB TOAST insert
write("proto1", seq(small))
write("proto1_copydata", seq(small[:12], True) + struct.pack(">H", 18) + b"k" + bytes(16) + b"\x01")
write("proto1_toast", seq(p1[:5] + p1[30:36]))
write("proto1_binary", seq([m for m in load("proto1_binary") if len(m) < 2000]))
st = load("proto2_stream")
cur, rows = [], 0
for m in st:  # keep each transaction's or streamed block's first 3 rows and the framing
    if m[:1] in (b"B", b"S"):
        rows = 0
    if m[:1] == b"I":
        rows += 1
        if rows > 3:
            continue
    cur.append(m)
write("proto2_stream", seq(cur))
# Each captured message alone (unique ones), for the decoder without context.
seen = set()
for i, m in enumerate(p1 + st[:8] + st[-6:]):
    if m[:1] in (b"B", b"C") or m in seen or len(m) > 2000:
        continue
    seen.add(m)
    write("single_%02d" % i, seq([m]))
