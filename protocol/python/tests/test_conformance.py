"""Every case of protocol/conformance/frames.json (see its README.md) through the Python
codec.

reply cases (what a client decodes):
  valid      the FrameReader yields exactly one frame with the case's opcode and id; the
             body's msgpack, in the file's JSON form, equals ``frame.body``; and the typed
             decoding (decode_body) agrees with it value by value (meta, columns, cells
             converted by column type, error codes and messages, STATS, HELLO, ...).
  error      the reader or the decoder refuses the frame with a ProtocolError of the case's
             code; nothing else escapes.
  truncated  the reader wants more bytes; the body decoder refuses the cut-off body.
request cases (what a client encodes):
  valid      the request built from ``frame.body`` with the client's API encodes to a frame
             with the case's opcode and id whose body equals ``frame.body`` (defaults filled
             in), byte for byte where the body spells no default out.
  error      when the request can be expressed through the API at all (same wire types),
             the encoder refuses it before sending (InvalidRequestError/TooLargeError);
             frames the API cannot produce (bad headers, unknown keys, ...) are counted as
             not expressible.
"""

import datetime as dt
import decimal
import json
import os
import unittest

from helpers import HDR  # noqa: F401 (sets sys.path)

import msgpack

import cachesvc
from cachesvc import codec

HERE = os.path.dirname(os.path.abspath(__file__))
FRAMES = os.environ.get("CS_CONFORMANCE", os.path.join(HERE, "..", "..", "conformance", "frames.json"))
UTC = dt.timezone.utc

# Cases this client knowingly disagrees with, by name (none). A listed case must still
# disagree, so the list shrinks when the code is fixed.
KNOWN_DISAGREEMENTS = set()


def load_cases():
    with open(FRAMES, encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("format") != 1:
        raise AssertionError(f"{FRAMES}: format {doc.get('format')}, this test reads format 1")
    return doc["cases"]


# ---- msgpack values <-> the file's JSON form --------------------------------------------------------


def to_json(v):
    """A decoded msgpack value (maps as codec._Pairs) in the conformance JSON form."""
    if isinstance(v, codec._Pairs):
        return {k: to_json(x) for k, x in v}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if abs(v) <= 2**53 else {"int": str(v)}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, bytes):
        return {"bin": v.hex()}
    if isinstance(v, msgpack.Timestamp):
        return {"ts": {"sec": to_json(v.seconds), "nsec": v.nanoseconds}}
    if isinstance(v, msgpack.ExtType):
        return {"ext": v.code, "hex": v.data.hex()}
    raise AssertionError(f"unexpected decoded type {type(v)}")


def from_json(v):
    """A JSON-form value -> the Python value the client's API takes (wrapped forms unwrapped)."""
    if isinstance(v, dict):
        if set(v) == {"int"}:
            return int(v["int"])
        if set(v) == {"float"}:
            return float(v["float"])
        if set(v) == {"bin"}:
            return bytes.fromhex(v["bin"])
        if set(v) == {"ts"}:
            return msgpack.Timestamp(from_json(v["ts"]["sec"]), v["ts"]["nsec"])
        if set(v) == {"ext", "hex"}:
            return msgpack.ExtType(v["ext"], bytes.fromhex(v["hex"]))
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


