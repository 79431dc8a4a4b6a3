package cachesvc

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Tier is a request's priority class. The zero value is TierDefault, so a Query that does
// not set it gets the server's default tier (1).
type Tier uint8

const (
	TierDefault  Tier = iota // wire tier 1 (left out of the request)
	TierCritical             // wire tier 0
	TierBatch                // wire tier 2: warm-up jobs
)

// wire returns the tier's protocol value.
func (t Tier) wire() (uint64, bool) {
	switch t {
	case TierDefault:
		return 1, true
	case TierCritical:
		return 0, true
	case TierBatch:
		return 2, true
	}
	return 0, false
}

func (t Tier) String() string {
	switch t {
	case TierDefault:
		return "default"
	case TierCritical:
		return "critical"
	case TierBatch:
		return "batch"
	}
	return "tier(" + strconv.Itoa(int(t)) + ")"
}

// Query is one GET, REFRESH or MGET item: a configured query's name and its parameters.
//
// Parameters may be nil (SQL NULL), bool, any Go integer type (uint64 up to MaxInt64),
// float32/float64, string, []byte (bytea), time.Time (sent as a timestamp), Decimal,
// *big.Rat (sent as exact decimal text when it has a finite decimal expansion),
// json.RawMessage (sent as text) or LSN (sent as an integer). The server converts each to
// the type declared for that parameter (PROTOCOL.md section 5), so "42" and 42 are equal
// for an int8 parameter.
type Query struct {
	Name   string // 1..64 bytes
	Params []any  // at most 16
	Tier   Tier
	MinLSN LSN  // read-your-writes: answer only with data at least this new (0: none)
	Bypass bool // skip the cache: read the database and do not fill
	// Shard is the shard MinLSN is a position of, for a token that names its shard
	// ("s1" of "s1:0/16B3748", see ParseToken and WithToken); "" for a bare token. It needs
	// MinLSN != 0. An unsharded server refuses a token naming a shard (CodeBadParams).
	Shard string
}

// WithToken returns q reading at least as new as the token t (MinLSN and Shard).
func (q Query) WithToken(t Token) Query {
	q.MinLSN, q.Shard = t.LSN, t.Shard
	return q
}

// Q is shorthand for Query{Name: name, Params: params}.
func Q(name string, params ...any) Query {
	if params == nil {
		params = []any{}
	}
	return Query{Name: name, Params: params}
}

// Source is where an answer came from.
type Source uint8

const (
	SourceCache   Source = 0
	SourceReplica Source = 1
	SourcePrimary Source = 2
)

func (s Source) String() string {
	switch s {
	case SourceCache:
		return "cache"
	case SourceReplica:
		return "replica"
	case SourcePrimary:
		return "primary"
	}
	return "source(" + strconv.Itoa(int(s)) + ")"
}

// Meta describes an answer.
type Meta struct {
	Source Source        // cache, replica or primary
	LSN    LSN           // the data is at least as new as this WAL position
	Age    time.Duration // since the data was read from the database (millisecond precision)
	Stale  bool          // served past its TTL (stale-while-revalidate)
	// Stored says, for an answer read from the database, whether it was stored in the
	// cache; nil when the server did not say (cache hits, older servers).
	Stored *bool
}

// ColumnType is a result column's type code (PROTOCOL.md section 4).
type ColumnType uint8

const (
	TypeBool        ColumnType = 1  // bool
	TypeInt         ColumnType = 2  // int64 (int2/int4/int8, oid)
	TypeFloat       ColumnType = 3  // float64 (float4/float8)
	TypeText        ColumnType = 4  // string
	TypeBytea       ColumnType = 5  // []byte
	TypeTimestamp   ColumnType = 6  // time.Time in UTC (the UTC wall clock; no zone)
	TypeTimestamptz ColumnType = 7  // time.Time in UTC (an instant)
	TypeNumeric     ColumnType = 8  // Decimal
	TypeJSON        ColumnType = 9  // json.RawMessage
	TypeOther       ColumnType = 10 // string: PostgreSQL's text output (arrays, dates, uuids...)
)

var typeNames = [...]string{"", "bool", "int", "float", "text", "bytea", "timestamp",
	"timestamptz", "numeric", "json", "other"}

// Kind is t for a known type and TypeOther for an unknown code (11..255), as the protocol
// requires.
func (t ColumnType) Kind() ColumnType {
	if t >= TypeBool && t <= TypeOther {
		return t
	}
	return TypeOther
}

func (t ColumnType) String() string {
	if t >= TypeBool && t <= TypeOther {
		return typeNames[t]
	}
	return "other(" + strconv.Itoa(int(t)) + ")"
}

// Column is a result column: its name and type.
type Column struct {
	Name string
	Type ColumnType // as sent; use Type.Kind() to treat unknown codes as TypeOther
}

// Result is the answer to a GET or REFRESH (or one MGET item).
//
// Rows hold one value per column, typed by the column's type:
//
//	NULL          nil
//	bool          bool
//	int           int64 (int8 without loss)
//	float         float64
//	text, other   string (other: PostgreSQL's text form of arrays, dates, uuids, ...)
//	bytea         []byte
//	timestamp(tz) time.Time in UTC
//	numeric       Decimal (exact text; Rat and Float64 convert it)
//	json          json.RawMessage (UnmarshalJSON / Result.Scan decode it)
//
// A value whose wire kind does not fit its column type (a server bug, or a future type
// mapping) is returned as the wire kind's natural Go value.
type Result struct {
	Meta    Meta
	Columns []Column
	Rows    [][]any
}

