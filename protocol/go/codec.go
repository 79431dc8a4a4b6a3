package cachesvc

// Frames, request encoders and reply decoders (pure: no I/O).

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"time"
	"unicode/utf8"
)

// Opcodes (PROTOCOL.md section 3).
const (
	OpHello      byte = 0x01
	OpPing       byte = 0x02
	OpGet        byte = 0x03
	OpMGet       byte = 0x04
	OpRefresh    byte = 0x05
	OpInvalidate byte = 0x06
	OpStats      byte = 0x07
	OpShow       byte = 0x08
	OpAdmin      byte = 0x09
	OpReplyFlag  byte = 0x80
	OpError      byte = 0xFF
)

// Protocol constants and hard limits (PROTOCOL.md sections 1 and 7).
const (
	ProtocolVersion = 1
	HeaderSize      = 12
	DefaultMaxFrame = 1 << 20  // request body limit until HELLO says otherwise
	DefaultMaxReply = 64 << 20 // reply body limit of this client unless Options.MaxReply
	// DefaultMaxCells bounds the cells of one reply (rows x columns, a row of no columns
	// counting 1, summed over MGET items) unless Options.MaxCells: a 64 MiB reply of
	// one-column NULL rows would otherwise cost gigabytes.
	DefaultMaxCells = 1000000
	MaxParams       = 16
	MaxName         = 64 // query name and HELLO client name, bytes
	MaxToken        = 256
	MaxMGet         = 256
	MaxMsg          = 1024
	MaxColumns      = 1664
	MaxColumnName   = 64
	MaxStatName     = 128
	MaxRowKey       = 128 // a SHOW/ADMIN row's column name, bytes
)

// Header is a frame header.
type Header struct {
	Len    uint32 // body length
	Opcode byte
	ID     uint32
}

// ParseHeader checks a 12-byte frame header: version 1, flags 0, and a body length of
// 1..max bytes. Any violation is a *Error with CodeProtocol, reported before the body is
// read or allocated.
func ParseHeader(h []byte, max uint32) (Header, error) {
	if len(h) < HeaderSize {
		return Header{}, protoErr("truncated frame header (%d bytes)", len(h))
	}
	hd := Header{Len: binary.BigEndian.Uint32(h), Opcode: h[5], ID: binary.BigEndian.Uint32(h[8:])}
	if h[4] != ProtocolVersion {
		return hd, protoErr("frame version %d, expected %d", h[4], ProtocolVersion)
	}
	if f := binary.BigEndian.Uint16(h[6:]); f != 0 {
		return hd, protoErr("frame flags 0x%04x, expected 0", f)
	}
	if hd.Len == 0 {
		return hd, protoErr("empty frame body")
	}
	if hd.Len > max {
		return hd, protoErr("frame body of %d bytes exceeds the limit of %d", hd.Len, max)
	}
	return hd, nil
}

// appendHeader appends a header with a zero length; finish sets it.
func appendHeader(b []byte, op byte, id uint32) []byte {
	return binary.BigEndian.AppendUint32(append(b, 0, 0, 0, 0, ProtocolVersion, op, 0, 0), id)
}

// finishFrame sets the body length of the frame that starts at b[start:].
func finishFrame(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-HeaderSize))
	return b
}

func argErr(format string, args ...any) *Error {
	return &Error{Code: CodeBadParams, Msg: fmt.Sprintf(format, args...), Local: true}
}

// ---- Requests --------------------------------------------------------------------------

// appendHello appends a HELLO frame (token left out when empty).
func appendHello(b []byte, id uint32, client, token string) ([]byte, error) {
	if len(client) > MaxName {
		return b, argErr("client name of %d bytes (at most %d)", len(client), MaxName)
	}
	if len(token) > MaxToken {
		return b, argErr("token of %d bytes (at most %d)", len(token), MaxToken)
	}
	start := len(b)
	b = appendHeader(b, OpHello, id)
	n := 2
	if token != "" {
		n = 3
	}
	b = appendMapHeader(b, n)
	b = appendUint(appendStr(b, "v"), ProtocolVersion)
	b = appendStr(appendStr(b, "client"), client)
	if token != "" {
		b = appendStr(appendStr(b, "token"), token)
	}
	return finishFrame(b, start), nil
}

