package cachesvc

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL WAL position (a uint64), the protocol's read-your-writes token. A
// reply's Meta.LSN says the data is at least that new; Query.MinLSN asks for data at least
// that new (0 means no constraint). Its text form is PostgreSQL's "X/Y" (hex halves).
type LSN uint64

// String formats l as PostgreSQL does: "16/B374D848".
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// ParseLSN parses PostgreSQL's "X/Y" form (1..8 hex digits each side, either case), as
// returned by pg_current_wal_lsn().
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if ok {
		h, err1 := parseHex32(hi)
		l, err2 := parseHex32(lo)
		if err1 == nil && err2 == nil {
			return LSN(h<<32 | l), nil
		}
	}
	return 0, fmt.Errorf("cachesvc: invalid LSN %q (want X/Y in hex, as pg_current_wal_lsn() prints)", s)
}

func parseHex32(s string) (uint64, error) {
	if len(s) < 1 || len(s) > 8 || s[0] == '+' || s[0] == '-' {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 16, 32)
}

// MarshalText implements encoding.TextMarshaler ("X/Y").
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler ("X/Y").
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err == nil {
		*l = v
	}
	return err
}
