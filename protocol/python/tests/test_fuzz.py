"""Fuzz-style tests of the decoder: valid reply frames, truncated, bit-flipped, spliced and
hostile, with a fixed seed and a bounded count. The decoder may return a value or an error
reply (a ServerError object), or raise ProtocolError; any other exception (KeyError,
TypeError, MemoryError, RecursionError, ...) is a bug and fails the test with the frame's
hex so it can be replayed."""

import os
import random
import unittest

from helpers import HDR, error_reply, frame, get_reply, hello_reply, meta, result

import msgpack

import cachesvc
from cachesvc import codec

SEED = int(os.environ.get("CS_FUZZ_SEED", "20261130"))
ROUNDS = int(os.environ.get("CS_FUZZ_ROUNDS", "6000"))

TS = msgpack.Timestamp(1704164645, 123456000)
ALL_TYPES = [("b", 1), ("i", 2), ("f", 3), ("t", 4), ("y", 5), ("ts", 6), ("tz", 7), ("n", 8), ("j", 9),
             ("o", 10), ("u", 99)]
ROW = [True, -(2**40), 2.5, "text", b"\x00\x01", TS, TS, "1.5", '{"a": [1, null]}', "{1,2}", "x"]

# (request, a valid reply frame to it)
SEEDS = [
    (codec.Get("q", [1]), get_reply(1, cols=ALL_TYPES, rows=[ROW, [None] * len(ROW)], m=meta(stored=True))),
    (codec.Get("q", [1]), get_reply(1)),
    (codec.Refresh("q"), get_reply(1, op=0x85, m=meta(src=1))),
    (codec.Get("q"), error_reply(1, 2, "bad")),
    (codec.MGet([("q", [1])] * 3), frame(0x84, 1, [[meta(), result([("a", 2)], [[1]])], {"err": 1, "msg": "no"},
                                                   {"code": 4, "msg": "x"}])),
    (codec.Hello(), hello_reply(1)),
    (codec.Stats(), frame(0x87, 1, {"hits": 10, "misses": 2, "ratio": 0.8})),
    (codec.Ping(), frame(0x82, 1, None)),
    (codec.Invalidate("q", [1]), frame(0x86, 1, {"deleted": 1})),
    (codec.InvalidateQuery("q"), frame(0x86, 1, {"generation": 3})),
]

HOSTILE = [
    # counts and lengths far beyond the body (PROTOCOL.md section 7)
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\x92\xdd\x7f\xff\xff\xff\xc0",
    b"\xdb\xff\xff\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xc9\xff\xff\xff\xff\xff",
    b"\x91" * 50000 + b"\xc0",  # nesting bomb
    b"\x81" * 1000 + b"\xc0",
    b"\x92" + b"\x84" + b"\xa3src\x00" * 4 + b"\x92\x90\x90",
    b"\xc1",
]


def check(req, data, rnd, max_body=codec.MAX_REPLY_BODY):
    """Feeds data in random chunks and decodes every frame; returns the number of frames."""
    reader = codec.FrameReader(max_body)
    n = 0
    try:
        i = 0
        while i < len(data):
            k = rnd.randint(1, max(1, len(data)))
            reader.feed(data[i : i + k])
            i += k
            while (f := reader.next()) is not None:
                n += 1
                v = codec.decode_reply(req, f.opcode, f.body)
                if isinstance(v, cachesvc.ServerError):
                    assert 1 <= v.code <= 255
    except cachesvc.ProtocolError as e:
        assert e.code == 7 and e.name == "protocol"
    return n