// appendEmpty appends a PING or STATS frame (body nil).
func appendEmpty(b []byte, op byte, id uint32) []byte {
	start := len(b)
	return finishFrame(appendNil(appendHeader(b, op, id)), start)
}

func checkName(q string) error {
	if len(q) < 1 || len(q) > MaxName {
		return argErr("query name of %d bytes (1..%d)", len(q), MaxName)
	}
	return nil
}

// appendParams appends "p": [values].
func appendParams(b []byte, params []any) ([]byte, error) {
	if len(params) > MaxParams {
		return b, argErr("%d parameters (at most %d)", len(params), MaxParams)
	}
	b = appendArrayHeader(appendStr(b, "p"), len(params))
	var err error
	for i, p := range params {
		if b, err = appendValue(b, p); err != nil {
			return b, argErr("parameter %d: %s", i+1, err.(*Error).Msg)
		}
	}
	return b, nil
}

// appendQuery appends one GET map, leaving out keys that hold their default (the canonical
// encoding of protocol/conformance/README.md).
func appendQuery(b []byte, q *Query) ([]byte, error) {
	if err := checkName(q.Name); err != nil {
		return b, err
	}
	tier, ok := q.Tier.wire()
	if !ok {
		return b, argErr("tier %d out of range", q.Tier)
	}
	n := 1 // "q"; "p" is left out when empty (its default)
	if len(q.Params) > 0 {
		n++
	}
	if q.Tier != TierDefault {
		n++
	}
	if q.MinLSN != 0 {
		n++
	}
	if q.Shard != "" {
		if err := checkShard(q.Shard); err != nil {
			return b, argErr("%s", err)
		}
		if q.MinLSN == 0 {
			return b, argErr("a token's shard (%q) needs a nonzero MinLSN", q.Shard)
		}
		n++
	}
	if q.Bypass {
		n++
	}
	b = appendStr(appendStr(appendMapHeader(b, n), "q"), q.Name)
	if len(q.Params) > 0 {
		var err error
		if b, err = appendParams(b, q.Params); err != nil {
			return b, err
		}
	}
	if q.Tier != TierDefault {
		b = appendUint(appendStr(b, "tier"), tier)
	}
	if q.MinLSN != 0 {
		b = appendUint(appendStr(b, "lsn"), uint64(q.MinLSN))
	}
	if q.Shard != "" {
		b = appendStr(appendStr(b, "shard"), q.Shard)
	}
	if q.Bypass {
		b = appendBool(appendStr(b, "bypass"), true)
	}
	return b, nil
}

// appendGet appends a GET or REFRESH frame.
func appendGet(b []byte, op byte, id uint32, q *Query) ([]byte, error) {
	start := len(b)
	b, err := appendQuery(appendHeader(b, op, id), q)
	if err != nil {
		return b[:start], err
	}
	return finishFrame(b, start), nil
}

// appendMGet appends an MGET frame.
func appendMGet(b []byte, id uint32, qs []Query) ([]byte, error) {
	if len(qs) > MaxMGet {
		return b, argErr("MGET of %d items (at most %d)", len(qs), MaxMGet)
	}
	start := len(b)
	b = appendArrayHeader(appendHeader(b, OpMGet, id), len(qs))
	var err error
	for i := range qs {
		if b, err = appendQuery(b, &qs[i]); err != nil {
			e := err.(*Error)
			return b[:start], argErr("item %d: %s", i, e.Msg)
		}
	}
	return finishFrame(b, start), nil
}

// appendInvalidate appends an INVALIDATE frame: of one key (withParams) or of the whole
// query.
func appendInvalidate(b []byte, id uint32, q string, params []any, withParams bool) ([]byte, error) {
	if err := checkName(q); err != nil {
		return b, err
	}
	start := len(b)
	n := 1
	if withParams {
		n = 2
	}
	b = appendStr(appendStr(appendMapHeader(appendHeader(b, OpInvalidate, id), n), "q"), q)
	if withParams {
		var err error
		if b, err = appendParams(b, params); err != nil {
			return b[:start], err
		}
	}
	return finishFrame(b, start), nil
}

