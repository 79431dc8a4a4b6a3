#!/usr/bin/env python3
# expected.py - independent reference decoder: renders a capture (*.hex) as the text
# that test_pgoutput.c's renderer must produce (*.expected). Written apart from the C
# decoder on purpose, so that the two cross-check each other.
# Usage: expected.py FILE.hex > FILE.expected
import struct
import sys


def lsn(v):
    return "%X/%X" % (v >> 32, v & 0xFFFFFFFF)


def text(b):
    out = []
    for c in b:
        if 0x20 <= c < 0x7F and c not in (0x22, 0x5C):
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return '"' + "".join(out) + '"'


class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        assert self.i + n <= len(self.b), "truncated"
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def s(self):
        j = self.b.index(0, self.i)
        v = self.b[self.i:j].decode()
        self.i = j + 1
        return v


def tuple_(r):
    n = r.u16()
    cols = []
    for _ in range(n):
        k = chr(r.u8())
        if k in "nu":
            cols.append(k)
        else:
            ln = r.u32()
            data = r.take(ln)
            cols.append("t" + text(data) if k == "t" else "b:" + data.hex())
    return "(" + ",".join(cols) + ")"


def main():
    in_stream = False
    for line in open(sys.argv[1]):
        _, hx = line.split()
        r = Reader(bytes.fromhex(hx))
        t = chr(r.u8())
        xid = ""
        if in_stream and t in "RYIUDTM":
            xid = " xid=%u" % r.u32()
        if t == "B":
            o = "B final=%s ts=%d xid=%u" % (lsn(r.u64()), r.i64(), r.u32())
        elif t == "C":
            o = "C flags=%u commit=%s end=%s ts=%d" % (r.u8(), lsn(r.u64()), lsn(r.u64()), r.i64())
        elif t == "R":
            oid, nsp, rel, ident, n = r.u32(), r.s(), r.s(), chr(r.u8()), r.u16()
            cols = []
            for _ in range(n):
                fl, name, typ, mod = r.u8(), r.s(), r.u32(), r.i32()
                cols.append("%s:%u:%d%s" % (name, typ, mod, ":key" if fl & 1 else ""))
            o = "R%s oid=%u %s.%s ident=%s cols=[%s]" % (xid, oid, nsp, rel, ident, ",".join(cols))
            xid = ""
        elif t == "Y":
            o = "Y%s oid=%u %s.%s" % (xid, r.u32(), r.s(), r.s())
            xid = ""
        elif t == "I":
            oid = r.u32()
            assert r.u8() == ord("N")
            o = "I rel=%u N%s" % (oid, tuple_(r))
        elif t == "U":
            oid = r.u32()
            k = chr(r.u8())
            old = ""
            if k in "KO":
                old = " " + k + tuple_(r)
                k = chr(r.u8())
            assert k == "N"
            o = "U rel=%u%s N%s" % (oid, old, tuple_(r))
        elif t == "D":
            oid = r.u32()
            k = chr(r.u8())
            o = "D rel=%u %s%s" % (oid, k, tuple_(r))
        elif t == "T":
            n, fl = r.u32(), r.u8()
            ids = [str(r.u32()) for _ in range(n)]
            o = "T flags=%u rels=[%s]" % (fl, ",".join(ids))
        elif t == "M":
            fl, l, pfx = r.u8(), r.u64(), r.s()
            n = r.u32()
            o = "M flags=%u lsn=%s prefix=%s content=%s" % (fl, lsn(l), pfx, text(r.take(n)))
        elif t == "O":
            o = "O lsn=%s name=%s" % (lsn(r.u64()), r.s())
        elif t == "S":
            x, first = r.u32(), r.u8()
            o = "S xid=%u first=%u" % (x, first)
            in_stream = True
        elif t == "E":
            o = "E"
            in_stream = False
        elif t == "c":
            o = "c xid=%u flags=%u commit=%s end=%s ts=%d" % (
                r.u32(), r.u8(), lsn(r.u64()), lsn(r.u64()), r.i64())
        elif t == "A":
            o = "A xid=%u subxid=%u" % (r.u32(), r.u32())
        else:
            raise SystemExit("unknown type " + t)
        assert r.i == len(r.b), "trailing bytes"
        if xid:
            o = o[:1] + xid + o[1:]
        print(o)


main()
