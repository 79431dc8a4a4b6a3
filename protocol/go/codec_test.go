package cachesvc

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

// PROTOCOL.md section 8, byte for byte.
func TestWorkedExample(t *testing.T) {
	q := Q("user_profile", "42")
	got, err := appendGet(nil, OpGet, 1, &q)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, `00 00 00 16  01  03  00 00  00 00 00 01  82 a1 71 ac 75 73 65 72 5f 70 72
		6f 66 69 6c 65 a1 70 91 a2 34 32`)
	if !bytes.Equal(got, want) {
		t.Fatalf("GET frame\n got %x\nwant %x", got, want)
	}

	reply := unhex(t, `00 00 00 37  01  83  00 00  00 00 00 01 92 84 a3 73 72 63 00 a3 6c 73 6e
		cf 00 00 00 16 b3 74 d8 48 a3 61 67 65 cd 05 dc a5 73 74 61 6c 65 c2 92 92 92 a2 69 64 02
		92 a4 6e 61 6d 65 04 91 92 2a a3 61 6e 6e`)
	h, err := ParseHeader(reply, DefaultMaxReply)
	if err != nil || h.Opcode != OpReplyFlag|OpGet || h.ID != 1 || int(h.Len) != len(reply)-HeaderSize {
		t.Fatalf("header %+v %v", h, err)
	}
	res, err := DecodeResult(reply[HeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.Source != SourceCache || res.Meta.LSN.String() != "16/B374D848" ||
		res.Meta.Age != 1500*time.Millisecond || res.Meta.Stale || res.Meta.Stored != nil {
		t.Errorf("meta %+v", res.Meta)
	}
	if !reflect.DeepEqual(res.Columns, []Column{{"id", TypeInt}, {"name", TypeText}}) {
		t.Errorf("columns %+v", res.Columns)
	}
	if !reflect.DeepEqual(res.Rows, [][]any{{int64(42), "ann"}}) || res.Value(0, "name") != "ann" {
		t.Errorf("rows %#v", res.Rows)
	}

	e, err := DecodeError(unhex(t, `82 a4 63 6f 64 65 01 a3 6d 73 67 ac 6e 6f 20 71 75 65 72 79 20 22 78 22`))
	if err != nil || e.Code != CodeUnknownQuery || e.Msg != `no query "x"` || e.Local {
		t.Fatalf("error %+v %v", e, err)
	}
	if !errors.Is(e, ErrUnknownQuery) || errors.Is(e, ErrBadParams) || e.Name() != "unknown_query" {
		t.Errorf("errors.Is / Name wrong for %v", e)
	}
}

// Every integer, string, bin, array, map and timestamp width, shortest form, round trip.
func TestEncoderShortestForms(t *testing.T) {
	ints := []struct {
		v   int64
		hex string
	}{
		{0, "00"}, {127, "7f"}, {128, "cc80"}, {255, "ccff"}, {256, "cd0100"},
		{65535, "cdffff"}, {65536, "ce00010000"}, {math.MaxUint32, "ceffffffff"},
		{math.MaxUint32 + 1, "cf0000000100000000"}, {math.MaxInt64, "cf7fffffffffffffff"},
		{-1, "ff"}, {-32, "e0"}, {-33, "d0df"}, {-128, "d080"}, {-129, "d1ff7f"},
		{-32768, "d18000"}, {-32769, "d2ffff7fff"}, {math.MinInt32, "d280000000"},
		{math.MinInt32 - 1, "d3ffffffff7fffffff"}, {math.MinInt64, "d38000000000000000"},
	}
	for _, c := range ints {
		b := appendInt(nil, c.v)
		if hex.EncodeToString(b) != c.hex {
			t.Errorf("int %d: %x, want %s", c.v, b, c.hex)
		}
		r := reader{b: b}
		o, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if i, ok := o.asInt(); !ok || i != c.v || r.left() != 0 {
			t.Errorf("int %d decoded as %+v", c.v, o)
		}
	}
	if b := appendUint(nil, math.MaxUint64); hex.EncodeToString(b) != "cfffffffffffffffff" {
		t.Errorf("max uint64: %x", b)
	}
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("x", n)
		for _, kindOf := range []string{"str", "bin"} {
			var b []byte
			if kindOf == "str" {
				b = appendStr(nil, s)
			} else {
				b = appendBin(nil, []byte(s))
			}
			hdr := len(b) - n
			wantHdr := map[string]int{"str": 1, "bin": 2}[kindOf]
			switch {
			case n > 65535:
				wantHdr = 5
			case n > 255:
				wantHdr = 3
			case n > 31 && kindOf == "str":
				wantHdr = 2
			}
			if hdr != wantHdr {
				t.Errorf("%s of %d: header of %d bytes, want %d", kindOf, n, hdr, wantHdr)
			}
			v, err := decodeBody(b)
			if err != nil {
				t.Fatal(err)
			}
			if kindOf == "str" && v != s || kindOf == "bin" && !bytes.Equal(v.([]byte), []byte(s)) {
				t.Errorf("%s of %d did not round-trip", kindOf, n)
			}
		}
	}
	for _, n := range []int{0, 15, 16, 65535, 65536} {
		a := appendArrayHeader(nil, n)
		m := appendMapHeader(nil, n)
		want := 1
		if n > 65535 {
			want = 5
		} else if n > 15 {
			want = 3
		}
		if len(a) != want || len(m) != want {
			t.Errorf("count %d: array header %x, map header %x", n, a, m)
		}
	}
	if b := appendFloat64(nil, 1.5); hex.EncodeToString(b) != "cb3ff8000000000000" {
		t.Errorf("float: %x", b)
	}
	ts := []struct {
		sec  int64
		nsec uint32
		hex  string
	}{
		{0, 0, "d6ff00000000"},
		{1704164645, 0, "d6ff65937d25"},
		{math.MaxUint32, 0, "d6ffffffffff"},
		{1704164645, 123456000, "d7ff1d6f280065937d25"},
		{math.MaxUint32 + 1, 0, "d7ff0000000100000000"},
		{1 << 34, 0, "c70cff000000000000000400000000"},
		{-1, 999999999, "c70cff3b9ac9ffffffffffffffffff"},
	}
	for _, c := range ts {
		b := appendTimestamp(nil, c.sec, c.nsec)
		if hex.EncodeToString(b) != c.hex {
			t.Errorf("timestamp %d.%d: %x, want %s", c.sec, c.nsec, b, c.hex)
		}
		r := reader{b: b}
		o, _ := r.next()
		if s, ns, ok := o.timestamp(); !ok || s != c.sec || ns != c.nsec {
			t.Errorf("timestamp %d.%d decoded as %d.%d %v", c.sec, c.nsec, s, ns, ok)
		}
	}
}

