"""Unit tests of the pure codec (cachesvc.codec): requests, frames, limits, typed values."""

import datetime as dt
import decimal
import random
import unittest
import uuid

from helpers import HDR, error_reply, frame, get_reply, meta, result  # noqa: F401 (sets sys.path)

import msgpack

import cachesvc
from cachesvc import codec
from cachesvc.codec import ColumnType, Get, Source

UTC = dt.timezone.utc


def decode(req, data, **opts):
    r = codec.FrameReader()
    r.feed(data)
    f = r.next()
    assert f is not None, "incomplete frame"
    return codec.decode_reply(req, f.opcode, f.body, codec.DecodeOptions(**opts))


def body_of(frame_bytes):
    return msgpack.unpackb(frame_bytes[12:], raw=False, timestamp=0)


class WorkedExample(unittest.TestCase):
    """PROTOCOL.md section 8, byte for byte."""

    REQUEST = bytes.fromhex(
        "00000016 01 03 0000 00000001 82 a171 ac757365725f70726f66696c65 a170 91a23432".replace(" ", "")
    )
    REPLY = bytes.fromhex(
        (
            "00000037 01 83 0000 00000001 92 84 a3737263 00 a36c736e cf00000016b374d848"
            " a3616765 cd05dc a57374616c65 c2 92 92 92a2696402 92a46e616d6504 91 922aa3616e6e"
        ).replace(" ", "")
    )
    ERROR = bytes.fromhex(
        "00000018 01 ff 0000 00000002 82 a4636f646501 a36d7367 ac6e6f2071756572792022782"
        "2".replace(" ", "")
    )

    def test_request_bytes(self):
        self.assertEqual(codec.encode_request(Get("user_profile", ["42"]), 1), self.REQUEST)

    def test_reply(self):
        r = decode(Get("user_profile", ["42"]), self.REPLY)
        self.assertEqual(r.meta.source, Source.CACHE)
        self.assertEqual(r.meta.lsn, 0x16B374D848)
        self.assertEqual(str(r.meta.lsn), "16/B374D848")
        self.assertEqual(r.meta.age_ms, 1500)
        self.assertFalse(r.meta.stale)
        self.assertIsNone(r.meta.stored)
        self.assertEqual(r.column_names, ["id", "name"])
        self.assertEqual([c.type for c in r.columns], [ColumnType.INT, ColumnType.TEXT])
        self.assertEqual(r.rows, [(42, "ann")])
        self.assertEqual(r.as_dicts(), [{"id": 42, "name": "ann"}])

    def test_error(self):
        e = decode(Get("x"), self.ERROR)
        self.assertIsInstance(e, cachesvc.UnknownQueryError)
        self.assertEqual((e.code, e.name, e.message), (1, "unknown_query", 'no query "x"'))


