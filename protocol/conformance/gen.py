#!/usr/bin/python3
"""Generates frames.json, the language-neutral conformance cases of the cachesvc protocol.

Run with Debian's interpreter and python3-msgpack:

    /usr/bin/python3 protocol/conformance/gen.py            # rewrites frames.json
    /usr/bin/python3 protocol/conformance/gen.py --check    # exit 1 if frames.json is stale

The format is documented in README.md next to this file; the wire format in
protocol/PROTOCOL.md. Valid cases are encoded by msgpack-python, which always picks the
shortest form (and float64 for floats); the hostile cases are built byte by byte.
"""
import json
import os
import struct
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "frames.json")

HELLO, PING, GET, MGET, REFRESH, INVALIDATE, STATS = range(1, 8)
REPLY = 0x80
ERROR = 0xFF
MAX_REPLY = 64 << 20
MAX_REQUEST = 1 << 20

ERR_NAMES = {
    1: "unknown_query", 2: "bad_params", 3: "overloaded", 4: "unavailable", 5: "too_large",
    6: "auth", 7: "protocol", 8: "internal", 9: "timeout", 10: "shutting_down",
    11: "future_lsn", 12: "no_shard",
}

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True, strict_types=False)


def header(opcode, reqid, body_len, version=1, flags=0):
    return struct.pack(">IBBHI", body_len, version, opcode, flags, reqid)


def to_json(v):
    """A msgpack value in the JSON form described in README.md."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v if abs(v) <= (1 << 53) else {"int": str(v)}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, bytes):
        return {"bin": v.hex()}
    if isinstance(v, msgpack.Timestamp):
        return {"ts": {"sec": to_json(v.seconds), "nsec": v.nanoseconds}}
    if isinstance(v, msgpack.ExtType):
        return {"ext": v.code, "hex": v.data.hex()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        for k in v:
            assert isinstance(k, str), k
        return {k: to_json(x) for k, x in v.items()}
    raise TypeError(type(v))


cases = []
names = set()


def add(case):
    assert case["name"] not in names, case["name"]
    names.add(case["name"])
    cases.append(case)


def valid(name, direction, opcode, reqid, body, expect_hex=None):
    raw = pack(body)
    hexs = (header(opcode, reqid, len(raw)) + raw).hex()
    if expect_hex is not None:
        assert hexs == expect_hex, (name, hexs, expect_hex)
    add({"name": name, "dir": direction, "hex": hexs,
         "frame": {"opcode": opcode, "id": reqid, "body": to_json(body)}})


def refused(name, direction, data, code, why, truncated=False):
    c = {"name": name, "dir": direction, "hex": data.hex()}
    if truncated:
        c["truncated"] = True
    c["error"] = {"code": code, "name": ERR_NAMES[code], "why": why}
    add(c)


def frame(opcode, reqid, body, **kw):
    """Header + body bytes, the header's length taken from the body."""
    return header(opcode, reqid, len(body), **kw) + body


def protocol(name, direction, data, why, truncated=False):
    refused(name, direction, data, 7, why, truncated)


def hexbytes(s):
    return bytes.fromhex("".join(s.split()))


# ---- Values used below -------------------------------------------------------------------
TS4 = msgpack.Timestamp(1700000000, 0)            # 4-byte form: u32 seconds
TS8 = msgpack.Timestamp(1700000000, 123456789)    # 8-byte form: 30-bit nsec, 34-bit sec
TS12 = msgpack.Timestamp(-1, 500000000)           # 12-byte form: before the epoch
TS12B = msgpack.Timestamp(1 << 34, 1)             # 12-byte form: seconds beyond 34 bits

# ---- Requests ----------------------------------------------------------------------------
# Section 8 worked example, verbatim.
valid("PROTOCOL.md 8: GET user_profile [\"42\"]", "request", GET, 1,
      {"q": "user_profile", "p": ["42"]},
      expect_hex=("00000016 01 03 0000 00000001 82 a171 ac757365725f70726f66696c65 a170 91a23432"
                  .replace(" ", "")))

valid("HELLO without token", "request", HELLO, 1, {"v": 1, "client": "app-py/0.1"})
valid("HELLO with token", "request", HELLO, 2, {"v": 1, "client": "svc", "token": "s3cret"})
valid("HELLO client name 64 bytes, token 256 bytes", "request", HELLO, 3,
      {"v": 1, "client": "c" * 64, "token": "t" * 256})