// appendNames appends a SHOW or ADMIN frame: a map of the keys whose values are not ""
// (each 1..64 bytes).
func appendNames(b []byte, op byte, id uint32, kv ...string) ([]byte, error) {
	n := 0
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if len(kv[i+1]) > MaxName {
			return b, argErr("%s of %d bytes (1..%d)", kv[i], len(kv[i+1]), MaxName)
		}
		n++
	}
	start := len(b)
	b = appendMapHeader(appendHeader(b, op, id), n)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] != "" {
			b = appendStr(appendStr(b, kv[i]), kv[i+1])
		}
	}
	return finishFrame(b, start), nil
}

// appendShow appends a SHOW frame: {"what": view}.
func appendShow(b []byte, id uint32, view string) ([]byte, error) {
	if view == "" {
		return b, argErr("an empty view name")
	}
	return appendNames(b, OpShow, id, "what", view)
}

// appendAdmin appends an ADMIN frame: {"op": op, "q": query}, q left out when query is "".
func appendAdmin(b []byte, id uint32, op, query string) ([]byte, error) {
	if op == "" {
		return b, argErr("an empty ADMIN op")
	}
	return appendNames(b, OpAdmin, id, "op", op, "q", query)
}

// appendValue appends one parameter value (see Query for the Go types accepted).
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return appendNil(b), nil
	case bool:
		return appendBool(b, x), nil
	case int:
		return appendInt(b, int64(x)), nil
	case int8:
		return appendInt(b, int64(x)), nil
	case int16:
		return appendInt(b, int64(x)), nil
	case int32:
		return appendInt(b, int64(x)), nil
	case int64:
		return appendInt(b, x), nil
	case uint:
		return appendBigUint(b, uint64(x))
	case uint8:
		return appendUint(b, uint64(x)), nil
	case uint16:
		return appendUint(b, uint64(x)), nil
	case uint32:
		return appendUint(b, uint64(x)), nil
	case uint64:
		return appendBigUint(b, x)
	case LSN:
		return appendBigUint(b, uint64(x))
	case float32:
		return appendFloat64(b, float64(x)), nil
	case float64:
		return appendFloat64(b, x), nil
	case string:
		return appendStr(b, x), nil
	case []byte:
		if x == nil {
			return appendNil(b), nil
		}
		return appendBin(b, x), nil
	case json.RawMessage:
		if x == nil {
			return appendNil(b), nil
		}
		return appendStr(b, string(x)), nil
	case Decimal:
		if x.s == "" {
			return b, argErr("the zero Decimal is not a number (use ParseDecimal)")
		}
		return appendStr(b, x.s), nil
	case *Decimal:
		if x == nil {
			return appendNil(b), nil
		}
		return appendValue(b, *x)
	case *big.Rat:
		if x == nil {
			return appendNil(b), nil
		}
		s, ok := ratText(x)
		if !ok {
			return b, argErr("%s has no finite decimal expansion", x.String())
		}
		return appendStr(b, s), nil
	case *big.Int:
		if x == nil {
			return appendNil(b), nil
		}
		if x.IsInt64() {
			return appendInt(b, x.Int64()), nil
		}
		return appendStr(b, x.String()), nil // numeric parameters take the text
	case time.Time:
		if x.IsZero() {
			return b, argErr("the zero time.Time is not a timestamp (send nil for NULL)")
		}
		return appendTimestamp(b, x.Unix(), uint32(x.Nanosecond())), nil
	case *time.Time:
		if x == nil {
			return appendNil(b), nil
		}
		return appendValue(b, *x)
	}
	return b, argErr("values of type %T cannot be sent", v)
}

func appendBigUint(b []byte, v uint64) ([]byte, error) {
	if v > math.MaxInt64 {
		return b, argErr("integer %d does not fit int64", v)
	}
	return appendUint(b, v), nil
}

// ratText is the exact decimal text of r, if r has a finite decimal expansion.
func ratText(r *big.Rat) (string, bool) {
	d := new(big.Int).Set(r.Denom())
	two, five, rem := big.NewInt(2), big.NewInt(5), new(big.Int)
	n2, n5 := 0, 0
	for d.Cmp(big.NewInt(1)) != 0 {
		if new(big.Int).QuoRem(d, two, rem); rem.Sign() == 0 {
			d.Quo(d, two)
			n2++
		} else if new(big.Int).QuoRem(d, five, rem); rem.Sign() == 0 {
			d.Quo(d, five)
			n5++
		} else {
			return "", false
		}
	}
	scale := n2
	if n5 > scale {
		scale = n5
	}
	return r.FloatString(scale), true
}