class Requests(unittest.TestCase):
    def enc(self, req, reqid=7, **kw):
        data = codec.encode_request(req, reqid, **kw)
        length, version, op, flags, rid = HDR.unpack(data[:12])
        self.assertEqual((length, version, flags, rid), (len(data) - 12, 1, 0, reqid))
        return op, body_of(data)

    def test_get_defaults_are_left_out(self):
        self.assertEqual(self.enc(Get("q")), (3, {"q": "q"}))

    def test_get_every_key(self):
        op, b = self.enc(Get("q", [1, "x", None, True, 1.5, b"\x00"], tier=0, lsn="16/B374D848", bypass=True))
        self.assertEqual(op, 3)
        self.assertEqual(b, {"q": "q", "p": [1, "x", None, True, 1.5, b"\x00"], "tier": 0,
                             "lsn": 0x16B374D848, "bypass": True})

    def test_refresh_opcode(self):
        self.assertEqual(self.enc(codec.Refresh("q", [1], tier=2))[0], 5)

    def test_lsn_int_and_zero(self):
        self.assertEqual(self.enc(Get("q", lsn=5))[1]["lsn"], 5)
        self.assertNotIn("lsn", self.enc(Get("q", lsn=0))[1])
        self.assertNotIn("lsn", self.enc(Get("q", lsn="0/0"))[1])

    def test_mget(self):
        op, b = self.enc(codec.MGet([Get("a", [1]), ("b", [2]), ("c",)]))
        self.assertEqual(op, 4)
        self.assertEqual(b, [{"q": "a", "p": [1]}, {"q": "b", "p": [2]}, {"q": "c"}])

    def test_invalidate_key_vs_query(self):
        self.assertEqual(self.enc(codec.Invalidate("q", [])), (6, {"q": "q", "p": []}))
        self.assertEqual(self.enc(codec.Invalidate("q", [3])), (6, {"q": "q", "p": [3]}))
        self.assertEqual(self.enc(codec.InvalidateQuery("q")), (6, {"q": "q"}))

    def test_empty_bodies(self):
        self.assertEqual(self.enc(codec.Ping()), (2, None))
        self.assertEqual(self.enc(codec.Stats()), (7, None))

    def test_hello(self):
        self.assertEqual(self.enc(codec.Hello("app", "tok")), (1, {"v": 1, "client": "app", "token": "tok"}))
        self.assertEqual(self.enc(codec.Hello("app")), (1, {"v": 1, "client": "app"}))

    def test_values(self):
        when = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
        _, b = self.enc(Get("q", [when, when.replace(tzinfo=None), dt.date(2024, 1, 2),
                                  decimal.Decimal("1.50"), uuid.UUID(int=1), 2**63 - 1, -(2**63)]))
        ts = b["p"][0]
        self.assertEqual((ts.seconds, ts.nanoseconds), (1704164645, 123456000))
        self.assertEqual(b["p"][1], ts)  # naive = UTC wall clock
        self.assertEqual(b["p"][2:5], ["2024-01-02", "1.50", "00000000-0000-0000-0000-000000000001"])
        self.assertEqual(b["p"][5:], [2**63 - 1, -(2**63)])
        other_zone = when.astimezone(dt.timezone(dt.timedelta(hours=5)))
        self.assertEqual(self.enc(Get("q", [other_zone]))[1]["p"][0], ts)
        before_epoch = self.enc(Get("q", [dt.datetime(1969, 12, 31, 23, 59, 59, 500000)]))[1]["p"][0]
        self.assertEqual((before_epoch.seconds, before_epoch.nanoseconds), (-1, 500000000))

    def test_limits_refused_before_sending(self):
        bad = [
            Get(""), Get("x" * 65), Get("é" * 33), Get(5),
            Get("q", list(range(17))), Get("q", "abc"), Get("q", [2**63]), Get("q", [-(2**63) - 1]),
            Get("q", [[1]]), Get("q", [{"a": 1}]), Get("q", [object()]),
            Get("q", tier=3), Get("q", tier=-1), Get("q", tier=True),
            Get("q", lsn="zz"), Get("q", lsn=-1), Get("q", lsn=2**64),
            codec.MGet([Get("q")] * 257), codec.MGet([5]), codec.MGet([codec.Refresh("q")]),
            codec.Hello("c" * 65), codec.Hello("c", "t" * 257),
            Get("q", ["\udcff"]),
        ]
        for req in bad:
            with self.subTest(req=repr(req)[:60]):
                with self.assertRaises(cachesvc.InvalidRequestError):
                    codec.encode_request(req, 1)
        # at the limits: fine
        codec.encode_request(Get("x" * 64, list(range(16)), tier=2), 1)
        codec.encode_request(codec.MGet([Get("q")] * 256), 1)

    def test_max_frame(self):
        req = Get("q", ["x" * 1000])
        with self.assertRaises(cachesvc.TooLargeError) as cm:
            codec.encode_request(req, 1, max_body=500)
        self.assertEqual(cm.exception.code, 5)
        codec.encode_request(req, 1, max_body=2000)


class Lsns(unittest.TestCase):
    def test_parse_format(self):
        for text, n in [("16/B374D848", 0x16B374D848), ("0/0", 0), ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
                        ("1/0", 1 << 32), ("0/1", 1)]:
            self.assertEqual(cachesvc.parse_lsn(text), n)
            self.assertEqual(cachesvc.format_lsn(n), text)
        self.assertEqual(cachesvc.parse_lsn("16/b374d848"), 0x16B374D848)
        self.assertEqual(cachesvc.parse_lsn("00000016/0000000A"), 0x160000000A)

    def test_bad(self):
        for text in ["", "1", "1/", "/1", "123456789/0", "0/123456789", "g/0", "1/2/3", " 1/2", "-1/2", "1/+2"]:
            with self.subTest(text=text), self.assertRaises(cachesvc.InvalidRequestError):
                cachesvc.parse_lsn(text)

    def test_lsn_type(self):
        x = cachesvc.LSN("16/B374D848")
        self.assertEqual(x, 0x16B374D848)
        self.assertEqual(str(x), "16/B374D848")
        self.assertEqual(repr(x), "LSN('16/B374D848')")
        self.assertEqual(cachesvc.LSN(x + 1), 0x16B374D849)
        self.assertGreater(cachesvc.LSN("17/0"), x)
        for bad in (-1, 2**64, 1.5, True):
            with self.assertRaises(cachesvc.InvalidRequestError):
                cachesvc.LSN(bad)