valid("HELLO v above 1 (a newer client)", "request", HELLO, 4, {"v": 7, "client": "next"})
valid("PING nil", "request", PING, 5, None)
valid("PING empty map", "request", PING, 6, {})
valid("STATS nil", "request", STATS, 7, None)
valid("STATS empty map", "request", STATS, 8, {})
valid("GET q only", "request", GET, 9, {"q": "users_by_id"})
valid("GET q and empty p", "request", GET, 10, {"q": "count_users", "p": []})
valid("GET all keys", "request", GET, 11,
      {"q": "orders", "p": [42, "x"], "tier": 0, "lsn": 0x16B374D848, "bypass": True})
valid("GET tier 2, lsn above 2^53, bypass false", "request", GET, 12,
      {"q": "q", "p": [], "tier": 2, "lsn": (1 << 64) - 1, "bypass": False})
valid("GET every value kind as a parameter", "request", GET, 13,
      {"q": "kinds", "p": [None, True, False, -1, INT64_MIN, INT64_MAX, 1.5, "text",
                           b"\x00\xff", TS4, TS8, TS12, TS12B]})
valid("GET 16 parameters (the limit)", "request", GET, 14, {"q": "p16", "p": list(range(16))})
valid("GET query name 64 bytes (the limit)", "request", GET, 15, {"q": "n" * 64})
valid("GET request id 0xFFFFFFFF", "request", GET, 0xFFFFFFFF, {"q": "a"})
valid("REFRESH tier 2 (warm-up)", "request", REFRESH, 16, {"q": "user_profile", "p": [7], "tier": 2})
valid("MGET empty", "request", MGET, 17, [])
valid("MGET three items", "request", MGET, 18,
      [{"q": "user_profile", "p": ["42"]}, {"q": "orders", "p": [1], "tier": 0},
       {"q": "count_users", "lsn": 100, "bypass": True}])
# Read-your-writes tokens that name their shard ("s1:0/16B3748"): "shard" beside "lsn".
valid("PROTOCOL.md 3.3: GET with the token s1:0/16B3748", "request", GET, 5,
      {"q": "user_profile", "p": ["42"], "lsn": 0x16B3748, "shard": "s1"},
      expect_hex=("00000028 01 03 0000 00000005 84 a171 ac757365725f70726f66696c65 a170 91a23432"
                  " a36c736e ce016b3748 a57368617264 a27331").replace(" ", ""))
valid("GET all keys with shard", "request", GET, 23,
      {"q": "orders", "p": [42, "x"], "tier": 0, "lsn": 0x16B374D848, "shard": "eu-west_2.a",
       "bypass": True})
valid("GET shard name 64 bytes (the limit)", "request", GET, 24,
      {"q": "a", "lsn": 1, "shard": "S" * 64})
valid("REFRESH token with shard", "request", REFRESH, 25,
      {"q": "user_profile", "p": [7], "lsn": 0x16B3748, "shard": "s2"})
valid("MGET items with and without shard", "request", MGET, 26,
      [{"q": "user_profile", "p": ["42"], "lsn": 0x16B3748, "shard": "s1"},
       {"q": "user_profile", "p": ["43"], "lsn": 0x16B3748},
       {"q": "orders", "p": [1], "lsn": (1 << 64) - 1, "shard": "s2"}])
valid("INVALIDATE one key (with p)", "request", INVALIDATE, 19, {"q": "user_profile", "p": ["42"]})
valid("INVALIDATE zero-parameter key (p empty)", "request", INVALIDATE, 20,
      {"q": "count_users", "p": []})
valid("INVALIDATE whole query (without p)", "request", INVALIDATE, 21, {"q": "user_profile"})

# Well-formed requests carrying a value no parameter can take: bad_params, connection stays.
def bad_params(name, opcode, reqid, body, why):
    raw = pack(body)
    refused(name, "request", frame(opcode, reqid, raw), 2, why)

bad_params("GET tier 3", GET, 30, {"q": "a", "tier": 3}, "tier above 2 is bad_params, not protocol")
bad_params("GET parameter above INT64_MAX", GET, 31, {"q": "a", "p": [INT64_MAX + 1]},
           "an integer above INT64_MAX fits no parameter")
bad_params("GET parameter is an array", GET, 32, {"q": "a", "p": [[1, 2]]},
           "arrays and maps are not parameter values")
bad_params("GET parameter is a map", GET, 33, {"q": "a", "p": [{"k": 1}]},
           "arrays and maps are not parameter values")