def expected_cell(v, coltype):
    """What the typed decoder must give for a JSON-form cell of a column type."""
    if v is None:
        return None
    x = from_json(v)
    if isinstance(x, msgpack.Timestamp):
        aware = coltype != codec.ColumnType.TIMESTAMP
        if x.nanoseconds == 0 and x.seconds in (2**63 - 1, -(2**63)):  # +-infinity
            inf = dt.datetime.max if x.seconds > 0 else dt.datetime.min
            return inf.replace(tzinfo=UTC) if aware else inf
        base = dt.datetime(1970, 1, 1, tzinfo=UTC if aware else None)
        return base + dt.timedelta(seconds=x.seconds, microseconds=x.nanoseconds // 1000)
    if isinstance(x, str) and coltype == codec.ColumnType.NUMERIC:
        return decimal.Decimal(x)
    if isinstance(x, str) and coltype == codec.ColumnType.JSON:
        return json.loads(x)
    return x


def same(a, b):
    if isinstance(a, decimal.Decimal) and isinstance(b, decimal.Decimal):
        return (a.is_nan() and b.is_nan()) or (a == b and str(a) == str(b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return type(a) is type(b) and a == b


# ---- typed checks of valid replies ---------------------------------------------------------------------


def check_result(t, r, body):
    meta, (cols, rows) = body
    t.assertIsInstance(r, cachesvc.Result)
    t.assertEqual(r.meta.source, meta["src"])
    t.assertEqual(r.meta.lsn, from_json(meta["lsn"]))
    t.assertEqual(r.meta.age_ms, from_json(meta["age"]))
    t.assertIs(r.meta.stale, meta["stale"])
    t.assertEqual(r.meta.stored, meta.get("stored"))
    t.assertEqual([(c.name, int(c.type)) for c in r.columns], [(n, ty) for n, ty in cols])
    for c in r.columns:
        t.assertEqual(c.type_name, codec._TYPE_NAMES.get(int(c.type), "other"))
    t.assertEqual(len(r.rows), len(rows))
    for got, want in zip(r.rows, rows):
        for g, w, (_n, ty) in zip(got, want, cols):
            e = expected_cell(w, ty)
            t.assertTrue(same(g, e), f"cell {w!r} of type {ty}: got {g!r}, want {e!r}")


def check_error(t, e, body, code_key="code"):
    t.assertIsInstance(e, cachesvc.ServerError)
    t.assertEqual(e.code, body[code_key])
    t.assertEqual(e.message, body["msg"])
    t.assertEqual(e.name, cachesvc.ERROR_NAMES.get(body[code_key], "internal"))
    if body[code_key] not in cachesvc.ERROR_NAMES:
        t.assertIsInstance(e, cachesvc.InternalError)


def check_typed(t, opcode, value, body):
    op = opcode & 0x7F if opcode != 0xFF else 0xFF
    if op == 0xFF:
        check_error(t, value, body)
    elif op in (3, 5):
        check_result(t, value, body)
    elif op == 4:
        t.assertEqual(len(value), len(body))
        for got, want in zip(value, body):
            if isinstance(want, dict):
                check_error(t, got, want, "code" if "code" in want else "err")
            else:
                check_result(t, got, want)
    elif op == 1:
        t.assertEqual(value, cachesvc.ServerInfo(body["v"], body["server"], body["max_frame"]))
    elif op == 2:
        t.assertIsNone(value)
    elif op == 6:
        t.assertEqual(value, from_json(next(iter(body.values()))))
    elif op == 7:
        want = {k: from_json(v) for k, v in body.items()}
        t.assertEqual(value, want)
        for k in value:
            t.assertIs(type(value[k]), type(want[k]))
    else:
        t.fail(f"opcode {opcode:#x}")


# ---- requests from bodies -------------------------------------------------------------------------------


class NotExpressible(Exception):
    pass


GET_KEYS = ("q", "p", "tier", "lsn", "shard", "bypass")


def build_get(m, cls=codec.Get):
    """A Get from a decoded GET map, only when the API can express it with the same wire
    types (else NotExpressible)."""
    if not isinstance(m, dict) or not set(m) <= set(GET_KEYS) or "q" not in m:
        raise NotExpressible("keys")
    tier, lsn, bypass = m.get("tier"), m.get("lsn", 0), m.get("bypass", False)
    if "p" in m and not isinstance(m["p"], list):
        raise NotExpressible("p not an array")
    if tier is not None and (type(tier) is not int):
        raise NotExpressible("tier type")
    if type(lsn) is not int or type(bypass) is not bool:
        raise NotExpressible("lsn/bypass type")
    if "shard" in m:
        # the API takes a token naming its shard as text: SHARD:X/Y (checked when encoding)
        if type(m["shard"]) is not str or not 0 <= lsn < 2**64:
            raise NotExpressible("shard type")
        lsn = m["shard"] + ":" + codec.format_lsn(lsn)
    return cls(m["q"], m.get("p", []), tier, lsn, bypass)


def build_request(opcode, body):
    if opcode in (2, 7):
        if body not in (None, {}):
            raise NotExpressible("arguments to PING/STATS")
        return codec.Ping() if opcode == 2 else codec.Stats()
    if opcode in (3, 5):
        return build_get(body, codec.Get if opcode == 3 else codec.Refresh)
    if opcode == 4:
        if not isinstance(body, list):
            raise NotExpressible("MGET body")
        return codec.MGet([build_get(m) for m in body])
    if opcode == 6:
        if not isinstance(body, dict) or not set(body) <= {"q", "p"} or "q" not in body:
            raise NotExpressible("INVALIDATE keys")
        if "p" in body:
            if not isinstance(body["p"], list):
                raise NotExpressible("p")
            return codec.Invalidate(body["q"], body["p"])
        return codec.InvalidateQuery(body["q"])
    if opcode == 1:
        if not isinstance(body, dict) or not set(body) <= {"v", "client", "token"} or not {"v", "client"} <= set(body):
            raise NotExpressible("HELLO keys")
        if type(body["v"]) is not int:
            raise NotExpressible("v type")
        return codec.Hello(body["client"], body.get("token"), body["v"])
    raise NotExpressible(f"opcode {opcode}")


def with_defaults(opcode, body):
    """A request body with the defaults of absent optional GET keys filled in."""
    def fill(m):
        out = {"q": m["q"], "p": m.get("p", []), "tier": m.get("tier", 1), "lsn": m.get("lsn", 0),
               "bypass": m.get("bypass", False)}
        if "shard" in m:  # no default: compared only when present
            out["shard"] = m["shard"]
        return out
    if opcode in (3, 5):
        return fill(body)
    if opcode == 4:
        return [fill(m) for m in body]
    if opcode in (2, 7):
        return None  # nil and {} both mean "no arguments"
    return body


def strict_unpack(body):
    """A request body as the server would see it, or NotExpressible."""
    try:
        codec.check_body(body)
        v = msgpack.unpackb(body, raw=False, strict_map_key=False, object_pairs_hook=codec._Pairs)
    except Exception as e:  # noqa: BLE001
        raise NotExpressible(f"body: {e}") from None

    def plain(x):
        if isinstance(x, codec._Pairs):
            keys = [k for k, _ in x]
            if len(set(map(repr, keys))) != len(keys) or not all(isinstance(k, str) for k in keys):
                raise NotExpressible("duplicate or non-str key")
            return {k: plain(y) for k, y in x}
        if isinstance(x, list):
            return [plain(y) for y in x]
        return x

    return plain(v)


class Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cases = load_cases()

    def run_cases(self, direction, fn):
        names = [c["name"] for c in self.cases]
        self.assertEqual(len(names), len(set(names)), "case names are not unique")
        counts = {}
        for case in self.cases:
            if case["dir"] != direction:
                continue
            with self.subTest(case=case["name"]):
                if case["name"] in KNOWN_DISAGREEMENTS:
                    with self.assertRaises(AssertionError, msg=f"{case['name']} agrees now: unlist it"):
                        fn(case)
                    counts["known disagreement"] = counts.get("known disagreement", 0) + 1
                    continue
                kind = fn(case)
                counts[kind] = counts.get(kind, 0) + 1
        return counts

    # ---- replies -----------------------------------------------------------------------------

    def reply_case(self, case):
        data = bytes.fromhex(case["hex"])
        if case.get("truncated"):
            r = codec.FrameReader()
            r.feed(data)
            self.assertIsNone(r.next(), "a cut-off frame produced a frame")
            if len(data) >= 12:
                with self.assertRaises(cachesvc.ProtocolError) as cm:
                    v = codec.decode_body(data[5], data[12:])
                    if isinstance(v, cachesvc.ServerError):
                        raise AssertionError("decoded an error reply from a cut-off body")
                self.assertEqual(cm.exception.code, case["error"]["code"])
            return "truncated"
        if "frame" in case:
            fr = case["frame"]
            r = codec.FrameReader()
            r.feed(data)
            f = r.next()
            self.assertIsNotNone(f, "no frame")
            self.assertEqual(r.pending(), 0, "bytes left over")
            self.assertEqual((f.opcode, f.reqid), (fr["opcode"], fr["id"]))
            self.assertEqual(to_json(codec.unpack_body(f.body)), fr["body"])
            check_typed(self, f.opcode, codec.decode_body(f.opcode, f.body), fr["body"])
            return "valid"
        want = case["error"]["code"]
        self.assertEqual(want, 7, "a client refuses replies only with protocol errors")
        with self.assertRaises(cachesvc.ProtocolError) as cm:
            r = codec.FrameReader()
            r.feed(data)
            f = r.next()
            if f is None:
                raise AssertionError("the reader wants more bytes: the frame was not refused")
            v = codec.decode_body(f.opcode, f.body)
            raise AssertionError(f"accepted: {v!r}")
        self.assertEqual((cm.exception.code, cm.exception.name), (want, case["error"]["name"]))
        return "refused"

    def test_replies(self):
        counts = self.run_cases("reply", self.reply_case)
        if os.environ.get("CS_VERBOSE"):
            print("reply cases:", counts)
        self.assertGreater(counts.get("valid", 0), 20, counts)
        self.assertGreater(counts.get("refused", 0), 15, counts)

    # ---- requests ----------------------------------------------------------------------------

    def request_case(self, case):
        data = bytes.fromhex(case["hex"])
        if "frame" in case:
            fr = case["frame"]
            body = from_json(fr["body"])
            req = build_request(fr["opcode"], body)
            out = codec.encode_request(req, fr["id"])
            length, version, opcode, flags, reqid = HDR.unpack(out[:12])
            self.assertEqual((length, version, opcode, flags, reqid), (len(out) - 12, 1, fr["opcode"], 0, fr["id"]))
            got = msgpack.unpackb(out[12:], raw=False, timestamp=0)
            self.assertEqual(with_defaults(opcode, got), with_defaults(opcode, body))
            if out != data:
                # only a body that spells out a default may differ in bytes
                self.assertNotEqual(codec.encode_frame(opcode, reqid, out[12:]), data)
                return "valid (structure)"
            return "valid (bytes)"
        if case.get("truncated"):
            return "truncated (server side only)"
        if len(data) < 12:
            return "not expressible"
        length, version, opcode, flags, _ = HDR.unpack(data[:12])
        if version != 1 or flags != 0 or length != len(data) - 12 or not 1 <= opcode <= 7 or length == 0:
            return "not expressible"
        try:
            req = build_request(opcode, strict_unpack(data[12:]))
        except NotExpressible:
            return "not expressible"
        except ValueError:  # e.g. a timestamp msgpack-python itself refuses to build
            return "not expressible"
        with self.assertRaises((cachesvc.InvalidRequestError, cachesvc.TooLargeError)):
            codec.encode_request(req, 1)
        return "refused by the encoder"

    def test_requests(self):
        counts = self.run_cases("request", self.request_case)
        if os.environ.get("CS_VERBOSE"):
            print("request cases:", counts)
        self.assertGreater(counts.get("valid (bytes)", 0), 15, counts)
        self.assertGreater(counts.get("refused by the encoder", 0), 10, counts)


if __name__ == "__main__":
    unittest.main()