class Tokens(unittest.TestCase):
    """Read-your-writes tokens that may name their shard: X/Y or SHARD:X/Y."""

    def test_parse_format(self):
        for text, shard, n in [("16/B374D848", None, 0x16B374D848), ("0/0", None, 0),
                               ("s1:0/16B3748", "s1", 0x16B3748),
                               ("eu-West_2.a:FFFFFFFF/FFFFFFFF", "eu-West_2.a", 2**64 - 1),
                               ("S" * 64 + ":1/2", "S" * 64, (1 << 32) | 2)]:
            with self.subTest(text=text):
                t = cachesvc.parse_token(text)
                self.assertEqual((t.shard, t.lsn), (shard, n))
                self.assertIsInstance(t.lsn, cachesvc.LSN)
                self.assertEqual(str(t), text)
                self.assertEqual(cachesvc.format_token(t), text)
                self.assertEqual(cachesvc.parse_token(str(t)), t)
        self.assertEqual(str(cachesvc.parse_token("s1:0/16b3748")), "s1:0/16B3748")
        self.assertEqual(cachesvc.Token("1/2", "s1"), cachesvc.Token((1 << 32) | 2, "s1"))

    def test_bad(self):
        for text in ["", ":", ":0/1", "s1:", "s1:x/1", "s1:1/", "s1:1//2", "s1:0/0", "a:b:0/1",
                     "s1:0/1:2", "s1::0/1", "s 1:0/1", "s/1:0/1", "\u00e9:0/1", " s1:0/1", "s1:0/1 ",
                     "s1:123456789/0", "1/2:s1", "n" * 65 + ":1/2"]:
            with self.subTest(text=text), self.assertRaises(cachesvc.InvalidRequestError):
                cachesvc.parse_token(text)
        for bad in [("1/2", ""), ("1/2", "s:1"), ("1/2", "n" * 65), (0, "s1"), ("1/2", 5), (-1, None)]:
            with self.subTest(bad=bad), self.assertRaises(cachesvc.InvalidRequestError):
                cachesvc.Token(*bad)
        with self.assertRaises(cachesvc.InvalidRequestError):
            cachesvc.parse_token(5)

    def enc(self, req):
        out = codec.encode_request(req, 1)
        return msgpack.unpackb(out[12:], raw=False)

    def test_request_sends_shard(self):
        want = {"q": "q", "lsn": 0x16B3748, "shard": "s1"}
        self.assertEqual(self.enc(Get("q", lsn="s1:0/16B3748")), want)
        self.assertEqual(self.enc(Get("q", lsn=cachesvc.parse_token("s1:0/16B3748"))), want)
        self.assertEqual(self.enc(Get("q", lsn=cachesvc.Token(0x16B3748, "s1"))), want)
        self.assertEqual(list(self.enc(Get("q", tier=0, lsn="s1:0/1", bypass=True))),
                         ["q", "tier", "lsn", "shard", "bypass"])  # canonical order
        # a bare token: no "shard", the bytes as before
        self.assertEqual(self.enc(Get("q", lsn="0/16B3748")), {"q": "q", "lsn": 0x16B3748})
        self.assertEqual(self.enc(Get("q", lsn=cachesvc.Token(0x16B3748))), {"q": "q", "lsn": 0x16B3748})
        self.assertEqual(codec.encode_request(Get("q", lsn="0/5"), 1),
                         codec.encode_request(Get("q", lsn=5), 1))
        m = msgpack.unpackb(codec.encode_request(codec.MGet([Get("a", lsn="s2:0/9"), ("b", [1])]), 1)[12:])
        self.assertEqual(m, [{"q": "a", "lsn": 9, "shard": "s2"}, {"q": "b", "p": [1]}])
        for bad in ["s1:0/0", "s1:", "a:b:0/1", "n" * 65 + ":0/1"]:
            with self.subTest(bad=bad), self.assertRaises(cachesvc.InvalidRequestError):
                codec.encode_request(Get("q", lsn=bad), 1)


class Frames(unittest.TestCase):
    def test_split_anywhere(self):
        data = get_reply(1) + error_reply(2, 3) + frame(0x82, 3, None)
        for step in (1, 2, 5, 13, len(data)):
            r = codec.FrameReader()
            got = []
            for i in range(0, len(data), step):
                r.feed(data[i : i + step])
                while (f := r.next()) is not None:
                    got.append((f.opcode, f.reqid))
            self.assertEqual(got, [(0x83, 1), (0xFF, 2), (0x82, 3)])
            self.assertEqual(r.pending(), 0)

    def header_error(self, hdr, max_body=codec.MAX_REPLY_BODY):
        r = codec.FrameReader(max_body)
        r.feed(hdr)  # the header alone: refused before any body byte arrives
        with self.assertRaises(cachesvc.ProtocolError) as cm:
            r.next()
        self.assertEqual(cm.exception.code, 7)
        with self.assertRaises(cachesvc.ProtocolError):  # sticky
            r.feed(b"\xc0")
        return cm.exception

    def test_bad_headers(self):
        self.header_error(HDR.pack(1, 2, 0x82, 0, 1))  # version
        self.header_error(HDR.pack(1, 0, 0x82, 0, 1))
        self.header_error(HDR.pack(1, 1, 0x82, 1, 1))  # flags
        self.header_error(HDR.pack(0, 1, 0x82, 0, 1))  # empty body
        self.header_error(HDR.pack(1, 1, 0x03, 0, 1))  # a request opcode
        self.header_error(HDR.pack(1, 1, 0x8A, 0, 1))  # no such reply (0x88, 0x89: SHOW, ADMIN)
        e = self.header_error(HDR.pack((64 << 20) + 1, 1, 0x83, 0, 1))
        self.assertIn("limit", str(e))
        self.header_error(HDR.pack(1001, 1, 0x83, 0, 1), max_body=1000)
        r = codec.FrameReader(1000)
        r.feed(HDR.pack(1000, 1, 0x83, 0, 1))
        self.assertIsNone(r.next())  # at the limit: waits for the body

    def test_opcode_must_answer_the_request(self):
        with self.assertRaises(cachesvc.ProtocolError):
            decode(codec.Ping(), get_reply(1))
        with self.assertRaises(cachesvc.ProtocolError):
            decode(Get("q"), get_reply(1, op=0x85))  # REFRESH reply to a GET
        decode(codec.Refresh("q"), get_reply(1, op=0x85))