bad_params("GET parameter is ext type 5", GET, 34, {"q": "a", "p": [msgpack.ExtType(5, b"\x01")]},
           "only ext type -1 (timestamp) is a value")
def get_with_raw_param(raw_param):
    return b"\x82" + pack("q") + pack("a") + pack("p") + b"\x91" + raw_param

refused("GET timestamp ext of 6 bytes", "request",
        frame(GET, 35, get_with_raw_param(b"\xc7\x06\xff" + b"\x00" * 6)), 2,
        "a timestamp ext (type -1) must be 4, 8 or 12 bytes")
refused("GET timestamp nanoseconds 1000000000", "request",
        frame(GET, 36, get_with_raw_param(b"\xc7\x0c\xff" + struct.pack(">Iq", 1000000000, 0))),
        2, "timestamp nanoseconds above 999999999")
bad_params("GET shard without lsn", GET, 38, {"q": "a", "shard": "s1"},
           "a shard names where a token's LSN is: without an lsn it means nothing")
bad_params("GET shard with lsn 0", GET, 39, {"q": "a", "lsn": 0, "shard": "s1"},
           "lsn 0 is no token, so a shard beside it means nothing")
bad_params("GET shard name with a colon", GET, 42, {"q": "a", "lsn": 1, "shard": "s:1"},
           "shard names are A-Z a-z 0-9 _ . - (a configured shard's rule)")
bad_params("GET shard name with a space", GET, 43, {"q": "a", "lsn": 1, "shard": "s 1"},
           "shard names are A-Z a-z 0-9 _ . -")
bad_params("MGET item 2 has shard without lsn", MGET, 44,
           [{"q": "a"}, {"q": "b", "lsn": 5, "shard": "s1"}, {"q": "c", "shard": "s1"}],
           "a well-formed item with an unusable value fails the whole MGET with bad_params")
bad_params("MGET item 1 has tier 3", MGET, 37, [{"q": "a"}, {"q": "b", "tier": 3}],
           "a well-formed item with an unusable value fails the whole MGET with bad_params")

# Malformed or limit-breaking requests: protocol error, the server closes.
def p_req(name, opcode, body, why, reqid=40):
    protocol(name, "request", frame(opcode, reqid, body), why)

protocol("request version byte 2", "request", frame(PING, 1, b"\xc0", version=2),
         "version != 1 (section 1)")
protocol("request version byte 0", "request", frame(PING, 1, b"\xc0", version=0),
         "version != 1 (section 1)")
protocol("request flags 0x0001", "request", frame(PING, 1, b"\xc0", flags=1),
         "reserved flags must be 0 (section 1)")
protocol("request flags 0x8000", "request", frame(PING, 1, b"\xc0", flags=0x8000),
         "reserved flags must be 0 (section 1)")
protocol("request body length 0", "request", frame(PING, 1, b""),
         "an empty body is a protocol error (section 1)")
protocol("request body over 1 MiB (header only)", "request", header(GET, 1, MAX_REQUEST + 1),
         "refused from the header alone: body length above the server's default 1 MiB limit")
p_req("request opcode 0x00", 0x00, b"\xc0", "unknown opcode")
p_req("request opcode 0x0a", 0x0a, b"\xc0", "unknown opcode")
p_req("request opcode 0x83 (a reply opcode)", 0x83, pack({"q": "a"}), "unknown request opcode")
p_req("PING trailing byte after nil", PING, b"\xc0\xc0", "bytes left after the body's one object")
p_req("GET trailing byte after the map", GET, pack({"q": "a"}) + b"\xc0",
      "bytes left after the body's one object")
p_req("PING body is a map with a key", PING, pack({"x": 1}), "PING body must be nil or an empty map")
p_req("PING body is 0", PING, b"\x00", "PING body must be nil or an empty map")
protocol("GET truncated frame (declared 22 bytes, 10 given)", "request",
         header(GET, 1, 22) + pack({"q": "user_profile", "p": ["42"]})[:10],
         "declared body length longer than the bytes given", truncated=True)
protocol("PING truncated header (8 bytes)", "request", header(PING, 1, 1)[:8],
         "fewer than 12 header bytes", truncated=True)
p_req("MGET array32 with a huge count in a 5-byte body", MGET, hexbytes("dd ff 00 00 00"),
      "an array count larger than the bytes remaining is refused before allocating (section 7)")
