package cachesvc

// Test helpers: a generic MessagePack value model (decode any object, encode any test
// value) and reply frame builders for the fake servers.

import (
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// kv and omap are an ordered map (keys may be of any type).
type kv struct{ K, V any }
type omap []kv

// extVal is an ext other than a valid timestamp.
type extVal struct {
	Type int8
	Data []byte
}

// tsVal is a timestamp ext.
type tsVal struct {
	Sec  int64
	Nsec uint32
}

// decodeAny decodes one whole object at depth: uint64 for unsigned formats, int64 for
// signed ones, float64, string, []byte, []any, omap, tsVal or extVal.
func decodeAny(r *reader, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, errDepth
	}
	o, err := r.next()
	if err != nil {
		return nil, err
	}
	switch o.kind {
	case kNil:
		return nil, nil
	case kBool:
		return o.b, nil
	case kUint:
		return o.u, nil
	case kInt:
		return o.i, nil
	case kFloat:
		return o.f, nil
	case kStr:
		return string(o.data), nil
	case kBin:
		return append([]byte{}, o.data...), nil
	case kExt:
		if s, ns, ok := o.timestamp(); ok {
			return tsVal{s, ns}, nil
		}
		return extVal{o.ext, append([]byte{}, o.data...)}, nil
	case kArray:
		a := make([]any, 0, o.n)
		for i := uint32(0); i < o.n; i++ {
			v, err := decodeAny(r, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	}
	m := make(omap, 0, o.n)
	for i := uint32(0); i < o.n; i++ {
		k, err := decodeAny(r, depth+1)
		if err != nil {
			return nil, err
		}
		v, err := decodeAny(r, depth+1)
		if err != nil {
			return nil, err
		}
		m = append(m, kv{k, v})
	}
	return m, nil
}

// decodeBody decodes a whole body (exactly one object).
func decodeBody(b []byte) (any, error) {
	r := reader{b: b}
	v, err := decodeAny(&r, 1)
	if err == nil && r.left() != 0 {
		err = protoErr("trailing bytes")
	}
	return v, err
}

// enc appends a test value in the shortest encoding.
func enc(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return appendNil(b)
	case bool:
		return appendBool(b, x)
	case int:
		return appendInt(b, int64(x))
	case int64:
		return appendInt(b, x)
	case uint64:
		return appendUint(b, x)
	case float64:
		return appendFloat64(b, x)
	case string:
		return appendStr(b, x)
	case []byte:
		return appendBin(b, x)
	case time.Time:
		return appendTimestamp(b, x.Unix(), uint32(x.Nanosecond()))
	case tsVal:
		return appendTimestamp(b, x.Sec, x.Nsec)
	case raw:
		return append(b, x...)
	case []any:
		b = appendArrayHeader(b, len(x))
		for _, e := range x {
			b = enc(b, e)
		}
		return b
	case omap:
		b = appendMapHeader(b, len(x))
		for _, e := range x {
			b = enc(enc(b, e.K), e.V)
		}
		return b
	}
	panic(fmt.Sprintf("enc: %T", v))
}

// raw is pre-encoded bytes spliced into enc's output.
type raw []byte

func body(v any) []byte { return enc(nil, v) }

// frame builds a whole frame.
func frame(op byte, id uint32, body []byte) []byte {
	b := appendHeader(nil, op, id)
	return finishFrame(append(b, body...), 0)
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// meta builds a meta map.
func meta(src int, lsn uint64, age int, stale bool) omap {
	return omap{{"src", src}, {"lsn", lsn}, {"age", age}, {"stale", stale}}
}

// resultBody builds [meta, [cols, rows]].
func resultBody(m omap, cols [][2]any, rows [][]any) []byte {
	cs := make([]any, len(cols))
	for i, c := range cols {
		cs[i] = []any{c[0], c[1]}
	}
	rs := make([]any, len(rows))
	for i, r := range rows {
		rs[i] = r
	}
	return body([]any{m, []any{cs, rs}})
}

func errBody(code int, msg string) []byte { return body(omap{{"code", code}, {"msg", msg}}) }

var _ = math.MaxInt64