class Limits(unittest.TestCase):
    def bad(self, body):
        with self.assertRaises(cachesvc.ProtocolError):
            codec.check_body(body)

    def test_counts_and_lengths(self):
        self.bad(bytes.fromhex("ddffffffff"))  # PROTOCOL.md 7: array32 of 4 billion, refused at once
        self.bad(bytes.fromhex("dfffffffff"))
        self.bad(bytes.fromhex("dc0003") + b"\x01\x02")  # 3 elements, 2 bytes
        self.bad(bytes.fromhex("83") + b"\xa1a\x01\xa1b\x02")  # map of 3: 6 objects, 6 bytes... 1 pair short
        codec.check_body(bytes.fromhex("82a16101a16202"))
        self.bad(bytes.fromhex("db7fffffff") + b"abc")  # str32 longer than the body
        self.bad(bytes.fromhex("c6000000ff") + b"abc")  # bin32
        self.bad(bytes.fromhex("c9000000ff01") + b"abc")  # ext32
        self.bad(bytes.fromhex("d8ff") + b"\x00" * 15)  # fixext16 one short
        self.bad(b"\xc1")
        self.bad(b"")
        self.bad(b"\xc0\xc0")  # trailing bytes
        self.bad(b"\xcf\x00")  # truncated uint64

    def test_depth(self):
        codec.check_body(b"\x91" * 7 + b"\x01")  # 8 levels
        codec.check_body(b"\x91" * 7 + b"\x90")  # an empty container at depth 8
        self.bad(b"\x91" * 8 + b"\x01")  # 9 levels
        self.bad(b"\x81\xa1k" * 8 + b"\x01")
        self.bad(b"\x91" * 100000 + b"\x01")  # no recursion anywhere

    def test_unpack_never_leaks_other_errors(self):
        for body in [b"\xa2\xff\xfe", b"\xd5\xff\x00\x01",
                     b"\xd7\xff\xff\xff\xff\xff\x00\x00\x00\x01"]:
            with self.subTest(body=body.hex()), self.assertRaises(cachesvc.ProtocolError):
                codec.unpack_body(body)


def typed_reply(cols, rows, m=None):
    return get_reply(1, cols=cols, rows=rows, m=m)