// ---- Replies ---------------------------------------------------------------------------

// decodeErrorMap decodes an error reply or an MGET item error map whose header m was read:
// {"code": uint 1..255, "msg": str <= 1024 bytes}; item errors may say "err" for "code"
// (servers before the item errors took the error reply's shape), not both. Any other key
// is a protocol error (PROTOCOL.md 3.4).
func decodeErrorMap(r *reader, m *obj, item bool) (*Error, error) {
	var code uint64
	var msg string
	seen := 0
	for i := uint32(0); i < m.n; i++ {
		k, err := r.next()
		if err != nil {
			return nil, err
		}
		switch {
		case k.isStr("code") || (item && k.isStr("err")):
			if seen&1 != 0 {
				return nil, protoErr("error: duplicate code")
			}
			v, err := r.next()
			if err != nil {
				return nil, err
			}
			u, ok := v.asUint()
			if !ok || u < 1 || u > 255 {
				return nil, protoErr("error code must be an integer 1..255")
			}
			code, seen = u, seen|1
		case k.isStr("msg"):
			if seen&2 != 0 {
				return nil, protoErr("error: duplicate msg")
			}
			v, err := r.next()
			if err != nil {
				return nil, err
			}
			if v.kind != kStr || v.n > MaxMsg {
				return nil, protoErr("error msg must be a string of at most %d bytes", MaxMsg)
			}
			msg, seen = string(v.data), seen|2
		default:
			return nil, protoErr("error map: unknown key (only code and msg)")
		}
	}
	if seen != 3 {
		return nil, protoErr("an error map needs code and msg")
	}
	if !utf8.ValidString(msg) {
		msg = string([]rune(msg)) // keep it printable: invalid bytes become U+FFFD
	}
	return &Error{Code: Code(code), Msg: msg}, nil
}

// DecodeError decodes the body of an error reply (opcode 0xFF).
func DecodeError(body []byte) (*Error, error) {
	r := reader{b: body}
	m, err := r.next()
	if err != nil {
		return nil, err
	}
	if m.kind != kMap {
		return nil, protoErr("error reply must be a map")
	}
	e, err := decodeErrorMap(&r, &m, false)
	if err != nil {
		return nil, err
	}
	if r.left() != 0 {
		return nil, protoErr("trailing bytes after the error reply")
	}
	return e, nil
}

// DecodeHello decodes a HELLO reply body: {"v": uint, "server": str, "max_frame": uint}.
// Unknown keys are skipped.
func DecodeHello(body []byte) (HelloInfo, error) {
	var h HelloInfo
	r := reader{b: body}
	m, err := r.next()
	if err != nil {
		return h, err
	}
	if m.kind != kMap {
		return h, protoErr("HELLO reply must be a map")
	}
	seen := 0
	for i := uint32(0); i < m.n; i++ {
		k, err := r.next()
		if err != nil {
			return h, err
		}
		bit := 0
		switch {
		case k.isStr("v"):
			bit = 1
		case k.isStr("server"):
			bit = 2
		case k.isStr("max_frame"):
			bit = 4
		case k.kind != kStr:
			return h, protoErr("HELLO reply key must be a string")
		default:
			if err := r.skip(2); err != nil {
				return h, err
			}
			continue
		}
		if seen&bit != 0 {
			return h, protoErr("HELLO reply: duplicate key %q", k.data)
		}
		seen |= bit
		v, err := r.next()
		if err != nil {
			return h, err
		}
		if bit == 2 {
			if v.kind != kStr || v.n > MaxName {
				return h, protoErr("HELLO reply: server must be a string of at most %d bytes", MaxName)
			}
			h.Server = string(v.data)
			continue
		}
		u, ok := v.asUint()
		if !ok || u > math.MaxUint32 {
			return h, protoErr("HELLO reply: %s must be an integer 0..2^32-1", k.data)
		}
		if bit == 1 {
			h.Version = uint32(u)
		} else {
			h.MaxFrame = uint32(u)
		}
	}
	if seen != 7 {
		return h, protoErr("HELLO reply needs v, server and max_frame")
	}
	if r.left() != 0 {
		return h, protoErr("trailing bytes after the HELLO reply")
	}
	return h, nil
}