p_req("GET map32 with a huge count", GET, hexbytes("df 7f ff ff ff"),
      "a map count (2 x count) larger than the bytes remaining (section 7)")
p_req("GET str8 length beyond the body", GET, hexbytes("81 a1 71 d9 40 61"),
      "a str length larger than the bytes remaining (section 7)")
p_req("GET str32 length 4 GiB", GET, hexbytes("81 a1 71 db ff ff ff ff 61"),
      "a str length larger than the bytes remaining (section 7)")
p_req("GET bin32 parameter length beyond the body", GET,
      hexbytes("82 a1 71 a1 61 a1 70 91 c6 00 01 00 00 00"),
      "a bin length larger than the bytes remaining (section 7)")
p_req("GET object cut short (map of 2, one pair)", GET, hexbytes("82 a1 71 a1 61"),
      "the body ends inside its object")
p_req("GET reserved byte 0xc1", GET, hexbytes("81 a1 71 c1"), "0xc1 is never valid msgpack")
p_req("GET nesting depth 9", GET, pack({"q": "a", "p": [[[[[[[1]]]]]]]}),
      "the body is depth 1; an object at depth 9 breaks the limit of 8 (section 7)")
bad_params("GET nesting depth 8 (the limit) in a parameter", GET, 41,
           {"q": "a", "p": [[[[[[1]]]]]]},
           "depth 8 is within the limit, so the array parameter is merely bad_params")
p_req("GET 17 parameters", GET, pack({"q": "a", "p": [None] * 17}),
      "more than 16 parameters (section 7)")
p_req("GET query name 0 bytes", GET, pack({"q": ""}), "query names are 1..64 bytes")
p_req("GET query name 65 bytes", GET, pack({"q": "n" * 65}), "query names are 1..64 bytes")
p_req("GET without q", GET, pack({"p": [1]}), "\"q\" is required")
p_req("GET q is not a str", GET, pack({"q": 1}), "\"q\" must be a str")
p_req("GET p is not an array", GET, pack({"q": "a", "p": "x"}), "\"p\" must be an array")
p_req("GET tier is negative", GET, pack({"q": "a", "tier": -1}), "\"tier\" must be a uint")
p_req("GET lsn is a str", GET, pack({"q": "a", "lsn": "0/1"}), "\"lsn\" must be a uint")
p_req("GET shard is an int", GET, pack({"q": "a", "lsn": 1, "shard": 1}),
      "\"shard\" must be a str")
p_req("GET shard is nil", GET, pack({"q": "a", "lsn": 1, "shard": None}),
      "\"shard\" must be a str (absent, not nil, when there is none)")
p_req("GET shard name 0 bytes", GET, pack({"q": "a", "lsn": 1, "shard": ""}),
      "shard names are 1..64 bytes (section 7)")
p_req("GET shard name 65 bytes", GET, pack({"q": "a", "lsn": 1, "shard": "S" * 65}),
      "shard names are 1..64 bytes (section 7)")
p_req("GET shard is bin", GET, pack({"q": "a", "lsn": 1, "shard": b"s1"}),
      "\"shard\" must be a str")
p_req("GET duplicate key shard", GET,
      hexbytes("84 a1 71 a1 61 a3 6c 73 6e 01 a5 73 68 61 72 64 a2 73 31 a5 73 68 61 72 64 a2 73 32"),
      "a duplicate key is a protocol error (3)")
p_req("GET bypass is 1", GET, pack({"q": "a", "bypass": 1}), "\"bypass\" must be a bool")
p_req("GET body is an array", GET, pack(["a"]), "a GET body must be a map")
p_req("GET unknown key", GET, pack({"q": "a", "x": 1}), "an unknown key is a protocol error (3)")
p_req("GET duplicate key", GET, hexbytes("82 a1 71 a1 61 a1 71 a1 62"),
      "a duplicate key is a protocol error (3)")
p_req("GET key is not a str", GET, hexbytes("82 a1 71 a1 61 01 02"), "keys are str")
p_req("HELLO client name 65 bytes", HELLO, pack({"v": 1, "client": "c" * 65}),
      "HELLO client names are at most 64 bytes")
p_req("HELLO token 257 bytes", HELLO, pack({"v": 1, "client": "c", "token": "t" * 257}),
      "HELLO tokens are at most 256 bytes")