class TypedValues(unittest.TestCase):
    def test_every_column_type(self):
        ts = msgpack.Timestamp(1704164645, 123456000)
        cols = [("b", 1), ("i", 2), ("f", 3), ("t", 4), ("y", 5), ("ts", 6), ("tz", 7), ("n", 8),
                ("j", 9), ("o", 10), ("u", 77)]
        row = [True, 2**62 + 1, 1.25, "héllo", b"\x00\xff", ts, ts, "12345678901234567890.000000001",
               '{"k": [1, 2]}', "{a,b}", "future"]
        r = decode(Get("q"), typed_reply(cols, [row, [None] * len(cols)]))
        v = r.rows[0]
        self.assertIs(v[0], True)
        self.assertEqual(v[1], 2**62 + 1)
        self.assertEqual(v[2], 1.25)
        self.assertEqual(v[3], "héllo")
        self.assertEqual(v[4], b"\x00\xff")
        self.assertEqual(v[5], dt.datetime(2024, 1, 2, 3, 4, 5, 123456))
        self.assertIsNone(v[5].tzinfo)
        self.assertEqual(v[6], dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC))
        self.assertEqual(v[6].utcoffset(), dt.timedelta(0))
        self.assertIsInstance(v[7], decimal.Decimal)
        self.assertEqual(v[7], decimal.Decimal("12345678901234567890.000000001"))
        self.assertEqual(v[8], {"k": [1, 2]})
        self.assertEqual(v[9], "{a,b}")
        self.assertEqual(v[10], "future")
        self.assertEqual(r.rows[1], (None,) * len(cols))
        self.assertEqual([c.type for c in r.columns][:10], list(ColumnType))
        self.assertEqual(r.columns[10], cachesvc.Column("u", 77, "other"))
        self.assertEqual(r.columns[7].type_name, "numeric")
        raw = decode(Get("q"), typed_reply(cols, [row]), json="raw")
        self.assertEqual(raw.rows[0][8], '{"k": [1, 2]}')

    def test_numeric_text_accepted(self):
        ok = ["0", "-1.50", "+2", "12345678901234567890.000000001", ".5", "5.", "1e5", "-1.5E-7",
              "NaN", "Infinity", "-Infinity"]
        r = decode(Get("q"), typed_reply([("n", 8)], [[x] for x in ok]))
        self.assertEqual([str(row[0]) for row in r.rows],
                         [str(decimal.Decimal(x)) for x in ok])

    def test_unparsable_json_is_the_raw_text(self):
        deep = "[" * 5000 + "]" * 5000  # deeper than the recursion limit
        huge = "1" + "0" * 5000  # '1e5000'::jsonb as PostgreSQL writes it: > int's digit limit
        r = decode(Get("q"), typed_reply([("j", 9)], [[deep], [huge], ["{nope"], ['{"a": [1]}']]))
        self.assertEqual([row[0] for row in r.rows], [deep, huge, "{nope", {"a": [1]}])

    def test_numeric_specials_and_timestamps(self):
        big = msgpack.Timestamp(2**63 - 1, 0)
        small = msgpack.Timestamp(-(2**63), 0)
        far = msgpack.Timestamp(300000000000, 0)  # year ~11476
        r = decode(Get("q"), typed_reply([("n", 8), ("tz", 7), ("ts", 6)],
                                         [["NaN", big, small], ["-Infinity", far, far]]))
        self.assertTrue(r.rows[0][0].is_nan())
        self.assertEqual(r.rows[0][1], dt.datetime.max.replace(tzinfo=UTC))
        self.assertEqual(r.rows[0][2], dt.datetime.min)
        self.assertEqual(r.rows[1][0], decimal.Decimal("-Infinity"))
        self.assertEqual(r.rows[1][1], cachesvc.RawTimestamp(300000000000, 0))

    def test_cached_columns_still_checked(self):
        # a column list seen before is looked up, not re-validated: equal-comparing values
        # of other types (2.0 == 2, True == 1) must not pass for it
        decode(Get("q"), typed_reply([("a", 2), ("b", 1)], [[1, True]]))
        for cols in ([("a", 2.0), ("b", 1)], [("a", 2), ("b", True)]):
            with self.subTest(cols=cols), self.assertRaises(cachesvc.ProtocolError):
                decode(Get("q"), typed_reply(cols, [[1, True]]))
        r1 = decode(Get("q"), typed_reply([("j", 9)], [['{"a": 1}']]))
        r2 = decode(Get("q"), typed_reply([("j", 9)], [['{"a": 1}']]), json="raw")
        self.assertEqual((r1.rows[0][0], r2.rows[0][0]), ({"a": 1}, '{"a": 1}'))

    def test_meta(self):
        r = decode(Get("q"), typed_reply([("a", 2)], [[1]], m=meta(src=1, stale=True, stored=True, later="x")))
        self.assertEqual((r.meta.source, r.meta.stale, r.meta.stored), (Source.REPLICA, True, True))
        r = decode(Get("q"), typed_reply([("a", 2)], [[1]], m=meta(src=2, stored=False)))
        dup_unknown = frame(0x83, 1, raw=b"\x92\x86\xa3src\x00\xa3lsn\x00\xa3age\x00\xa5stale\xc2"
                                         b"\xa1z\x01\xa1z\x91\x02\x92\x90\x90")
        self.assertEqual(decode(Get("q"), dup_unknown).meta.source, Source.CACHE)  # ignored
        self.assertEqual((r.meta.source, r.meta.stored), (Source.PRIMARY, False))
        self.assertEqual(r.meta.source.name, "PRIMARY")

    def test_malformed_results(self):
        ok_m = meta()
        cases = {
            "src 3": typed_reply([("a", 2)], [[1]], m=meta(src=3)),
            "no stale": frame(0x83, 1, [{"src": 0, "lsn": 0, "age": 0}, result([("a", 2)], [[1]])]),
            "stale int": typed_reply([("a", 2)], [[1]], m=meta(stale=1)),
            "stored str": typed_reply([("a", 2)], [[1]], m=meta(stored="yes")),
            "stored nil": typed_reply([("a", 2)], [[1]], m=meta(stored=None)),
            "negative age": typed_reply([("a", 2)], [[1]], m=meta(age=-1)),
            "meta array": frame(0x83, 1, [[0], result([("a", 2)], [[1]])]),
            "dup meta key": frame(0x83, 1, raw=b"\x92\x85\xa3src\x00\xa3src\x01\xa3lsn\x00\xa3age\x00"
                                            b"\xa5stale\xc2\x92\x90\x90"),
            "not a pair": frame(0x83, 1, [ok_m]),
            "row width": typed_reply([("a", 2), ("b", 2)], [[1]]),
            "type 0": typed_reply([("a", 0)], [[1]]),
            "type 256": typed_reply([("a", 256)], [[1]]),
            "name 65": typed_reply([("n" * 65, 2)], [[1]]),
            "name int": typed_reply([(5, 2)], [[1]]),
            "cell array": typed_reply([("a", 10)], [[[1, 2]]]),
            "cell map": typed_reply([("a", 10)], [[{"a": 1}]]),
            "cell uint64": typed_reply([("a", 2)], [[2**63]]),
            "cell ext": frame(0x83, 1, [ok_m, [[["a", 10]], [[msgpack.ExtType(5, b"x")]]]]),
            "bad numeric": typed_reply([("n", 8)], [["1.2.3"]]),
            "numeric underscore": typed_reply([("n", 8)], [["1_000"]]),
            "numeric padded": typed_reply([("n", 8)], [[" 1 "]]),
            "numeric sNaN": typed_reply([("n", 8)], [["sNaN"]]),
            "numeric inf": typed_reply([("n", 8)], [["inf"]]),
            "numeric nan lower": typed_reply([("n", 8)], [["nan"]]),
            "numeric empty": typed_reply([("n", 8)], [[""]]),
            "numeric unicode digits": typed_reply([("n", 8)], [["\u0661"]]),
            "cols map": frame(0x83, 1, [ok_m, [{"a": 2}, []]]),
            "too many columns": typed_reply([("c", 2)] * 1665, []),
        }
        for name, data in cases.items():
            with self.subTest(case=name), self.assertRaises(cachesvc.ProtocolError):
                decode(Get("q"), data)
        decode(Get("q"), typed_reply([("c", 2)] * 1664, []))
        decode(Get("q"), typed_reply([("n" * 64, 2)], [[1]]))