// DecodeNil decodes the body of a PING reply (nil).
func DecodeNil(body []byte) error {
	if len(body) != 1 || body[0] != 0xc0 {
		return protoErr("expected a nil body")
	}
	return nil
}

// DecodeInvalidate decodes an INVALIDATE reply: {"deleted": n} (wholeQuery false) or
// {"generation": n} (wholeQuery true).
func DecodeInvalidate(body []byte) (n uint64, wholeQuery bool, err error) {
	r := reader{b: body}
	m, err := r.next()
	if err != nil {
		return 0, false, err
	}
	if m.kind != kMap || m.n != 1 {
		return 0, false, protoErr("INVALIDATE reply must be a map of one key")
	}
	k, err := r.next()
	if err != nil {
		return 0, false, err
	}
	v, err := r.next()
	if err != nil {
		return 0, false, err
	}
	u, ok := v.asUint()
	if !ok {
		return 0, false, protoErr("INVALIDATE reply value must be an unsigned integer")
	}
	switch {
	case k.isStr("deleted"):
	case k.isStr("generation"):
		wholeQuery = true
	default:
		return 0, false, protoErr("INVALIDATE reply key must be deleted or generation")
	}
	if r.left() != 0 {
		return 0, false, protoErr("trailing bytes after the INVALIDATE reply")
	}
	return u, wholeQuery, nil
}

// DecodeStats decodes a STATS reply: a map of str (<= 128 bytes) to int or float.
func DecodeStats(body []byte) (Stats, error) {
	s := Stats{Counters: map[string]int64{}, Gauges: map[string]float64{}}
	r := reader{b: body}
	m, err := r.next()
	if err != nil {
		return s, err
	}
	if m.kind != kMap {
		return s, protoErr("STATS reply must be a map")
	}
	for i := uint32(0); i < m.n; i++ {
		k, err := r.next()
		if err != nil {
			return s, err
		}
		if k.kind != kStr || k.n > MaxStatName {
			return s, protoErr("STATS name must be a string of at most %d bytes", MaxStatName)
		}
		v, err := r.next()
		if err != nil {
			return s, err
		}
		name := string(k.data)
		if v.kind == kFloat {
			s.Gauges[name] = v.f
		} else if iv, ok := v.asInt(); ok {
			s.Counters[name] = iv
		} else {
			return s, protoErr("STATS %q must be an integer or a float", name)
		}
	}
	if r.left() != 0 {
		return s, protoErr("trailing bytes after the STATS reply")
	}
	return s, nil
}