p_req("HELLO without client", HELLO, pack({"v": 1}), "\"client\" is required")
p_req("HELLO without v", HELLO, pack({"client": "c"}), "\"v\" is required")
p_req("HELLO v above 2^32-1", HELLO, pack({"v": 1 << 32, "client": "c"}), "\"v\" is a u32")
p_req("HELLO unknown key", HELLO, pack({"v": 1, "client": "c", "user": "u"}), "unknown key")
p_req("MGET 257 items", MGET, pack([{"q": "a"}] * 257), "more than 256 MGET items (section 7)")
p_req("MGET body is a map", MGET, pack({"q": "a"}), "an MGET body is an array of GET maps")
p_req("MGET item 1 has an unknown key", MGET, pack([{"q": "a"}, {"q": "b", "x": 1}]),
      "a malformed item makes the whole MGET a protocol error")
p_req("MGET item 0 nesting depth 9", MGET, pack([{"q": "a", "p": [[[[[[1]]]]]]}]),
      "items sit at depth 2, so this parameter reaches depth 9")
p_req("INVALIDATE unknown key tier", INVALIDATE, pack({"q": "a", "tier": 1}),
      "INVALIDATE takes only q and p")
p_req("INVALIDATE without q", INVALIDATE, pack({"p": []}), "\"q\" is required")
p_req("INVALIDATE 17 parameters", INVALIDATE, pack({"q": "a", "p": [1] * 17}),
      "more than 16 parameters")

# ---- Replies -----------------------------------------------------------------------------
META_CACHE = {"src": 0, "lsn": 0x16B374D848, "age": 1500, "stale": False}

# Section 8 worked examples, verbatim.
valid("PROTOCOL.md 8: GET reply from the cache", "reply", REPLY | GET, 1,
      [META_CACHE, [[["id", 2], ["name", 4]], [[42, "ann"]]]],
      expect_hex=("00000037 01 83 0000 00000001 92"
                  " 84 a3737263 00 a36c736e cf00000016b374d848 a3616765 cd05dc a57374616c65 c2"
                  " 92 92 92a2696402 92a46e616d6504 91 922aa3616e6e").replace(" ", ""))
valid("PROTOCOL.md 8: error reply unknown_query", "reply", ERROR, 2,
      {"code": 1, "msg": 'no query "x"'},
      expect_hex=("00000018 01 ff 0000 00000002"
                  " 82 a4636f646501 a36d7367 ac6e6f207175657279202278 22").replace(" ", ""))

valid("HELLO reply", "reply", REPLY | HELLO, 1,
      {"v": 1, "server": "cachesvc 0.1.0", "max_frame": MAX_REQUEST})
valid("PING reply", "reply", REPLY | PING, 5, None)
valid("GET reply from a replica", "reply", REPLY | GET, 3,
      [{"src": 1, "lsn": 0x3000060, "age": 0, "stale": False}, [[["n", 2]], [[7]]]])
valid("GET reply from the primary", "reply", REPLY | GET, 4,
      [{"src": 2, "lsn": 0x16B374D848, "age": 12, "stale": False}, [[["n", 2]], [[8]]]])
valid("GET reply stale", "reply", REPLY | GET, 5,
      [{"src": 0, "lsn": 1, "age": 90000, "stale": True}, [[["n", 2]], [[9]]]])
valid("GET reply lsn above 2^53", "reply", REPLY | GET, 6,
      [{"src": 0, "lsn": (1 << 64) - 1, "age": 1, "stale": False}, [[["n", 2]], []]])
valid("GET reply no rows", "reply", REPLY | GET, 7,
      [{"src": 1, "lsn": 5, "age": 0, "stale": False}, [[["id", 2], ["name", 4]], []]])
valid("GET reply no columns", "reply", REPLY | GET, 8,
      [{"src": 1, "lsn": 5, "age": 0, "stale": False}, [[], [[], []]]])
ALL_COLS = [["b", 1], ["i", 2], ["f", 3], ["t", 4], ["y", 5], ["ts", 6], ["tz", 7], ["num", 8],
            ["j", 9], ["o", 10], ["u", 11], ["u255", 255]]
valid("GET reply every column type 1..10 and unknown 11, 255", "reply", REPLY | GET, 9,
      [{"src": 2, "lsn": 0x2A, "age": 3, "stale": False},
       [ALL_COLS,
        [[True, INT64_MIN, 3.25, "héllo", b"\xde\xad\xbe\xef", TS4, TS8,
          "12345678901234567890.000001", '{"a": [1, 2]}', "{1,2,3}", "2024-01-02", "x"],
         [False, INT64_MAX, -0.5, "", b"", TS12, TS12B, "-0.5", "null",
          "550e8400-e29b-41d4-a716-446655440000", "1 day", ""],
         [None] * 12,
         [True, 0, 0.0, "a", b"\x00", msgpack.Timestamp(0, 0),
          msgpack.Timestamp((1 << 34) - 1, 999999999), "0", "[]", "(1,2)", "u", "v"]]]])