class OtherReplies(unittest.TestCase):
    def test_error_codes(self):
        for code, name in cachesvc.ERROR_NAMES.items():
            e = decode(Get("q"), error_reply(1, code, "m"))
            self.assertIsInstance(e, cachesvc.ServerError)
            self.assertEqual((e.code, e.name, e.message), (code, name, "m"))
        self.assertIsInstance(decode(Get("q"), error_reply(1, 7)), cachesvc.ProtocolError)
        self.assertTrue(decode(Get("q"), error_reply(1, 7)).fatal)
        self.assertFalse(decode(Get("q"), error_reply(1, 6)).fatal)
        e = decode(Get("q"), error_reply(1, 200, "new"))
        self.assertIsInstance(e, cachesvc.InternalError)
        self.assertEqual((e.code, e.name), (200, "internal"))
        for data in [error_reply(1, 0), error_reply(1, 256), error_reply(1, -1), error_reply(1, 1, "x" * 1025),
                     frame(0xFF, 1, {"code": 1}), frame(0xFF, 1, {"code": 1, "msg": "m", "x": 1}),
                     frame(0xFF, 1, [1, "m"])]:
            with self.assertRaises(cachesvc.ProtocolError):
                decode(Get("q"), data)
        decode(Get("q"), error_reply(1, 1, "é" * 512))  # 1024 bytes

    def test_mget(self):
        items = [[meta(), result([("a", 2)], [[1]])], {"err": 2, "msg": "old form"},
                 {"code": 1, "msg": "new form"}, [meta(src=1), result([("a", 2)], [])]]
        out = decode(codec.MGet([("q", [1])] * 4), frame(0x84, 1, items))
        self.assertEqual(out[0].rows, [(1,)])
        self.assertIsInstance(out[1], cachesvc.BadParamsError)
        self.assertEqual(out[1].message, "old form")
        self.assertIsInstance(out[2], cachesvc.UnknownQueryError)
        self.assertEqual(out[3].meta.source, Source.REPLICA)
        bad = [
            (4, items[:3]),  # fewer items than requested
            (1, {"a": 1}),
            (1, [{"err": 1}]),
            (1, [{"err": 0, "msg": ""}]),
            (1, [5]),
            (1, [{"err": 1, "msg": "", "x": 1}]),
            (1, [{1: 1, "msg": ""}]),
        ]
        for n, body in bad:
            with self.subTest(body=body), self.assertRaises(cachesvc.ProtocolError):
                decode(codec.MGet([("q",)] * n), frame(0x84, 1, body))
        with self.assertRaises(cachesvc.ProtocolError):  # a non-str map key
            decode(codec.Stats(), frame(0x87, 1, raw=b"\x81\x91\x01\x02"))

    def test_small_replies(self):
        info = decode(codec.Hello(), frame(0x81, 1, {"v": 1, "server": "cachesvc/0.1", "max_frame": 1 << 20}))
        self.assertEqual(info, cachesvc.ServerInfo(1, "cachesvc/0.1", 1 << 20))
        self.assertIsNone(decode(codec.Ping(), frame(0x82, 1, None)))
        self.assertEqual(decode(codec.Stats(), frame(0x87, 1, {"hits": 3, "ratio": 0.5})), {"hits": 3, "ratio": 0.5})
        self.assertEqual(decode(codec.Invalidate("q", [1]), frame(0x86, 1, {"deleted": 1})), 1)
        self.assertEqual(decode(codec.InvalidateQuery("q"), frame(0x86, 1, {"generation": 9})), 9)
        bad = [
            (codec.Hello(), frame(0x81, 1, {"v": 1, "server": "s"})),
            (codec.Hello(), frame(0x81, 1, {"v": 1, "server": "s" * 65, "max_frame": 1})),
            (codec.Ping(), frame(0x82, 1, {})),
            (codec.Stats(), frame(0x87, 1, {"x": "y"})),
            (codec.Stats(), frame(0x87, 1, {"x" * 129: 1})),
            (codec.Stats(), frame(0x87, 1, {1: 1})),
            (codec.Invalidate("q", [1]), frame(0x86, 1, {"generation": 1})),
            (codec.InvalidateQuery("q"), frame(0x86, 1, {"deleted": 1})),
            (codec.InvalidateQuery("q"), frame(0x86, 1, {"generation": -1})),
        ]
        for req, data in bad:
            with self.subTest(req=req, data=data.hex()), self.assertRaises(cachesvc.ProtocolError):
                decode(req, data)