// DecodeRows decodes a SHOW or ADMIN reply body (PROTOCOL.md 3.8): an array of rows, each
// a map of column name (str of at most MaxRowKey bytes, once per row) to a scalar: nil,
// bool, int64, float64 or string. It returns the rows and the columns: the union of the
// rows' keys in first-seen order (a row may leave a column out; columns unknown to this
// client are kept). Rows count against maxCells as a result's do (rows x max(columns, 1)).
// Anything else is a protocol error.
func DecodeRows(body []byte, maxCells int) ([]map[string]any, []string, error) {
	r := reader{b: body}
	a, err := r.next()
	if err != nil {
		return nil, nil, err
	}
	if a.kind != kArray {
		return nil, nil, protoErr("SHOW/ADMIN reply must be an array of rows")
	}
	rows := make([]map[string]any, 0, minInt(int(a.n), 1024))
	var cols []string
	seen := map[string]bool{}
	cells := int64(0)
	for i := uint32(0); i < a.n; i++ {
		m, err := r.next()
		if err != nil {
			return nil, nil, err
		}
		if m.kind != kMap {
			return nil, nil, protoErr("SHOW/ADMIN row %d must be a map", i)
		}
		if cells += int64(m.n); m.n == 0 {
			cells++
		}
		if cells > int64(maxCells) {
			return nil, nil, protoErr("reply of more than %d cells (Options.MaxCells)", maxCells)
		}
		row := make(map[string]any, m.n)
		for j := uint32(0); j < m.n; j++ {
			k, err := r.next()
			if err != nil {
				return nil, nil, err
			}
			if k.kind != kStr || k.n > MaxRowKey {
				return nil, nil, protoErr("SHOW/ADMIN row %d: a column name must be a string of at most %d bytes", i, MaxRowKey)
			}
			name := string(k.data)
			if _, dup := row[name]; dup {
				return nil, nil, protoErr("SHOW/ADMIN row %d: column %q twice", i, name)
			}
			v, err := r.next()
			if err != nil {
				return nil, nil, err
			}
			var val any
			switch v.kind {
			case kNil:
			case kBool:
				val = v.b
			case kUint, kInt:
				iv, ok := v.asInt()
				if !ok {
					return nil, nil, protoErr("SHOW/ADMIN row %d %q: integer above int64", i, name)
				}
				val = iv
			case kFloat:
				val = v.f
			case kStr:
				val = string(v.data)
			default:
				return nil, nil, protoErr("SHOW/ADMIN row %d %q: %s is not a scalar (nil, bool, int, float, str)", i, name, v.kind)
			}
			row[name] = val
			if !seen[name] {
				seen[name] = true
				cols = append(cols, name)
			}
		}
		rows = append(rows, row)
	}
	if r.left() != 0 {
		return nil, nil, protoErr("trailing bytes after the SHOW/ADMIN reply")
	}
	return rows, cols, nil
}

// DecodeAdmin decodes an ADMIN reply body: exactly one row (see DecodeRows).
func DecodeAdmin(body []byte) (map[string]any, error) {
	rows, _, err := DecodeRows(body, DefaultMaxCells)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 {
		return nil, protoErr("ADMIN reply of %d rows, want 1", len(rows))
	}
	return rows[0], nil
}

// DecodeResult decodes a GET or REFRESH reply body: [meta, [cols, rows]], with at most
// DefaultMaxCells cells.
func DecodeResult(body []byte) (*Result, error) { return DecodeResultMax(body, DefaultMaxCells) }

// DecodeResultMax is DecodeResult with at most maxCells cells (rows x columns, a row of no
// columns counting 1): more is a protocol error, found from the rows' array header before
// any row is built.
func DecodeResultMax(body []byte, maxCells int) (*Result, error) {
	r := reader{b: body, cells: maxCells}
	res, err := decodeItem(&r, 1)
	if err != nil {
		return nil, err
	}
	if r.left() != 0 {
		return nil, protoErr("trailing bytes after the result")
	}
	return res, nil
}

// DecodeMGet decodes an MGET reply body: an array of [meta, result] or error maps. want is
// the number of items requested (the reply must have exactly that many), or -1 for any.
// The items' cells together are at most DefaultMaxCells.
func DecodeMGet(body []byte, want int) ([]Item, error) {
	return DecodeMGetMax(body, want, DefaultMaxCells)
}

// DecodeMGetMax is DecodeMGet with at most maxCells cells over all items.
func DecodeMGetMax(body []byte, want, maxCells int) ([]Item, error) {
	r := reader{b: body, cells: maxCells}
	a, err := r.next()
	if err != nil {
		return nil, err
	}
	if a.kind != kArray {
		return nil, protoErr("MGET reply must be an array")
	}
	if a.n > MaxMGet || (want >= 0 && int(a.n) != want) {
		return nil, protoErr("MGET reply of %d items, expected %d", a.n, want)
	}
	items := make([]Item, a.n)
	for i := range items {
		save := r.p
		o, err := r.next()
		if err != nil {
			return nil, err
		}
		if o.kind == kMap {
			e, err := decodeErrorMap(&r, &o, true)
			if err != nil {
				return nil, err
			}
			items[i].Err = e // an item error never closes the connection
			continue
		}
		if o.kind != kArray {
			return nil, protoErr("MGET item %d must be [meta, result] or an error map", i)
		}
		r.p = save
		if items[i].Result, err = decodeItem(&r, 2); err != nil {
			return nil, err
		}
	}
	if r.left() != 0 {
		return nil, protoErr("trailing bytes after the MGET reply")
	}
	return items, nil
}