# PostgreSQL's 'infinity' / '-infinity' timestamps: seconds INT64_MAX / INT64_MIN, nsec 0
# (PROTOCOL.md section 4), in the 12-byte form.
valid("GET reply timestamp and timestamptz +infinity", "reply", REPLY | GET, 26,
      [{"src": 1, "lsn": 1, "age": 0, "stale": False},
       [[["ts", 6], ["tz", 7]], [[msgpack.Timestamp(INT64_MAX, 0), msgpack.Timestamp(INT64_MAX, 0)]]]])
valid("GET reply timestamp and timestamptz -infinity", "reply", REPLY | GET, 27,
      [{"src": 1, "lsn": 1, "age": 0, "stale": False},
       [[["ts", 6], ["tz", 7]], [[msgpack.Timestamp(INT64_MIN, 0), msgpack.Timestamp(INT64_MIN, 0)]]]])
valid("GET reply int values of every width", "reply", REPLY | GET, 10,
      [{"src": 0, "lsn": 1, "age": 0, "stale": False},
       [[["i", 2]], [[v] for v in (0, 127, 128, 255, 256, 65535, 65536, (1 << 32) - 1, 1 << 32,
                                     1 << 53, (1 << 53) + 1, INT64_MAX, -1, -32, -33, -128,
                                     -129, -32768, -32769, -(1 << 31), -(1 << 31) - 1,
                                     -(1 << 53), -(1 << 53) - 1, INT64_MIN)]]])
valid("REFRESH reply", "reply", REPLY | REFRESH, 11,
      [{"src": 1, "lsn": 77, "age": 0, "stale": False}, [[["id", 2]], [[1]]]])
valid("GET reply meta with unknown key stored", "reply", REPLY | GET, 12,
      [{"src": 1, "lsn": 77, "age": 0, "stale": False, "stored": True}, [[["id", 2]], [[1]]]])
valid("GET reply meta keys in another order plus unknown keys", "reply", REPLY | GET, 13,
      [{"stale": False, "zz": [1, {"k": None}], "age": 4, "lsn": 9, "src": 0, "stored": False},
       [[["id", 2]], [[2]]]])
valid("GET reply meta stored false", "reply", REPLY | GET, 22,
      [{"src": 2, "lsn": 0x16B374D848, "age": 0, "stale": False, "stored": False},
       [[["id", 2]], [[3]]]])
valid("REFRESH reply meta stored true", "reply", REPLY | REFRESH, 23,
      [{"src": 1, "lsn": 78, "age": 0, "stale": False, "stored": True}, [[["id", 2]], [[4]]]])
valid("GET reply meta unknown key nesting depth 8 (the limit)", "reply", REPLY | GET, 24,
      [{"src": 0, "lsn": 1, "age": 0, "stale": False, "x": [[[[[1]]]]]}, [[["n", 2]], []]])
valid("MGET reply items with stored true, false and absent", "reply", REPLY | MGET, 25,
      [[{"src": 1, "lsn": 5, "age": 0, "stale": False, "stored": True}, [[["n", 2]], [[1]]]],
       [{"src": 2, "lsn": 6, "age": 0, "stale": False, "stored": False}, [[["n", 2]], [[2]]]],
       [{"src": 0, "lsn": 6, "age": 10, "stale": False}, [[["n", 2]], [[3]]]],
       {"code": 4, "msg": "no replica is fit"}])
valid("MGET reply results and item errors", "reply", REPLY | MGET, 14,
      [[META_CACHE, [[["id", 2], ["name", 4]], [[42, "ann"]]]],
       {"err": 1, "msg": 'no query "nope"'},
       [{"src": 1, "lsn": 100, "age": 0, "stale": False}, [[["id", 2]], []]],
       {"err": 4, "msg": "no replica is fit"},
       {"err": 200, "msg": "a code the client does not know"}])
valid("MGET reply item error in the code form", "reply", REPLY | MGET, 15,
      [{"code": 3, "msg": "overloaded"},
       [{"src": 0, "lsn": 1, "age": 0, "stale": False}, [[["n", 2]], [[1]]]]])