def mutate(data, rnd):
    b = bytearray(data)
    if len(b) < 13:  # a previous truncation: grow it back with noise
        b += bytes(rnd.randrange(256) for _ in range(13 - len(b) + rnd.randrange(8)))
    kind = rnd.randrange(7)
    if kind == 0:  # bit flips
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
    elif kind == 1:  # truncate (the header's length too, sometimes)
        b = b[: rnd.randrange(len(b))]
        if len(b) >= 12 and rnd.random() < 0.5:
            b[0:4] = (len(b) - 12).to_bytes(4, "big")
    elif kind == 2:  # random bytes in the body, header kept consistent
        i = rnd.randrange(12, len(b)) if len(b) > 12 else 12
        b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 6)))
        b[0:4] = (len(b) - 12).to_bytes(4, "big")
    elif kind == 3:  # delete a byte range, header kept consistent
        if len(b) > 13:
            i = rnd.randrange(12, len(b))
            del b[i : i + rnd.randint(1, 4)]
            b[0:4] = (len(b) - 12).to_bytes(4, "big")
    elif kind == 4:  # interesting values at a random spot in the body
        if len(b) > 13:
            i = rnd.randrange(12, len(b))
            v = rnd.choice([b"\xff", b"\x00", b"\x7f", b"\x80", b"\xc1", b"\xdd\xff\xff\xff\xff",
                            b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
                            b"\xd6\xff\xff\xff\xff\xff", b"\xc7\x0c\xff" + b"\xff" * 12])
            b[i : i + len(v)] = v
    elif kind == 5:  # two frames spliced, or a frame repeated
        other = rnd.choice(SEEDS)[1]
        b = b[: rnd.randrange(len(b) + 1)] + other[rnd.randrange(len(other)) :]
    else:  # header fields
        field = rnd.randrange(4)
        if field == 0:
            b[0:4] = rnd.choice([0, 1, 0xFFFFFFFF, 64 << 20, (64 << 20) + 1, rnd.randrange(1 << 32)]).to_bytes(4, "big")
        elif field == 1:
            b[4] = rnd.randrange(256)
        elif field == 2:
            b[5] = rnd.choice([0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0xFF, rnd.randrange(256)])
        else:
            b[6:8] = rnd.randrange(1 << 16).to_bytes(2, "big")
    return bytes(b)


class Fuzz(unittest.TestCase):
    def test_seeds_decode(self):
        rnd = random.Random(SEED)
        for req, data in SEEDS:
            self.assertEqual(check(req, data, rnd), 1)

    def test_mutations_only_raise_protocol_errors(self):
        rnd = random.Random(SEED)
        outcomes = {"ok": 0, "refused": 0}
        for i in range(ROUNDS):
            req, data = rnd.choice(SEEDS)
            for _ in range(rnd.randint(1, 3)):
                data = mutate(data, rnd)
            try:
                reader = codec.FrameReader()
                reader.feed(data)
                f = reader.next()
                if f is not None:
                    codec.decode_reply(req, f.opcode, f.body)
                outcomes["ok"] += 1
            except cachesvc.ProtocolError:
                outcomes["refused"] += 1
            except Exception as e:  # noqa: BLE001
                self.fail(f"round {i} (seed {SEED}): {type(e).__name__}: {e}\nrequest {req!r}\nframe {data.hex()}")
            try:
                check(req, data, rnd)  # the same bytes in random chunks
            except Exception as e:  # noqa: BLE001
                self.fail(f"round {i} chunked: {type(e).__name__}: {e}\nframe {data.hex()}")
        # the mutations must exercise both paths, or this test tests nothing
        self.assertGreater(outcomes["refused"], ROUNDS // 4, outcomes)
        self.assertGreater(outcomes["ok"], ROUNDS // 50, outcomes)

    def test_hostile_bodies(self):
        rnd = random.Random(SEED)
        for body in HOSTILE:
            for req, _ in SEEDS:
                with self.subTest(body=body[:16].hex(), req=type(req).__name__):
                    with self.assertRaises(cachesvc.ProtocolError):
                        reader = codec.FrameReader()
                        reader.feed(HDR.pack(len(body), 1, 0x80 | req.op, 0, 1) + body)
                        f = reader.next()
                        codec.decode_reply(req, f.opcode, f.body)
        for _ in range(2000):  # random bodies behind a valid header
            body = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 40)))
            req = rnd.choice(SEEDS)[0]
            try:
                check(req, HDR.pack(len(body), 1, 0x80 | req.op, 0, 1) + body, rnd)
            except Exception as e:  # noqa: BLE001
                self.fail(f"{type(e).__name__}: {e}\nbody {body.hex()}")

    def test_oversized_header_refused_without_body(self):
        r = codec.FrameReader(1024)
        r.feed(HDR.pack(0xFFFFFFFF, 1, 0x83, 0, 1))
        with self.assertRaises(cachesvc.ProtocolError):
            r.next()


if __name__ == "__main__":
    unittest.main()