func TestHeader(t *testing.T) {
	ok := frame(OpReplyFlag|OpPing, 7, []byte{0xc0})
	if h, err := ParseHeader(ok, 1); err != nil || h.ID != 7 || h.Len != 1 {
		t.Fatalf("%+v %v", h, err)
	}
	bad := map[string][]byte{
		"version": {0, 0, 0, 1, 2, 0x82, 0, 0, 0, 0, 0, 1},
		"flags":   {0, 0, 0, 1, 1, 0x82, 0, 1, 0, 0, 0, 1},
		"empty":   {0, 0, 0, 0, 1, 0x82, 0, 0, 0, 0, 0, 1},
		"too big": {0, 0, 0, 2, 1, 0x82, 0, 0, 0, 0, 0, 1},
		"short":   {0, 0, 0, 1, 1},
	}
	for name, h := range bad {
		if _, err := ParseHeader(h, 1); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Hard limits of section 7, checked before anything is allocated.
func TestDecoderLimits(t *testing.T) {
	m := meta(0, 1, 0, false)
	manyCols := make([][2]any, MaxColumns+1)
	for i := range manyCols {
		manyCols[i] = [2]any{"c", 2}
	}
	cases := map[string][]byte{
		"array32 of 4 billion":  unhex(t, "dd ff 00 00 00"),
		"map32 of 4 billion":    unhex(t, "df 7f ff ff ff 00 00"),
		"str32 beyond the body": unhex(t, "db 00 00 10 00 61"),
		"bin32 beyond the body": unhex(t, "c6 ff ff ff ff"),
		"ext32 beyond the body": unhex(t, "c9 00 01 00 00 ff"),
		"map count > bytes/2":   unhex(t, "83 a1 61 00 a1 62"),
		"byte 0xc1":             unhex(t, "c1"),
		"empty":                 {},
		"trailing byte":         append(resultBody(m, nil, nil), 0xc0),
		"1665 columns":          resultBody(m, manyCols, nil),
		"column name 65 bytes":  resultBody(m, [][2]any{{strings.Repeat("n", 65), 2}}, nil),
		"column type 0":         resultBody(m, [][2]any{{"c", 0}}, nil),
		"column type 256":       resultBody(m, [][2]any{{"c", 256}}, nil),
		"row too short":         resultBody(m, [][2]any{{"a", 2}, {"b", 2}}, [][]any{{1}}),
		"cell is an array":      resultBody(m, [][2]any{{"a", 2}}, [][]any{{[]any{1}}}),
		"cell above int64":      resultBody(m, [][2]any{{"a", 2}}, [][]any{{uint64(math.MaxInt64 + 1)}}),
		"cell ext 5":            resultBody(m, [][2]any{{"a", 2}}, [][]any{{raw{0xd4, 5, 0}}}),
		"timestamp nsec 1e9":    resultBody(m, [][2]any{{"a", 7}}, [][]any{{raw(unhex(t, "d7ff ee6b2800 00000000"))}}),
		"meta without stale":    resultBody(omap{{"src", 0}, {"lsn", 1}, {"age", 0}}, nil, nil),
		"meta src 3":            resultBody(meta(3, 1, 0, false), nil, nil),
		"meta duplicate src":    resultBody(append(meta(0, 1, 0, false), kv{"src", 1}), nil, nil),
		"meta lsn negative":     resultBody(meta(0, 0, 0, false)[:1].with(kv{"lsn", -1}, kv{"age", 0}, kv{"stale", false}), nil, nil),
		"meta stored not bool":  resultBody(append(meta(0, 1, 0, false), kv{"stored", 1}), nil, nil),
		"meta unknown key too deep": resultBody(append(meta(0, 1, 0, false),
			kv{"x", []any{[]any{[]any{[]any{[]any{[]any{[]any{1}}}}}}}}), nil, nil),
		"not [meta, result]": body([]any{m}),
	}
	for name, b := range cases {
		if _, err := DecodeResult(b); !isLocalProtocol(err) {
			t.Errorf("%s: want a local protocol error, got %v", name, err)
		}
	}
	// MGET: count limit and mismatch; error maps.
	items := make([]any, MaxMGet+1)
	for i := range items {
		items[i] = omap{{"err", 1}, {"msg", ""}}
	}
	if _, err := DecodeMGet(body(items), -1); !isLocalProtocol(err) {
		t.Errorf("257 MGET items: %v", err)
	}
	if _, err := DecodeMGet(body(items[:3]), 2); !isLocalProtocol(err) {
		t.Errorf("3 MGET items for 2 queries: %v", err)
	}
	for name, it := range map[string]omap{
		"both err and code": {{"err", 1}, {"code", 1}, {"msg", ""}},
		"unknown key":       {{"code", 1}, {"msg", ""}, {"x", 1}},
		"no code":           {{"msg", ""}},
	} {
		if _, err := DecodeMGet(body([]any{it}), 1); !isLocalProtocol(err) {
			t.Errorf("MGET item error %s: %v", name, err)
		}
	}
	for name, b := range map[string][]byte{
		"msg 1025 bytes": errBody(8, strings.Repeat("m", 1025)),
		"code 0":         errBody(0, "x"),
		"code 256":       errBody(256, "x"),
		"no msg":         body(omap{{"code", 1}}),
		"unknown key":    body(omap{{"code", 1}, {"msg", "m"}, {"x", 1}}),
		"not a map":      body([]any{1, "x"}),
	} {
		if _, err := DecodeError(b); !isLocalProtocol(err) {
			t.Errorf("error reply %s: %v", name, err)
		}
	}
	if e, err := DecodeError(errBody(8, strings.Repeat("m", 1024))); err != nil || len(e.Msg) != 1024 {
		t.Errorf("1024-byte message refused: %v", err)
	}
	if _, err := DecodeStats(body(omap{{strings.Repeat("s", 129), 1}})); !isLocalProtocol(err) {
		t.Errorf("stat name of 129 bytes: %v", err)
	}
}

func (m omap) with(kvs ...kv) omap { return append(append(omap{}, m...), kvs...) }

func isLocalProtocol(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeProtocol && e.Local
}

// Every column type decodes to its Go type; NULL is nil; unknown types are other.
func TestTypedCells(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)
	pre1970 := time.Date(1900, 6, 1, 0, 0, 0, 1, time.UTC)
	cols := [][2]any{{"b", 1}, {"i", 2}, {"f", 3}, {"t", 4}, {"y", 5}, {"ts", 6}, {"tz", 7},
		{"n", 8}, {"j", 9}, {"o", 10}, {"u", 42}}
	row := []any{true, int64(math.MaxInt64), 1.25, "héllo", []byte{0, 0xff}, ts, pre1970,
		"12.50", `{"a": [1, 2]}`, "{1,2,3}", "future"}
	nulls := make([]any, len(cols))
	res, err := DecodeResult(resultBody(append(meta(1, 5, 3, true), kv{"stored", true}), cols,
		[][]any{row, nulls, {false, int64(math.MinInt64), -0.5, "", []byte{}, time.Unix(0, 0), ts,
			"NaN", "null", "", ""}}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.Source != SourceReplica || res.Meta.LSN != 5 || res.Meta.Age != 3*time.Millisecond ||
		!res.Meta.Stale || res.Meta.Stored == nil || !*res.Meta.Stored {
		t.Errorf("meta %+v", res.Meta)
	}
	want := []any{true, int64(math.MaxInt64), 1.25, "héllo", []byte{0, 0xff}, ts, pre1970,
		MustDecimal("12.50"), json.RawMessage(`{"a": [1, 2]}`), "{1,2,3}", "future"}
	if !reflect.DeepEqual(res.Rows[0], want) {
		t.Errorf("row 0\n got %#v\nwant %#v", res.Rows[0], want)
	}
	if !reflect.DeepEqual(res.Rows[1], nulls) {
		t.Errorf("NULL row %#v", res.Rows[1])
	}
	if res.Rows[2][1] != int64(math.MinInt64) || !res.Rows[2][7].(Decimal).IsNaN() {
		t.Errorf("row 2 %#v", res.Rows[2])
	}
	for _, v := range []any{res.Rows[0][5], res.Rows[0][6]} {
		if v.(time.Time).Location() != time.UTC {
			t.Errorf("time not in UTC: %v", v)
		}
	}
	if res.Columns[10].Type.Kind() != TypeOther || res.Columns[10].Type != 42 {
		t.Errorf("unknown type: %v", res.Columns[10].Type)
	}
	var j struct{ A []int }
	if err := res.ScanJSON(0, "j", &j); err != nil || !reflect.DeepEqual(j.A, []int{1, 2}) {
		t.Errorf("ScanJSON: %v %v", j, err)
	}
	j.A = nil
	if err := res.ScanJSON(1, "j", &j); err != nil || j.A != nil {
		t.Errorf("ScanJSON of NULL: %v %v", j, err)
	}
	if err := res.ScanJSON(0, "nope", &j); err == nil {
		t.Error("ScanJSON of a missing column succeeded")
	}
	if r, ok := res.Rows[0][7].(Decimal).Rat(); !ok || r.Cmp(big.NewRat(25, 2)) != 0 {
		t.Errorf("Decimal.Rat: %v %v", r, ok)
	}
}

func TestMGetItems(t *testing.T) {
	ok := []any{meta(0, 1, 0, false), []any{[]any{[]any{"n", 2}}, []any{[]any{7}}}}
	b := body([]any{ok, omap{{"err", 1}, {"msg", "no query"}}, omap{{"code", 200}, {"msg", "new"}}})
	items, err := DecodeMGet(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	if items[0].Err != nil || items[0].Result.Rows[0][0] != int64(7) {
		t.Errorf("item 0: %+v", items[0])
	}
	if !errors.Is(items[1].Err, ErrUnknownQuery) || items[1].Err.(*Error).Msg != "no query" {
		t.Errorf("item 1: %v", items[1].Err)
	}
	e := items[2].Err.(*Error)
	if !errors.Is(e, ErrInternal) || e.Code != 200 || e.Name() != "internal" || e.Code.Known() {
		t.Errorf("item 2 (unknown code): %v", e)
	}
}

func TestErrors(t *testing.T) {
	for c := Code(1); c <= 12; c++ {
		e := &Error{Code: c, Msg: "m"}
		if !errors.Is(e, &Error{Code: c}) || e.Name() != codeNames[c] || !strings.Contains(e.Error(), codeNames[c]) {
			t.Errorf("code %d: %v", c, e)
		}
	}
	var e *Error
	wrapped := fmt.Errorf("ctx: %w", &Error{Code: CodeAuth, Msg: "no"})
	if !errors.As(wrapped, &e) || e.Code != CodeAuth || !errors.Is(wrapped, ErrAuth) {
		t.Errorf("errors.As through a wrapper: %v", e)
	}
	ce := &closedErr{sent: true, cause: protoErr("bad")}
	if !errors.Is(ce, ErrClosed) || errors.Is(ce, ErrNotSent) || !errors.Is(ce, ErrProtocol) {
		t.Errorf("closedErr matching: %v", ce)
	}
	if !errors.Is(&closedErr{cause: errors.New("x")}, ErrNotSent) {
		t.Error("an unsent request is not ErrNotSent")
	}
	if !(&Error{Code: CodeOverloaded}).Temporary() || (&Error{Code: CodeAuth}).Temporary() {
		t.Error("Temporary")
	}
}

func TestToken(t *testing.T) {
	long := strings.Repeat("S", 64)
	for s, v := range map[string]Token{"16/B374D848": {"", 0x16B374D848}, "0/0": {"", 0},
		"s1:0/16B3748": {"s1", 0x16B3748}, "eu-West_2.a:FFFFFFFF/FFFFFFFF": {"eu-West_2.a", math.MaxUint64},
		long + ":1/2": {long, 1<<32 | 2}} {
		got, err := ParseToken(s)
		if err != nil || got != v {
			t.Errorf("ParseToken(%q) = %v, %v", s, got, err)
		}
		if got.String() != s {
			t.Errorf("%#v.String() = %s", got, got)
		}
	}
	if got, _ := ParseToken("s1:0/16b3748"); got.String() != "s1:0/16B3748" {
		t.Errorf("lower case: %v", got)
	}
	for _, s := range []string{"", ":", ":0/1", "s1:", "s1:x/1", "s1:1/", "s1:1//2", "s1:0/0",
		"a:b:0/1", "s1:0/1:2", "s1::0/1", "s 1:0/1", "s/1:0/1", "\u00e9:0/1", " s1:0/1", "s1:0/1 ",
		"s1:123456789/0", "1/2:s1", strings.Repeat("n", 65) + ":1/2"} {
		if tok, err := ParseToken(s); err == nil {
			t.Errorf("ParseToken(%q) = %v, want an error", s, tok)
		}
	}
	var tok Token
	if err := json.Unmarshal([]byte(`"s2:A/B"`), &tok); err != nil || tok != (Token{"s2", 0xA0000000B}) {
		t.Errorf("UnmarshalText: %v %v", tok, err)
	}
	// A token naming its shard sends "shard" after "lsn"; a bare one, the bytes as before.
	q := Q("user_profile", "42").WithToken(Token{"s1", 0x16B3748})
	b, err := appendGet(nil, OpGet, 5, &q)
	want := "000000280103000000000005" + "84a171ac757365725f70726f66696c65a17091a23432" + /* PROTOCOL.md 3.3 */
		"a36c736ece016b3748a57368617264a27331"
	if err != nil || fmt.Sprintf("%x", b) != want {
		t.Errorf("GET with a shard token: %x, %v\n want %s", b, err, want)
	}
	bare := Q("user_profile", "42").WithToken(Token{"", 0x16B3748})
	b1, _ := appendGet(nil, OpGet, 5, &bare)
	old := Query{Name: "user_profile", Params: []any{"42"}, MinLSN: 0x16B3748}
	b2, _ := appendGet(nil, OpGet, 5, &old)
	if !bytes.Equal(b1, b2) || bytes.Contains(b1, []byte("shard")) {
		t.Errorf("bare token: %x vs %x", b1, b2)
	}
	for _, bad := range []Query{{Name: "q", Shard: "s1"}, {Name: "q", MinLSN: 1, Shard: "s:1"},
		{Name: "q", MinLSN: 1, Shard: strings.Repeat("n", 65)}, {Name: "q", MinLSN: 1, Shard: "s 1"}} {
		bad := bad
		if _, err := appendGet(nil, OpGet, 1, &bad); err == nil {
			t.Errorf("query %+v encoded", bad)
		} else if e, ok := err.(*Error); !ok || e.Code != CodeBadParams {
			t.Errorf("query %+v: %v", bad, err)
		}
	}
}

func TestLSN(t *testing.T) {
	for s, v := range map[string]LSN{"0/0": 0, "16/B374D848": 0x16B374D848, "16/b374d848": 0x16B374D848,
		"FFFFFFFF/FFFFFFFF": math.MaxUint64, "1/0": 1 << 32, "0/1": 1} {
		got, err := ParseLSN(s)
		if err != nil || got != v {
			t.Errorf("ParseLSN(%q) = %v, %v", s, got, err)
		}
		if strings.ToUpper(s) != v.String() {
			t.Errorf("%#x.String() = %s", uint64(v), v)
		}
	}
	for _, s := range []string{"", "/", "1/", "/1", "123456789/0", "0/123456789", "g/0", "+1/0",
		"1/-0", "1/2/3", " 1/2", "0x1/2"} {
		if _, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) succeeded", s)
		}
	}
	var l LSN
	if err := json.Unmarshal([]byte(`"A/B"`), &l); err != nil || l != 0xA0000000B {
		t.Errorf("UnmarshalText: %v %v", l, err)
	}
}

func TestDecimal(t *testing.T) {
	for _, s := range []string{"0", "-1", "+1", "12.50", ".5", "5.", "1e10", "-1.5E-3", "NaN", "Infinity", "-Infinity"} {
		if _, err := ParseDecimal(s); err != nil {
			t.Errorf("ParseDecimal(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", ".", "-", "1e", "1.2.3", "abc", "1 ", "0x10", "nan"} {
		if _, err := ParseDecimal(s); err == nil {
			t.Errorf("ParseDecimal(%q) succeeded", s)
		}
	}
	d := MustDecimal("123456789012345678901234567890.000001")
	r, ok := d.Rat()
	if !ok || DecimalFromRat(r, 6) != d {
		t.Errorf("Rat round trip: %v", r)
	}
	if f, err := MustDecimal("-Infinity").Float64(); err != nil || !math.IsInf(f, -1) {
		t.Errorf("Float64(-Infinity) = %v %v", f, err)
	}
	b, _ := json.Marshal([]Decimal{MustDecimal("1.50"), MustDecimal("NaN")})
	if string(b) != `[1.50,"NaN"]` {
		t.Errorf("MarshalJSON: %s", b)
	}
	var back []Decimal
	if err := json.Unmarshal(b, &back); err != nil || back[0].String() != "1.50" || !back[1].IsNaN() {
		t.Errorf("UnmarshalJSON: %v %v", back, err)
	}
}

// Parameters of every accepted Go type, and the ones the protocol cannot carry.
func TestParams(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	dec := MustDecimal("1.5")
	good := []struct {
		v    any
		want any // generic decode
	}{
		{nil, nil}, {true, true}, {int8(-5), int64(-5)}, {int16(300), uint64(300)},
		{int32(-70000), int64(-70000)}, {int64(math.MinInt64), int64(math.MinInt64)}, {7, uint64(7)},
		{uint(9), uint64(9)}, {uint8(255), uint64(255)}, {uint16(65535), uint64(65535)},
		{uint32(1 << 31), uint64(1 << 31)}, {uint64(math.MaxInt64), uint64(math.MaxInt64)},
		{LSN(0x100000000), uint64(0x100000000)}, {float32(0.5), 0.5}, {2.25, 2.25}, {"txt", "txt"},
		{[]byte{1, 2}, []byte{1, 2}}, {[]byte(nil), nil}, {json.RawMessage(`{"a":1}`), `{"a":1}`},
		{dec, "1.5"}, {&dec, "1.5"}, {(*Decimal)(nil), nil}, {big.NewRat(1, 8), "0.125"},
		{big.NewRat(-3, 1), "-3"}, {(*big.Rat)(nil), nil}, {big.NewInt(-4), int64(-4)},
		{new(big.Int).Lsh(big.NewInt(1), 70), "1180591620717411303424"},
		{ts, tsVal{ts.Unix(), 0}}, {&ts, tsVal{ts.Unix(), 0}}, {(*time.Time)(nil), nil},
	}
	for _, c := range good {
		b, err := appendValue(nil, c.v)
		if err != nil {
			t.Errorf("%T %v: %v", c.v, c.v, err)
			continue
		}
		got, err := decodeBody(b)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%T %v encoded as %x = %#v, want %#v", c.v, c.v, b, got, c.want)
		}
	}
	for _, v := range []any{uint64(math.MaxInt64 + 1), uint(math.MaxUint64), struct{}{}, []any{1},
		map[string]any{}, big.NewRat(1, 3), Decimal{}, time.Time{}, complex(1, 2)} {
		if _, err := appendValue(nil, v); !errors.Is(err, ErrBadParams) {
			t.Errorf("%T %v: want bad_params, got %v", v, v, err)
		}
	}
	// Query-level checks and the tier mapping.
	for name, q := range map[string]Query{
		"empty name":    {Name: ""},
		"long name":     {Name: strings.Repeat("q", 65)},
		"17 params":     {Name: "q", Params: make([]any, 17)},
		"tier 9":        {Name: "q", Tier: 9},
		"bad parameter": {Name: "q", Params: []any{struct{}{}}},
	} {
		q := q
		if b, err := appendGet(nil, OpGet, 1, &q); !errors.Is(err, ErrBadParams) || len(b) != 0 {
			t.Errorf("%s: %v (%x)", name, err, b)
		}
	}
	for tier, want := range map[Tier]any{TierCritical: uint64(0), TierBatch: uint64(2), TierDefault: nil} {
		q := Query{Name: "q", Tier: tier}
		b, _ := appendGet(nil, OpGet, 1, &q)
		v, _ := decodeBody(b[HeaderSize:])
		var got any
		for _, e := range v.(omap) {
			if e.K == "tier" {
				got = e.V
			}
		}
		if got != want {
			t.Errorf("tier %v sent as %v, want %v", tier, got, want)
		}
	}
	q := Query{Name: "q", Params: []any{1}, MinLSN: 0x16B374D848, Bypass: true, Tier: TierBatch}
	b, _ := appendGet(nil, OpRefresh, 9, &q)
	want := "000000240105000000000009" + "85a171a171a1709101a47469657202a36c736ecf00000016b374d848a6627970617373c3"
	if hex.EncodeToString(b) != want {
		t.Errorf("REFRESH frame %x\nwant %s", b, want)
	}
	qs := make([]Query, MaxMGet+1)
	if _, err := appendMGet(nil, 1, qs); !errors.Is(err, ErrBadParams) {
		t.Errorf("257 MGET items: %v", err)
	}
	if _, err := appendMGet(nil, 1, []Query{Q("a"), {}}); !errors.Is(err, ErrBadParams) ||
		!strings.Contains(err.Error(), "item 1") {
		t.Errorf("MGET bad item: %v", err)
	}
	if _, err := appendHello(nil, 0, strings.Repeat("c", 65), ""); !errors.Is(err, ErrBadParams) {
		t.Errorf("long client name: %v", err)
	}
	// INVALIDATE: with "p": [] differs from without "p".
	withP, _ := appendInvalidate(nil, 1, "q", nil, true)
	without, _ := appendInvalidate(nil, 1, "q", nil, false)
	if hex.EncodeToString(withP[HeaderSize:]) != "82a171a171a17090" || hex.EncodeToString(without[HeaderSize:]) != "81a171a171" {
		t.Errorf("INVALIDATE bodies %x %x", withP, without)
	}
}

func TestSmallReplies(t *testing.T) {
	h, err := DecodeHello(body(omap{{"v", 1}, {"server", "cachesvc 0.1"}, {"max_frame", 1 << 20}, {"future", []any{1}}}))
	if err != nil || h.Version != 1 || h.Server != "cachesvc 0.1" || h.MaxFrame != 1<<20 {
		t.Errorf("hello %+v %v", h, err)
	}
	if _, err := DecodeHello(body(omap{{"v", 1}, {"server", "s"}})); !isLocalProtocol(err) {
		t.Errorf("hello without max_frame: %v", err)
	}
	if _, err := DecodeHello(body(omap{{"v", 1}, {"v", 1}, {"server", "s"}, {"max_frame", 1}})); !isLocalProtocol(err) {
		t.Errorf("hello with a duplicate key: %v", err)
	}
	if n, whole, err := DecodeInvalidate(body(omap{{"generation", uint64(1 << 40)}})); err != nil || !whole || n != 1<<40 {
		t.Errorf("invalidate: %v %v %v", n, whole, err)
	}
	if _, _, err := DecodeInvalidate(body(omap{{"deleted", 1}, {"x", 1}})); !isLocalProtocol(err) {
		t.Errorf("invalidate of 2 keys: %v", err)
	}
	s, err := DecodeStats(body(omap{{"hits", 3}, {"ratio", 0.5}, {"neg", -2}}))
	if err != nil || s.Counters["hits"] != 3 || s.Gauges["ratio"] != 0.5 || s.Counters["neg"] != -2 {
		t.Errorf("stats %+v %v", s, err)
	}
	if err := DecodeNil([]byte{0xc0}); err != nil {
		t.Error(err)
	}
	if err := DecodeNil([]byte{0x80}); !isLocalProtocol(err) {
		t.Errorf("PING reply {}: %v", err)
	}
}

// ts12 is a 12-byte msgpack timestamp (ext -1) with any seconds.
func ts12(sec int64, nsec uint32) raw {
	b := []byte{0xc7, 12, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[3:], nsec)
	binary.BigEndian.PutUint64(b[7:], uint64(sec))
	return raw(b)
}

func TestInfiniteTimestamps(t *testing.T) {
	cols := [][2]any{{"ts", 6}, {"tz", 7}}
	res, err := DecodeResult(resultBody(meta(1, 5, 0, false), cols, [][]any{
		{ts12(math.MaxInt64, 0), ts12(math.MinInt64, 0)},
		{ts12(math.MinInt64, 0), ts12(math.MaxInt64, 0)},
		{ts12(-1, 500000000), ts12(253402300800, 0)}}))
	if err != nil {
		t.Fatal(err)
	}
	r := res.Rows
	for _, c := range []struct {
		got  any
		want time.Time
	}{{r[0][0], InfinityTime}, {r[0][1], NegInfinityTime}, {r[1][0], NegInfinityTime}, {r[1][1], InfinityTime}} {
		if g := c.got.(time.Time); !g.Equal(c.want) || g.Location() != time.UTC {
			t.Errorf("got %v, want %v", g, c.want)
		}
	}
	if !InfinityTime.After(time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC)) ||
		!NegInfinityTime.Before(time.Date(-4713, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("infinities do not bound PostgreSQL's range: %v %v", InfinityTime, NegInfinityTime)
	}
	if got := r[2][0].(time.Time); !got.Equal(time.Unix(-1, 500000000)) {
		t.Errorf("pre-epoch %v", got)
	}
	if got := r[2][1].(time.Time); !got.Equal(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("year 10000 %v", got)
	}
	// seconds beyond time.Time's range that are not the infinity marker: refused
	for _, sec := range []int64{math.MaxInt64 - 1, math.MaxInt64 - unixToInternal + 1} {
		_, err := DecodeResult(resultBody(meta(1, 5, 0, false), cols[:1], [][]any{{ts12(sec, 0)}}))
		if !isLocalProtocol(err) {
			t.Errorf("seconds %d: %v", sec, err)
		}
	}
	_, err = DecodeResult(resultBody(meta(1, 5, 0, false), cols[:1], [][]any{{ts12(math.MaxInt64-unixToInternal, 0)}}))
	if err != nil {
		t.Errorf("latest representable second: %v", err)
	}
}

func TestMaxCells(t *testing.T) {
	rows := func(n, w int) [][]any {
		rs := make([][]any, n)
		for i := range rs {
			rs[i] = make([]any, w)
		}
		return rs
	}
	one := [][2]any{{"a", 2}}
	two := [][2]any{{"a", 2}, {"b", 2}}
	m := meta(0, 1, 0, false)
	if _, err := DecodeResultMax(resultBody(m, two, rows(5, 2)), 10); err != nil {
		t.Errorf("10 cells within 10: %v", err)
	}
	for _, b := range [][]byte{resultBody(m, two, rows(6, 2)), resultBody(m, one, rows(11, 1)),
		resultBody(m, nil, rows(11, 0))} {
		if _, err := DecodeResultMax(b, 10); !isLocalProtocol(err) {
			t.Errorf("over 10 cells: %v", err)
		}
	}
	item := []any{m, []any{[]any{[]any{"a", 2}}, []any{[]any{nil}, []any{nil}, []any{nil}}}}
	mget := body([]any{item, item, item, item})
	if _, err := DecodeMGetMax(mget, 4, 12); err != nil {
		t.Errorf("MGET of 12 cells: %v", err)
	}
	if _, err := DecodeMGetMax(mget, 4, 11); !isLocalProtocol(err) {
		t.Errorf("MGET over 11 cells (summed over items): %v", err)
	}
	// the default: a million
	if _, err := DecodeResult(resultBody(m, one, rows(DefaultMaxCells+1, 1))); !isLocalProtocol(err) {
		t.Errorf("over the default: %v", err)
	}
	if _, err := DecodeResult(resultBody(m, one, rows(DefaultMaxCells, 1))); err != nil {
		t.Errorf("the default: %v", err)
	}
}

func TestMaxCellsOption(t *testing.T) {
	s := scripted(t, func(n int, r req) [][]byte {
		rs := make([]any, 3)
		for i := range rs {
			rs[i] = []any{nil}
		}
		return [][]byte{frame(OpReplyFlag|OpGet, r.h.ID, body([]any{meta(0, 1, 0, false),
			[]any{[]any{[]any{"a", 2}}, rs}}))}
	})
	c, err := Dial(ctxT(t, 5*time.Second), Options{Addr: s.addr, MaxCells: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(ctxT(t, 5*time.Second), Q("q")); !isLocalProtocol(err) || c.Alive() {
		t.Fatalf("3 cells with MaxCells 2: %v alive=%v", err, c.Alive())
	}
}

// SHOW and ADMIN (PROTOCOL.md 3.8, 3.9): the request bytes, the rows kept whole (unknown
// columns too, columns in first-seen order), and every malformed reply refused.
func TestShowAdmin(t *testing.T) {
	b, err := appendShow(nil, 1, "queries")
	if err != nil || hex.EncodeToString(b) != "0000000e010800000000000181a477686174a771756572696573" {
		t.Errorf("SHOW frame %x %v", b, err)
	}
	b, err = appendAdmin(nil, 2, "pause", "q1")
	if v, _ := decodeBody(b[HeaderSize:]); err != nil || b[5] != OpAdmin || fmt.Sprint(v) != fmt.Sprint(omap{{"op", "pause"}, {"q", "q1"}}) {
		t.Errorf("ADMIN pause frame %x %v", b, err)
	}
	b, err = appendAdmin(nil, 3, "reload", "")
	if v, _ := decodeBody(b[HeaderSize:]); err != nil || fmt.Sprint(v) != fmt.Sprint(omap{{"op", "reload"}}) {
		t.Errorf("ADMIN reload frame %x %v", b, err)
	}
	for _, f := range []func() ([]byte, error){
		func() ([]byte, error) { return appendShow(nil, 1, "") },
		func() ([]byte, error) { return appendShow(nil, 1, strings.Repeat("v", 65)) },
		func() ([]byte, error) { return appendAdmin(nil, 1, "", "q") },
		func() ([]byte, error) { return appendAdmin(nil, 1, "pause", strings.Repeat("q", 65)) },
	} {
		if b, err := f(); !errors.Is(err, ErrBadParams) || len(b) != 0 {
			t.Errorf("a bad SHOW/ADMIN request encoded: %x %v", b, err)
		}
	}

	rows, cols, err := DecodeRows(body([]any{
		omap{{"name", "q1"}, {"params", "id:int8"}, {"generation", nil}, {"hits", 3}, {"pending_bump", false},
			{"ratio", 0.5}, {"big", int64(math.MinInt64)}, {"new_column", "kept"}},
		omap{{"name", "q2"}, {"later", uint64(7)}},
		omap{},
	}), DefaultMaxCells)
	want := []map[string]any{
		{"name": "q1", "params": "id:int8", "generation": nil, "hits": int64(3), "pending_bump": false,
			"ratio": 0.5, "big": int64(math.MinInt64), "new_column": "kept"},
		{"name": "q2", "later": int64(7)},
		{},
	}
	if err != nil || !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %#v %v", rows, err)
	}
	if fmt.Sprint(cols) != "[name params generation hits pending_bump ratio big new_column later]" {
		t.Errorf("columns %v", cols)
	}
	if rows, _, err := DecodeRows(body([]any{}), 1); err != nil || len(rows) != 0 {
		t.Errorf("no rows: %v %v", rows, err)
	}
	row, err := DecodeAdmin(body([]any{omap{{"reload", "applied"}, {"queries", 2}}}))
	if err != nil || !reflect.DeepEqual(row, map[string]any{"reload": "applied", "queries": int64(2)}) {
		t.Errorf("admin row %v %v", row, err)
	}
	if v, err := DecodeReply(OpReplyFlag|OpShow, body([]any{omap{{"a", 1}}})); err != nil || fmt.Sprint(v) != "{[a] [map[a:1]]}" {
		t.Errorf("DecodeReply SHOW: %v %v", v, err)
	}

	bad := map[string][]byte{
		"not an array":      body(omap{{"name", "q"}}),
		"nil":               body(nil),
		"row not a map":     body([]any{[]any{"q", 1}}),
		"array value":       body([]any{omap{{"a", []any{1}}}}),
		"map value":         body([]any{omap{{"a", omap{{"b", 1}}}}}),
		"bin value":         body([]any{omap{{"a", []byte("x")}}}),
		"timestamp value":   body([]any{omap{{"a", time.Unix(1, 0)}}}),
		"beyond int64":      body([]any{omap{{"a", uint64(math.MaxInt64) + 1}}}),
		"long column name":  body([]any{omap{{strings.Repeat("k", 129), 1}}}),
		"non-str key":       body([]any{omap{{1, 2}}}),
		"duplicate column":  body([]any{omap{{"a", 1}, {"a", 2}}}),
		"trailing bytes":    append(body([]any{omap{{"a", 1}}}), 0),
		"truncated":         body([]any{omap{{"a", 1}}})[:4],
		"count over budget": body([]any{omap{{"a", 1}}, omap{{"a", 2}}, omap{{"a", 3}}}),
	}
	for name, b := range bad {
		if _, _, err := DecodeRows(b, 2); !isLocalProtocol(err) {
			t.Errorf("%s: want a protocol error, got %v", name, err)
		}
	}
	if rows, _, err := DecodeRows(body([]any{omap{{strings.Repeat("k", 128), 1}}}), 1); err != nil || len(rows) != 1 {
		t.Errorf("a 128-byte column name: %v", err)
	}
	for name, b := range map[string][]byte{
		"no row":   body([]any{}),
		"two rows": body([]any{omap{{"a", 1}}, omap{{"a", 2}}}),
		"a map":    body(omap{{"query", "q"}}),
	} {
		if _, err := DecodeAdmin(b); !isLocalProtocol(err) {
			t.Errorf("ADMIN %s: want a protocol error, got %v", name, err)
		}
	}
}