valid("MGET reply empty", "reply", REPLY | MGET, 16, [])
valid("INVALIDATE reply deleted 1", "reply", REPLY | INVALIDATE, 17, {"deleted": 1})
valid("INVALIDATE reply deleted 0", "reply", REPLY | INVALIDATE, 18, {"deleted": 0})
valid("INVALIDATE reply generation", "reply", REPLY | INVALIDATE, 19, {"generation": 4294967296})
valid("STATS reply", "reply", REPLY | STATS, 20,
      {"requests_total": 123456, "hits_total": 0, "hit_ratio": 0.75,
       "replica_lag_bytes": 1.0e9, "uptime_s": (1 << 53) + 5, "negative_gauge": -3})
valid("STATS reply empty", "reply", REPLY | STATS, 21, {})

MSGS = {1: 'no query "x"', 2: "parameter 1: \"abc\" is not an int8", 3: "replica pool queue full",
        4: "no replica is fit", 5: "reply exceeds the client limit", 6: "token required",
        7: "unknown key \"x\"", 8: "unexpected database error", 9: "database timeout",
        10: "server is draining"}
for code in range(1, 11):
    valid("error reply %d %s" % (code, ERR_NAMES[code]), "reply", ERROR, 100 + code,
          {"code": code, "msg": MSGS[code]})
valid("error reply 12 no_shard", "reply", ERROR, 114,
      {"code": 12, "msg": "query \"orders\": shard key user_id = 5000001 is in no range of shard_ranges"})
valid("error reply protocol with request id 0", "reply", ERROR, 0,
      {"code": 7, "msg": "bad frame header"})
valid("error reply unknown code 42", "reply", ERROR, 111, {"code": 42, "msg": "from the future"})
valid("error reply msg 1024 bytes (the limit)", "reply", ERROR, 112, {"code": 8, "msg": "m" * 1024})
valid("error reply 11 future_lsn", "reply", ERROR, 113,
      {"code": 11, "msg": "read-your-writes LSN FFFFFFFF/FFFFFFFF is beyond the primary's position"})

def p_rep(name, opcode, body, why, reqid=50):
    protocol(name, "reply", frame(opcode, reqid, body), why)

protocol("reply version byte 2", "reply", frame(REPLY | PING, 1, b"\xc0", version=2),
         "version != 1")
protocol("reply flags 0x0100", "reply", frame(REPLY | PING, 1, b"\xc0", flags=0x100),
         "reserved flags must be 0")
protocol("reply body length 0", "reply", frame(REPLY | PING, 1, b""), "an empty body")
protocol("reply body over the client limit (header only)", "reply",
         header(REPLY | GET, 1, MAX_REPLY + 1),
         "refused from the header alone: body length above the client's default 64 MiB limit")
protocol("GET reply truncated frame", "reply",
         header(REPLY | GET, 1, 55) + pack([META_CACHE, [[["id", 2]], [[42]]]])[:20],
         "declared body length longer than the bytes given", truncated=True)
p_rep("PING reply trailing byte", REPLY | PING, b"\xc0\xc0", "bytes left after the object")
p_rep("GET reply trailing byte", REPLY | GET,
      pack([META_CACHE, [[["id", 2]], [[1]]]]) + b"\x00", "bytes left after the object")
p_rep("MGET reply array32 with a huge count in a 5-byte body", REPLY | MGET,
      hexbytes("dd ff 00 00 00"), "a count larger than the bytes remaining (section 7)")
p_rep("GET reply str length beyond the body", REPLY | GET,
      hexbytes("92 84 a3 73 72 63 00 a3 6c 73 6e 00 a3 61 67 65 00 a5 73 74 61 6c 65 c2"
               " 92 91 92 da 01 00 61 02 90"),
      "a str length larger than the bytes remaining")
p_rep("GET reply is not [meta, result]", REPLY | GET, pack([META_CACHE]),
      "a GET reply is an array of 2")
p_rep("GET reply meta without stale", REPLY | GET,
      pack([{"src": 0, "lsn": 1, "age": 0}, [[["n", 2]], []]]), "meta has all four keys")
p_rep("GET reply meta src 3", REPLY | GET,
      pack([{"src": 3, "lsn": 1, "age": 0, "stale": False}, [[["n", 2]], []]]),
      "src is 0, 1 or 2")
p_rep("GET reply meta stored is not a bool", REPLY | GET,
      pack([{"src": 1, "lsn": 1, "age": 0, "stale": False, "stored": 1}, [[["n", 2]], []]]),
      "\"stored\", when present, is a bool")