// decodeItem decodes [meta, result] sitting at nesting depth depth.
func decodeItem(r *reader, depth int) (*Result, error) {
	o, err := r.next()
	if err != nil {
		return nil, err
	}
	if o.kind != kArray || o.n != 2 {
		return nil, protoErr("reply must be [meta, result]")
	}
	res := &Result{}
	if err := decodeMeta(r, &res.Meta, depth+1); err != nil {
		return nil, err
	}
	if err := decodeResult(r, res, depth+1); err != nil {
		return nil, err
	}
	return res, nil
}

// decodeMeta decodes the meta map at depth: src, lsn, age and stale are required; stored
// is optional; unknown keys are skipped.
func decodeMeta(r *reader, m *Meta, depth int) error {
	o, err := r.next()
	if err != nil {
		return err
	}
	if o.kind != kMap {
		return protoErr("meta must be a map")
	}
	seen := 0
	for i := uint32(0); i < o.n; i++ {
		k, err := r.next()
		if err != nil {
			return err
		}
		if k.kind != kStr {
			return protoErr("meta key must be a string")
		}
		bit := 0
		switch string(k.data) {
		case "src":
			bit = 1
		case "lsn":
			bit = 2
		case "age":
			bit = 4
		case "stale":
			bit = 8
		case "stored":
			bit = 16
		default:
			if err := r.skip(depth + 1); err != nil {
				return err
			}
			continue
		}
		if seen&bit != 0 {
			return protoErr("meta: duplicate key %q", k.data)
		}
		seen |= bit
		v, err := r.next()
		if err != nil {
			return err
		}
		if bit == 8 || bit == 16 {
			if v.kind != kBool {
				return protoErr("meta: %q must be a boolean", k.data)
			}
			if bit == 8 {
				m.Stale = v.b
			} else {
				b := v.b
				m.Stored = &b
			}
			continue
		}
		u, ok := v.asUint()
		if !ok {
			return protoErr("meta: %q must be an unsigned integer", k.data)
		}
		switch bit {
		case 1:
			if u > uint64(SourcePrimary) {
				return protoErr("meta: src %d out of range", u)
			}
			m.Source = Source(u)
		case 2:
			m.LSN = LSN(u)
		case 4:
			if u > math.MaxInt64/uint64(time.Millisecond) {
				u = math.MaxInt64 / uint64(time.Millisecond)
			}
			m.Age = time.Duration(u) * time.Millisecond
		}
	}
	if seen&15 != 15 {
		return protoErr("meta needs src, lsn, age and stale")
	}
	return nil
}

