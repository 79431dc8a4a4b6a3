package cachesvc

// A small MessagePack codec: the subset the cachesvc protocol uses (PROTOCOL.md sections 1
// and 4). The decoder never allocates from a count or a length before checking it against
// the bytes that remain in the body (section 7), and every failure is a *Error with code
// protocol: it can neither panic nor allocate more than a few times its input.

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// MaxDepth is the protocol's nesting limit: the body itself is depth 1.
const MaxDepth = 8

// ---- Encoder ---------------------------------------------------------------------------

// Every append* function appends the shortest encoding of its value to b.

func appendNil(b []byte) []byte { return append(b, 0xc0) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(int8(v)))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(int8(v)))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(int16(v)))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(int32(v)))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func appendFloat64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
}

func appendStr(b []byte, s string) []byte { return append(appendStrHeader(b, len(s)), s...) }

func appendBin(b []byte, v []byte) []byte {
	n := len(v)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, v...)
}

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func appendMapHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

// appendTimestamp appends the MessagePack timestamp extension (type -1) in its shortest
// form: 4 bytes (u32 seconds), 8 bytes (30-bit nanoseconds, 34-bit seconds) or 12 bytes.
func appendTimestamp(b []byte, sec int64, nsec uint32) []byte {
	if sec >= 0 && sec>>34 == 0 {
		if nsec == 0 && sec <= math.MaxUint32 {
			return binary.BigEndian.AppendUint32(append(b, 0xd6, 0xff), uint32(sec))
		}
		return binary.BigEndian.AppendUint64(append(b, 0xd7, 0xff), uint64(nsec)<<34|uint64(sec))
	}
	b = binary.BigEndian.AppendUint32(append(b, 0xc7, 12, 0xff), nsec)
	return binary.BigEndian.AppendUint64(b, uint64(sec))
}

// ---- Decoder ---------------------------------------------------------------------------

type kind uint8

const (
	kNil kind = iota
	kBool
	kUint // unsigned formats and positive fixint
	kInt  // signed formats and negative fixint, whatever the sign of the value
	kFloat
	kStr
	kBin
	kArray
	kMap
	kExt
)

var kindNames = [...]string{"nil", "bool", "uint", "int", "float", "str", "bin", "array", "map", "ext"}

func (k kind) String() string { return kindNames[k] }

// obj is one decoded object header. Str, bin and ext payloads are sliced from the input
// (never copied); array and map elements follow in the input.
type obj struct {
	kind kind
	ext  int8   // ext type
	n    uint32 // str/bin/ext length; array/map count (pairs for a map)
	data []byte // str/bin/ext payload
	u    uint64 // kUint
	i    int64  // kInt
	f    float64
	b    bool
}

// reader reads MessagePack objects from one frame body.
type reader struct {
	b     []byte
	p     int
	cells int // result cells still allowed (decodeResult): rows x max(columns, 1)
}

func (r *reader) left() int { return len(r.b) - r.p }

func protoErr(format string, args ...any) *Error {
	return &Error{Code: CodeProtocol, Msg: fmt.Sprintf(format, args...), Local: true}
}

var errTrunc = protoErr("truncated msgpack")

func (r *reader) take(n int) ([]byte, error) {
	if n < 0 || r.left() < n {
		return nil, errTrunc
	}
	s := r.b[r.p : r.p+n : r.p+n]
	r.p += n
	return s, nil
}

func (r *reader) payload(o *obj, k kind, n uint64) error {
	if n > uint64(r.left()) {
		return protoErr("%s length %d exceeds the %d bytes remaining", k, n, r.left())
	}
	o.kind, o.n = k, uint32(n)
	o.data, _ = r.take(int(n))
	return nil
}

func (r *reader) container(o *obj, k kind, n uint64) error {
	need := n
	if k == kMap {
		need = 2 * n
	}
	if need > uint64(r.left()) {
		return protoErr("%s count %d exceeds the %d bytes remaining", k, n, r.left())
	}
	o.kind, o.n = k, uint32(n)
	return nil
}

func (r *reader) ext(o *obj, n uint64) error {
	t, err := r.take(1)
	if err != nil {
		return err
	}
	o.ext = int8(t[0])
	return r.payload(o, kExt, n)
}