// Col returns the index of the column named name, or -1.
func (r *Result) Col(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Value returns the value of column name in row row (nil if there is no such cell).
func (r *Result) Value(row int, name string) any {
	c := r.Col(name)
	if c < 0 || row < 0 || row >= len(r.Rows) {
		return nil
	}
	return r.Rows[row][c]
}

// Item is one MGET answer: a Result, or an item error (an *Error; it never closes the
// connection).
type Item struct {
	Result *Result
	Err    error
}

// Stats is a STATS reply: counters are integers, gauges and ratios floats.
type Stats struct {
	Counters map[string]int64
	Gauges   map[string]float64
}

// HelloInfo is what the server said in its HELLO reply.
type HelloInfo struct {
	Version  uint32 // the protocol version the server speaks
	Server   string // its name and version
	MaxFrame uint32 // the largest request body it accepts, bytes
}

// ---- Decimal ---------------------------------------------------------------------------

// Decimal is an exact decimal number: PostgreSQL numeric as its text ("12.50", "-0.001",
// "NaN", "Infinity", "-Infinity"). It is string-backed on purpose: the text keeps the
// value's scale (12.50 is not 12.5 to an accountant) and the special values that *big.Rat
// cannot hold, costs nothing to decode, and converts to *big.Rat or float64 on demand.
type Decimal struct{ s string }

// ParseDecimal checks s is a decimal number (digits with an optional sign, point and
// exponent) or NaN/Infinity/-Infinity, and returns it as a Decimal.
func ParseDecimal(s string) (Decimal, error) {
	if !validDecimal(s) {
		return Decimal{}, fmt.Errorf("cachesvc: invalid decimal %q", s)
	}
	return Decimal{s}, nil
}

// MustDecimal is ParseDecimal that panics on invalid input (for constants).
func MustDecimal(s string) Decimal {
	d, err := ParseDecimal(s)
	if err != nil {
		panic(err)
	}
	return d
}

// DecimalFromRat formats r with `scale` digits after the point (rounded half away from
// zero).
func DecimalFromRat(r *big.Rat, scale int) Decimal { return Decimal{r.FloatString(scale)} }

func validDecimal(s string) bool {
	switch s {
	case "NaN", "Infinity", "-Infinity", "+Infinity":
		return true
	}
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		e := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			e++
		}
		if e == 0 {
			return false
		}
	}
	return i == len(s)
}

// String returns the decimal's text as PostgreSQL printed it.
func (d Decimal) String() string { return d.s }

// IsNaN reports whether d is NaN.
func (d Decimal) IsNaN() bool { return d.s == "NaN" }

// IsInf reports whether d is +Infinity or -Infinity.
func (d Decimal) IsInf() bool { return strings.HasSuffix(d.s, "Infinity") }

// Rat returns d as an exact *big.Rat; false for NaN, infinities or text that is not a
// number.
func (d Decimal) Rat() (*big.Rat, bool) {
	if d.IsNaN() || d.IsInf() || d.s == "" {
		return nil, false
	}
	return new(big.Rat).SetString(d.s)
}

// Float64 returns the nearest float64 (NaN and ±Inf for the special values).
func (d Decimal) Float64() (float64, error) { return strconv.ParseFloat(d.s, 64) }

// MarshalJSON writes the decimal as a JSON number (special values as strings).
func (d Decimal) MarshalJSON() ([]byte, error) {
	if d.IsNaN() || d.IsInf() || !validDecimal(d.s) {
		return json.Marshal(d.s)
	}
	return []byte(d.s), nil
}

// UnmarshalJSON accepts a JSON number or a string holding a decimal.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := ParseDecimal(s)
	if err == nil {
		*d = v
	}
	return err
}

// ---- JSON values -----------------------------------------------------------------------

// UnmarshalJSONValue decodes a json column's value (a json.RawMessage from Result.Rows)
// into v, as json.Unmarshal does. A NULL (nil) value leaves v unchanged and returns nil;
// any other value kind is an error.
func UnmarshalJSONValue(value any, v any) error {
	switch x := value.(type) {
	case nil:
		return nil
	case json.RawMessage:
		return json.Unmarshal(x, v)
	case string:
		return json.Unmarshal([]byte(x), v)
	}
	return fmt.Errorf("cachesvc: value of type %T is not JSON text", value)
}

// ScanJSON decodes the json column `name` of row `row` into v (see UnmarshalJSONValue).
func (r *Result) ScanJSON(row int, name string, v any) error {
	c := r.Col(name)
	if c < 0 {
		return fmt.Errorf("cachesvc: no column %q", name)
	}
	if row < 0 || row >= len(r.Rows) {
		return fmt.Errorf("cachesvc: no row %d (the result has %d)", row, len(r.Rows))
	}
	return UnmarshalJSONValue(r.Rows[row][c], v)
}