class AdminRequests(unittest.TestCase):
    """SHOW (0x08) and ADMIN (0x09), PROTOCOL.md 3.8 and 3.9: the requests, and strict
    decoding of their rows (any malformed reply is a protocol error)."""

    def enc(self, req):
        data = codec.encode_request(req, 3)
        return data[5], body_of(data)

    def test_requests(self):
        self.assertEqual(self.enc(codec.Show("queries")), (8, {"what": "queries"}))
        self.assertEqual(self.enc(codec.Admin("pause", "q1")), (9, {"op": "pause", "q": "q1"}))
        self.assertEqual(self.enc(codec.Admin("resume", "q1")), (9, {"op": "resume", "q": "q1"}))
        self.assertEqual(self.enc(codec.Admin("reload")), (9, {"op": "reload"}))
        # the exact bytes of a SHOW queries frame, as the C encoder writes them
        self.assertEqual(codec.encode_request(codec.Show("queries"), 1).hex(),
                         "0000000e010800000000000181a477686174a771756572696573")
        for bad in [codec.Show(""), codec.Show("v" * 65), codec.Show(None), codec.Admin(""),
                    codec.Admin("pause", ""), codec.Admin("pause", "q" * 65), codec.Admin(7)]:
            with self.subTest(req=bad), self.assertRaises(cachesvc.InvalidRequestError):
                codec.encode_request(bad, 1)
        codec.encode_request(codec.Show("v" * 64), 1)

    def test_rows(self):
        rows = [{"name": "q1", "params": "id:int8", "ttl_ms": 60000, "generation": None, "hits": 3,
                 "pending_bump": False, "ratio": 0.5, "new_column": "kept"},
                {"name": "q2", "later": -(2**63)}]
        self.assertEqual(decode(codec.Show("queries"), frame(0x88, 1, rows)), rows)
        self.assertEqual(codec.row_columns(rows), ["name", "params", "ttl_ms", "generation", "hits",
                                                   "pending_bump", "ratio", "new_column", "later"])
        self.assertEqual(decode(codec.Show("clients"), frame(0x88, 1, [])), [])
        self.assertEqual(decode(codec.Show("x"), frame(0x88, 1, [{}])), [{}])
        row = {"query": "q1", "paused": True, "changed": True}
        self.assertEqual(decode(codec.Admin("pause", "q1"), frame(0x89, 1, [row])), row)
        self.assertEqual(decode(codec.Admin("reload"), frame(0x89, 1, [{"reload": "applied", "queries": 2}])),
                         {"reload": "applied", "queries": 2})
        self.assertEqual(codec.decode_body(0x88, frame(0x88, 1, rows)[12:]), rows)
        self.assertEqual(codec.decode_body(0x89, frame(0x89, 1, [row])[12:]), [row])
        e = decode(codec.Show("nosuch"), error_reply(1, 2, "unknown view"))
        self.assertIsInstance(e, cachesvc.BadParamsError)
        self.assertIsInstance(decode(codec.Admin("pause", "q"), error_reply(1, 6, "admin token")), cachesvc.AuthError)

    def test_malformed_rows(self):
        show, admin = codec.Show("queries"), codec.Admin("pause", "q")
        bad = [
            (show, frame(0x88, 1, {"name": "q"})),  # not an array
            (show, frame(0x88, 1, None)),
            (show, frame(0x88, 1, [["q", 1]])),  # a row that is not a map
            (show, frame(0x88, 1, [{"a": [1]}])),  # a value that is not a scalar
            (show, frame(0x88, 1, [{"a": {"b": 1}}])),
            (show, frame(0x88, 1, [{"a": b"bin"}])),
            (show, frame(0x88, 1, [{"a": msgpack.Timestamp(1, 0)}])),
            (show, frame(0x88, 1, [{"a": 2**63}])),  # beyond int64
            (show, frame(0x88, 1, [{"k" * 129: 1}])),  # a column name over 128 bytes
            (show, frame(0x88, 1, raw=b"\x91\x81\x01\x02")),  # a non-str column name
            (show, frame(0x88, 1, raw=b"\x91\x82\xa1a\x01\xa1a\x02")),  # a column twice
            (show, frame(0x88, 1, raw=b"\x91\x81\xa1a\x01\x00")),  # trailing bytes
            (show, frame(0x89, 1, [])),  # ADMIN's opcode for a SHOW
            (admin, frame(0x88, 1, [{"query": "q"}])),  # SHOW's opcode for an ADMIN
            (admin, frame(0x89, 1, [])),  # ADMIN: exactly one row
            (admin, frame(0x89, 1, [{"a": 1}, {"a": 2}])),
            (admin, frame(0x89, 1, {"query": "q"})),
        ]
        for req, data in bad:
            with self.subTest(req=req, data=data.hex()), self.assertRaises(cachesvc.ProtocolError):
                decode(req, data)
        self.assertEqual(decode(show, frame(0x88, 1, [{"k" * 128: 1}])), [{"k" * 128: 1}])

    def test_row_cells_budget(self):
        rows = [{"a": i} for i in range(50)]  # 50 rows x 1 column = 100 keys and values
        data = frame(0x88, 1, rows)
        self.assertEqual(len(decode(codec.Show("v"), data, max_cells=100)), 50)
        with self.assertRaises(cachesvc.ProtocolError):
            decode(codec.Show("v"), data, max_cells=99)

