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

// MaxShard is the longest shard name a token may carry (PROTOCOL.md 3.3: the
// configuration's limit on shard names).
const MaxShard = 64

// Token is a read-your-writes token: an LSN and, with a sharded origin, the shard whose
// WAL it is a position in. Its text form is "X/Y" (Shard "") or "SHARD:X/Y"
// ("s1:0/16B3748"). Use it with Query.WithToken.
type Token struct {
	Shard string // "" for a token without a shard
	LSN   LSN
}

// String formats t as "X/Y" or "SHARD:X/Y".
func (t Token) String() string {
	if t.Shard == "" {
		return t.LSN.String()
	}
	return t.Shard + ":" + t.LSN.String()
}

// ParseToken parses "X/Y" (as ParseLSN) or "SHARD:X/Y": SHARD 1..64 bytes of
// A-Z a-z 0-9 _ . - and an LSN other than 0/0 (a shard names where a position is).
func ParseToken(s string) (Token, error) {
	shard, rest, ok := strings.Cut(s, ":")
	if !ok {
		l, err := ParseLSN(s)
		return Token{LSN: l}, err
	}
	if err := checkShard(shard); err != nil {
		return Token{}, fmt.Errorf("cachesvc: invalid token %q: %s", s, err)
	}
	l, err := ParseLSN(rest)
	if err != nil {
		return Token{}, fmt.Errorf("cachesvc: invalid token %q (want X/Y or SHARD:X/Y)", s)
	}
	if l == 0 {
		return Token{}, fmt.Errorf("cachesvc: invalid token %q: a shard's LSN cannot be 0/0", s)
	}
	return Token{Shard: shard, LSN: l}, nil
}

// MarshalText implements encoding.TextMarshaler ("X/Y" or "SHARD:X/Y").
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Token) UnmarshalText(b []byte) error {
	v, err := ParseToken(string(b))
	if err == nil {
		*t = v
	}
	return err
}

// checkShard reports whether s can name a shard: 1..MaxShard bytes of A-Z a-z 0-9 _ . -.
func checkShard(s string) error {
	if len(s) < 1 || len(s) > MaxShard {
		return fmt.Errorf("a shard name is 1..%d bytes, got %d", MaxShard, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			c == '.' || c == '-') {
			return fmt.Errorf("a shard name may only contain A-Z a-z 0-9 _ . -, not %q", s)
		}
	}
	return nil
}