// decodeResult decodes [cols, rows] at depth into res.
func decodeResult(r *reader, res *Result, depth int) error {
	if depth+3 > MaxDepth { // a row's values sit three levels below the result
		return errDepth
	}
	o, err := r.next()
	if err != nil {
		return err
	}
	if o.kind != kArray || o.n != 2 {
		return protoErr("result must be an array of 2 (cols, rows)")
	}
	o, err = r.next()
	if err != nil {
		return err
	}
	if o.kind != kArray {
		return protoErr("result columns must be an array")
	}
	if o.n > MaxColumns {
		return protoErr("%d columns, the limit is %d", o.n, MaxColumns)
	}
	// Each column takes at least 3 bytes (array, name, type): o.n <= left was checked.
	res.Columns = make([]Column, o.n)
	for i := range res.Columns {
		c, err := r.next()
		if err != nil {
			return err
		}
		if c.kind != kArray || c.n != 2 {
			return protoErr("column %d must be [name, type]", i)
		}
		v, err := r.next()
		if err != nil {
			return err
		}
		if v.kind != kStr || v.n > MaxColumnName {
			return protoErr("column %d: name must be a string of at most %d bytes", i, MaxColumnName)
		}
		res.Columns[i].Name = string(v.data)
		if v, err = r.next(); err != nil {
			return err
		}
		t, ok := v.asUint()
		if !ok || t < 1 || t > 255 {
			return protoErr("column %d: type must be an integer 1..255", i)
		}
		res.Columns[i].Type = ColumnType(t)
	}
	o, err = r.next()
	if err != nil {
		return err
	}
	if o.kind != kArray {
		return protoErr("result rows must be an array")
	}
	ncols := uint32(len(res.Columns))
	cost := int64(o.n) * int64(ncols)
	if ncols == 0 {
		cost = int64(o.n)
	}
	if cost > int64(r.cells) {
		return protoErr("reply of more than %d cells (Options.MaxCells)", r.cells)
	}
	r.cells -= int(cost)
	// o.n <= the bytes left, but a row header costs 24 bytes: grow as rows arrive.
	res.Rows = make([][]any, 0, minInt(int(o.n), 1024))
	for i := uint32(0); i < o.n; i++ {
		row, err := r.next()
		if err != nil {
			return err
		}
		if row.kind != kArray || row.n != ncols {
			return protoErr("row %d must be an array of %d values", i, ncols)
		}
		vals := make([]any, ncols)
		for j := range vals {
			v, err := r.next()
			if err != nil {
				return err
			}
			if vals[j], err = cellValue(&v, res.Columns[j].Type.Kind()); err != nil {
				return protoErr("row %d column %d: %s", i, j, err.(*Error).Msg)
			}
		}
		res.Rows = append(res.Rows, vals)
	}
	return nil
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// cellValue converts one result cell to its Go value for the column type t.
func cellValue(o *obj, t ColumnType) (any, error) {
	switch o.kind {
	case kNil:
		return nil, nil
	case kBool:
		return o.b, nil
	case kUint, kInt:
		i, ok := o.asInt()
		if !ok {
			return nil, protoErr("integer above int64")
		}
		return i, nil
	case kFloat:
		return o.f, nil
	case kStr:
		switch t {
		case TypeNumeric:
			return Decimal{string(o.data)}, nil
		case TypeJSON:
			return json.RawMessage(append([]byte(nil), o.data...)), nil
		}
		return string(o.data), nil
	case kBin:
		return append(make([]byte, 0, len(o.data)), o.data...), nil
	case kExt:
		sec, nsec, ok := o.timestamp()
		if !ok {
			return nil, protoErr("ext type %d is not a valid timestamp", o.ext)
		}
		t, ok := timeOf(sec, nsec)
		if !ok {
			return nil, protoErr("timestamp seconds %d beyond the time.Time range", sec)
		}
		return t, nil
	}
	return nil, protoErr("%s is not a scalar value", o.kind)
}

// DecodeReply decodes the body of any reply frame by its opcode: *HelloInfo, nil (PING),
// *Result (GET, REFRESH), []Item (MGET, any count), InvalidateReply, Stats, Table (SHOW,
// ADMIN: any row count), or *Error (an
// error reply, returned as the value, not as the error). The error is a *Error with
// CodeProtocol when the frame must be refused.
func DecodeReply(op byte, body []byte) (any, error) {
	switch op {
	case OpReplyFlag | OpHello:
		h, err := DecodeHello(body)
		return &h, err
	case OpReplyFlag | OpPing:
		return nil, DecodeNil(body)
	case OpReplyFlag | OpGet, OpReplyFlag | OpRefresh:
		return DecodeResult(body)
	case OpReplyFlag | OpMGet:
		return DecodeMGet(body, -1)
	case OpReplyFlag | OpInvalidate:
		n, whole, err := DecodeInvalidate(body)
		return InvalidateReply{N: n, WholeQuery: whole}, err
	case OpReplyFlag | OpStats:
		return DecodeStats(body)
	case OpReplyFlag | OpShow, OpReplyFlag | OpAdmin:
		rows, cols, err := DecodeRows(body, DefaultMaxCells)
		return Table{Columns: cols, Rows: rows}, err
	case OpError:
		return DecodeError(body)
	}
	return nil, protoErr("opcode 0x%02x is not a reply opcode", op)
}

// InvalidateReply is a decoded INVALIDATE reply: N entries deleted (0 or 1) or, for a
// whole query, N is its new generation.
type InvalidateReply struct {
	N          uint64
	WholeQuery bool
}

// Table is a decoded SHOW (or ADMIN) reply: its rows, and its columns as the union of the
// rows' keys in first-seen order (for printing a table; a row may leave a column out).
type Table struct {
	Columns []string
	Rows    []map[string]any
}