// next reads one object header.
func (r *reader) next() (obj, error) {
	var o obj
	q, err := r.take(1)
	if err != nil {
		return o, err
	}
	c := q[0]
	switch {
	case c <= 0x7f:
		o.kind, o.u = kUint, uint64(c)
		return o, nil
	case c >= 0xe0:
		o.kind, o.i = kInt, int64(int8(c))
		return o, nil
	case c&0xf0 == 0x80:
		return o, r.container(&o, kMap, uint64(c&0x0f))
	case c&0xf0 == 0x90:
		return o, r.container(&o, kArray, uint64(c&0x0f))
	case c&0xe0 == 0xa0:
		return o, r.payload(&o, kStr, uint64(c&0x1f))
	}
	switch c {
	case 0xc0:
		o.kind = kNil
		return o, nil
	case 0xc1:
		return o, protoErr("invalid msgpack byte 0xc1")
	case 0xc2, 0xc3:
		o.kind, o.b = kBool, c == 0xc3
		return o, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1/2/4/8/16
		return o, r.ext(&o, 1<<(c-0xd4))
	}
	// The remaining formats carry a 1, 2, 4 or 8 byte argument.
	var n int
	switch c {
	case 0xc4, 0xc7, 0xcc, 0xd0, 0xd9:
		n = 1
	case 0xc5, 0xc8, 0xcd, 0xd1, 0xda, 0xdc, 0xde:
		n = 2
	case 0xc6, 0xc9, 0xca, 0xce, 0xd2, 0xdb, 0xdd, 0xdf:
		n = 4
	default: // 0xcb, 0xcf, 0xd3
		n = 8
	}
	a, err := r.take(n)
	if err != nil {
		return o, err
	}
	var v uint64
	for _, x := range a {
		v = v<<8 | uint64(x)
	}
	switch c {
	case 0xc4, 0xc5, 0xc6:
		return o, r.payload(&o, kBin, v)
	case 0xc7, 0xc8, 0xc9:
		return o, r.ext(&o, v)
	case 0xca:
		o.kind, o.f = kFloat, float64(math.Float32frombits(uint32(v)))
	case 0xcb:
		o.kind, o.f = kFloat, math.Float64frombits(v)
	case 0xcc, 0xcd, 0xce, 0xcf:
		o.kind, o.u = kUint, v
	case 0xd0:
		o.kind, o.i = kInt, int64(int8(v))
	case 0xd1:
		o.kind, o.i = kInt, int64(int16(v))
	case 0xd2:
		o.kind, o.i = kInt, int64(int32(v))
	case 0xd3:
		o.kind, o.i = kInt, int64(v)
	case 0xd9, 0xda, 0xdb:
		return o, r.payload(&o, kStr, v)
	case 0xdc, 0xdd:
		return o, r.container(&o, kArray, v)
	default: // 0xde, 0xdf
		return o, r.container(&o, kMap, v)
	}
	return o, nil
}

// skip skips one whole object sitting at nesting depth `depth` (the body is depth 1).
func (r *reader) skip(depth int) error {
	if depth > MaxDepth {
		return errDepth
	}
	o, err := r.next()
	if err != nil {
		return err
	}
	return r.skipChildren(&o, depth)
}

var errDepth = protoErr("nesting deeper than %d", MaxDepth)

// skipChildren skips the elements of a container whose header o was read at depth.
func (r *reader) skipChildren(o *obj, depth int) error {
	if o.kind != kArray && o.kind != kMap {
		return nil
	}
	n := uint64(o.n)
	if o.kind == kMap {
		n *= 2
	}
	for i := uint64(0); i < n; i++ {
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// asUint returns an integer object as a uint64 (false if negative or not an integer).
func (o *obj) asUint() (uint64, bool) {
	switch {
	case o.kind == kUint:
		return o.u, true
	case o.kind == kInt && o.i >= 0:
		return uint64(o.i), true
	}
	return 0, false
}

// asInt returns an integer object as an int64 (false if above MaxInt64 or not an integer).
func (o *obj) asInt() (int64, bool) {
	switch {
	case o.kind == kInt:
		return o.i, true
	case o.kind == kUint && o.u <= math.MaxInt64:
		return int64(o.u), true
	}
	return 0, false
}

func (o *obj) isStr(s string) bool { return o.kind == kStr && string(o.data) == s }

// timestamp decodes a MessagePack timestamp ext (type -1; 4, 8 or 12 bytes).
func (o *obj) timestamp() (sec int64, nsec uint32, ok bool) {
	if o.kind != kExt || o.ext != -1 {
		return 0, 0, false
	}
	d := o.data
	switch len(d) {
	case 4:
		sec = int64(binary.BigEndian.Uint32(d))
	case 8:
		v := binary.BigEndian.Uint64(d)
		nsec, sec = uint32(v>>34), int64(v&(1<<34-1))
	case 12:
		nsec, sec = binary.BigEndian.Uint32(d), int64(binary.BigEndian.Uint64(d[4:]))
	default:
		return 0, 0, false
	}
	if nsec > 999999999 {
		return 0, 0, false
	}
	return sec, nsec, true
}

// unixToInternal is time's offset from Unix seconds to its own (seconds since year 1):
// time.Unix(sec, _) overflows for sec above math.MaxInt64 - unixToInternal.
const unixToInternal int64 = (1969*365 + 1969/4 - 1969/100 + 1969/400) * 86400

// InfinityTime and NegInfinityTime are the values of timestamp and timestamptz cells
// holding PostgreSQL's 'infinity' and '-infinity'. The server sends them as the timestamp
// with seconds math.MaxInt64 / math.MinInt64 and nanoseconds 0 (PROTOCOL.md section 4);
// they decode to the latest and the earliest time.Time that time.Unix can give, in UTC,
// far outside PostgreSQL's range (4713 BC .. 294276 AD), so t.Equal(InfinityTime) tells
// them apart and they sort after / before every real value. Compare with Equal, not ==.
var (
	InfinityTime    = time.Unix(math.MaxInt64-unixToInternal, 999999999).UTC()
	NegInfinityTime = time.Unix(math.MinInt64, 0).UTC()
)

// timeOf converts a timestamp to a time.Time in UTC (±infinity to InfinityTime and
// NegInfinityTime); false when the seconds are beyond what a time.Time can hold.
func timeOf(sec int64, nsec uint32) (time.Time, bool) {
	switch {
	case sec == math.MaxInt64 && nsec == 0:
		return InfinityTime, true
	case sec == math.MinInt64 && nsec == 0:
		return NegInfinityTime, true
	case sec > math.MaxInt64-unixToInternal:
		return time.Time{}, false
	}
	return time.Unix(sec, int64(nsec)).UTC(), true
}