p_rep("GET reply meta stored is nil", REPLY | GET,
      pack([{"src": 1, "lsn": 1, "age": 0, "stale": False, "stored": None}, [[["n", 2]], []]]),
      "\"stored\", when present, is a bool: nil is the wrong type, not an absent key")
p_rep("PING reply body is an empty map", REPLY | PING, pack({}),
      "the PING reply body is nil ({} is accepted only in a PING request)")
p_rep("GET reply meta duplicate key stored", REPLY | GET,
      hexbytes("92 86 a3 73 72 63 01 a3 6c 73 6e 01 a3 61 67 65 00 a5 73 74 61 6c 65 c2"
               " a6 73 74 6f 72 65 64 c3 a6 73 74 6f 72 65 64 c3 92 91 92 a1 6e 02 90"),
      "a duplicate known meta key is a protocol error")
p_rep("GET reply meta duplicate key src", REPLY | GET,
      hexbytes("92 85 a3 73 72 63 00 a3 6c 73 6e 01 a3 61 67 65 00 a5 73 74 61 6c 65 c2"
               " a3 73 72 63 00 92 91 92 a1 6e 02 90"),
      "a duplicate known meta key is a protocol error")
p_rep("GET reply meta unknown key nesting depth 9", REPLY | GET,
      pack([{"src": 0, "lsn": 1, "age": 0, "stale": False, "x": [[[[[[1]]]]]]},
            [[["n", 2]], []]]),
      "the depth limit holds inside an ignored meta value: the innermost 1 is at depth 9")
p_rep("GET reply column type 0", REPLY | GET, pack([META_CACHE, [[["n", 0]], []]]),
      "type 0 is invalid (section 4)")
p_rep("GET reply column name 65 bytes", REPLY | GET, pack([META_CACHE, [[["n" * 65, 2]], []]]),
      "column names are at most 64 bytes")
p_rep("GET reply row with too few values", REPLY | GET,
      pack([META_CACHE, [[["a", 2], ["b", 2]], [[1]]]]), "each row has one value per column")
p_rep("GET reply cell is an array", REPLY | GET, pack([META_CACHE, [[["a", 10]], [[[1, 2]]]]]),
      "values are scalars only")
p_rep("GET reply cell is ext type 5", REPLY | GET,
      pack([META_CACHE, [[["a", 10]], [[msgpack.ExtType(5, b"\x01")]]]]),
      "the only ext value is the timestamp (-1)")
p_rep("GET reply cell is uint64 above INT64_MAX", REPLY | GET,
      pack([META_CACHE, [[["a", 2]], [[INT64_MAX + 1]]]]), "integers must fit int64")
p_rep("GET reply 1665 columns", REPLY | GET,
      pack([META_CACHE, [[["c", 2]] * 1665, []]]), "at most 1664 columns")
p_rep("MGET reply item is a str", REPLY | MGET, pack(["x"]),
      "an item is [meta, result] or an error map")
p_rep("MGET reply 257 items", REPLY | MGET,
      pack([{"err": 8, "msg": ""}] * 257), "more than 256 MGET items")
p_rep("error reply without msg", ERROR, pack({"code": 1}), "an error map has code and msg")
p_rep("error reply code 0", ERROR, pack({"code": 0, "msg": "x"}), "codes are 1..255")
p_rep("error reply msg 1025 bytes", ERROR, pack({"code": 8, "msg": "m" * 1025}),
      "error messages are at most 1024 bytes")
p_rep("HELLO reply without max_frame", REPLY | HELLO, pack({"v": 1, "server": "s"}),
      "the HELLO reply has v, server and max_frame")
p_rep("INVALIDATE reply with an unknown key", REPLY | INVALIDATE, pack({"removed": 1}),
      "the INVALIDATE reply is {deleted} or {generation}")
p_rep("STATS reply value is a str", REPLY | STATS, pack({"x": "1"}),
      "STATS values are int or float")
p_rep("reply opcode 0x88", 0x88, b"\xc0", "not a reply opcode")


def main():
    # One case per line: readable, and a diff shows which cases changed.
    text = ('{"format": 1, "cases": [\n'
            + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases)
            + "\n]}\n")
    json.loads(text)
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("frames.json is stale: run /usr/bin/python3 " + __file__)
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("%d cases -> %s" % (len(cases), OUT))


main()