class Backoff(unittest.TestCase):
    def test_capped_exponential_with_jitter(self):
        for attempt in range(70):
            d = min(2.0, 0.05 * 2**attempt)
            lo = codec.backoff_delay(attempt, 0.05, 2.0, lambda: 0.0)
            hi = codec.backoff_delay(attempt, 0.05, 2.0, lambda: 1.0)
            self.assertAlmostEqual(lo, d / 2)
            self.assertAlmostEqual(hi, d)
        rnd = random.Random(1)
        delays = {codec.backoff_delay(3, 0.05, 2.0, rnd.random) for _ in range(20)}
        self.assertGreater(len(delays), 1)  # jittered


class Addresses(unittest.TestCase):
    def test_forms(self):
        p = cachesvc.parse_address
        self.assertEqual(p("127.0.0.1:6380"), ("127.0.0.1", 6380, None))
        self.assertEqual(p("10.0.0.1"), ("10.0.0.1", 6380, None))
        self.assertEqual(p("[::1]:7"), ("::1", 7, None))
        self.assertEqual(p(("::1", 8)), ("::1", 8, None))
        self.assertEqual(p("unix:/tmp/s"), (None, 0, "/tmp/s"))
        self.assertEqual(p("/tmp/s"), (None, 0, "/tmp/s"))
        self.assertEqual(str(p("[::1]:7")), "[::1]:7")
        for bad in ["", "h:0", "h:70000", "h:x", "::1:5", "unix:", "[::1", 5]:
            with self.subTest(bad=bad), self.assertRaises(cachesvc.InvalidRequestError):
                p(bad)


if __name__ == "__main__":
    unittest.main()


class CellBudget(unittest.TestCase):
    def test_max_cells_refused_from_the_headers(self):
        rows = [[None]] * 11
        opts = codec.DecodeOptions(max_cells=10)
        with self.assertRaises(cachesvc.ProtocolError):
            codec.decode_reply(Get("q"), 0x83, typed_reply([("a", 2)], rows)[12:], opts)
        with self.assertRaises(cachesvc.ProtocolError):  # zero-column rows count 1 each
            codec.decode_reply(Get("q"), 0x83, typed_reply([], [[]] * 11)[12:], opts)
        r = codec.decode_reply(Get("q"), 0x83, typed_reply([("a", 2)], rows[:8])[12:], opts)
        self.assertEqual(len(r.rows), 8)  # 8 cells + the column's 2 values
        mget = frame(0x84, 1, [[meta(), result([("a", 2)], rows[:6])]] * 2)[12:]
        with self.assertRaises(cachesvc.ProtocolError):  # summed over the items
            codec.decode_reply(codec.MGet([Get("q"), Get("q")]), 0x84, mget, opts)
        self.assertEqual(len(codec.decode_reply(codec.MGet([Get("q"), Get("q")]), 0x84, mget)), 2)
        # the default: a million
        self.assertEqual(codec.DEFAULT_OPTIONS.max_cells, 1_000_000)
        big = typed_reply([("a", 2)], [[None]] * 1_000_001)[12:]
        with self.assertRaises(cachesvc.ProtocolError):
            codec.decode_reply(Get("q"), 0x83, big)
        with self.assertRaises(ValueError):
            codec.DecodeOptions(max_cells=0)


class Secrets(unittest.TestCase):
    def test_hello_repr_hides_the_token(self):
        h = codec.Hello("me", "s3cret-token")
        self.assertNotIn("s3cret-token", repr(h))
        self.assertEqual(h.token, "s3cret-token")
        self.assertIn(b"s3cret-token", codec.encode_request(h, 1))
