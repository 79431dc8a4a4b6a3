package cachesvc

import (
	"errors"
	"fmt"
)

// Code is a stable error code of the protocol (PROTOCOL.md section 6).
type Code uint8

// The protocol's error codes. A server may send codes this client does not know (1..255):
// they are kept in Error.Code as sent and behave like CodeInternal (Kind, Name, errors.Is).
const (
	CodeUnknownQuery Code = 1  // no query of that name is configured
	CodeBadParams    Code = 2  // wrong parameter count, unconvertible value, tier out of range
	CodeOverloaded   Code = 3  // a bounded queue is full; retry with backoff
	CodeUnavailable  Code = 4  // no fit replica (and no primary fallback), or the LSN cannot be met
	CodeTooLarge     Code = 5  // the reply or request would exceed a size limit
	CodeAuth         Code = 6  // HELLO token missing or wrong
	CodeProtocol     Code = 7  // malformed frame or body: the connection is closed
	CodeInternal     Code = 8  // a server bug or an unexpected database error
	CodeTimeout      Code = 9  // the server gave up waiting for the database
	CodeShuttingDown Code = 10 // the server is draining; reconnect
	CodeFutureLSN    Code = 11 // the read-your-writes LSN is beyond the primary's position
	CodeNoShard      Code = 12 // the shard key maps to no shard (a sharded origin; not retryable)
)

var codeNames = [...]string{
	CodeUnknownQuery: "unknown_query",
	CodeBadParams:    "bad_params",
	CodeOverloaded:   "overloaded",
	CodeUnavailable:  "unavailable",
	CodeTooLarge:     "too_large",
	CodeAuth:         "auth",
	CodeProtocol:     "protocol",
	CodeInternal:     "internal",
	CodeTimeout:      "timeout",
	CodeShuttingDown: "shutting_down",
	CodeFutureLSN:    "future_lsn",
	CodeNoShard:      "no_shard",
}

// Known reports whether c is one of the codes this client knows (1..12).
func (c Code) Known() bool { return c >= 1 && int(c) < len(codeNames) }

// Kind is c itself for a known code and CodeInternal for any other.
func (c Code) Kind() Code {
	if c.Known() {
		return c
	}
	return CodeInternal
}

// Name is the code's stable name ("unknown_query", ...); "internal" for an unknown code.
func (c Code) Name() string { return codeNames[c.Kind()] }

func (c Code) String() string { return c.Name() }

// Error is an error carrying a protocol error code: an error reply from the server, an MGET
// item error, or a condition this client detected itself (Local) with the code the
// protocol gives it: a malformed reply or a broken limit is CodeProtocol, an argument the
// protocol cannot carry is CodeBadParams, a request over the server's max_frame is
// CodeTooLarge.
//
// Match with errors.Is against the Err* values (errors.Is(err, cachesvc.ErrAuth)), which
// compare Kind only, or errors.As into *Error for the message.
type Error struct {
	Code  Code   // as sent; unknown codes compare as CodeInternal (see Code.Kind)
	Msg   string // the server's message (at most 1024 bytes) or this client's
	Local bool   // detected by this client rather than sent by the server
}

func (e *Error) Error() string {
	who := "server"
	if e.Local {
		who = "client"
	}
	if e.Code.Known() {
		return fmt.Sprintf("cachesvc: %s (%s): %s", e.Code.Name(), who, e.Msg)
	}
	return fmt.Sprintf("cachesvc: internal (%s, unknown code %d): %s", who, uint8(e.Code), e.Msg)
}

// Name is the stable name of the error's code.
func (e *Error) Name() string { return e.Code.Name() }

// Is reports whether target is an *Error of the same kind (a sentinel such as ErrAuth).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code.Kind() == e.Code.Kind()
}

// Temporary reports whether retrying the request later may succeed (overloaded,
// unavailable, timeout, shutting_down).
func (e *Error) Temporary() bool {
	switch e.Code.Kind() {
	case CodeOverloaded, CodeUnavailable, CodeTimeout, CodeShuttingDown:
		return true
	}
	return false
}

// Sentinels for errors.Is: errors.Is(err, ErrUnknownQuery) is true for any *Error whose
// code has that kind.
var (
	ErrUnknownQuery = &Error{Code: CodeUnknownQuery, Msg: "unknown query"}
	ErrBadParams    = &Error{Code: CodeBadParams, Msg: "bad parameters"}
	ErrOverloaded   = &Error{Code: CodeOverloaded, Msg: "overloaded"}
	ErrUnavailable  = &Error{Code: CodeUnavailable, Msg: "unavailable"}
	ErrTooLarge     = &Error{Code: CodeTooLarge, Msg: "too large"}
	ErrAuth         = &Error{Code: CodeAuth, Msg: "auth"}
	ErrProtocol     = &Error{Code: CodeProtocol, Msg: "protocol error"}
	ErrInternal     = &Error{Code: CodeInternal, Msg: "internal error"}
	ErrTimeout      = &Error{Code: CodeTimeout, Msg: "timeout"}
	ErrShuttingDown = &Error{Code: CodeShuttingDown, Msg: "shutting down"}
	ErrFutureLSN    = &Error{Code: CodeFutureLSN, Msg: "read-your-writes LSN beyond the primary's position"}
)

// ErrClosed is wrapped by every error of a request that could not complete because its
// connection is closed or was lost (the cause is in the message; errors.Is(err, ErrClosed)).
// A request that failed with ErrClosed may or may not have been executed by the server.
var ErrClosed = errors.New("cachesvc: connection closed")

// ErrNotSent wraps ErrClosed for a request that was never written to the connection: the
// server has not seen it, so it is always safe to retry (the Client does so itself).
var ErrNotSent = fmt.Errorf("%w before the request was sent", ErrClosed)

// closedErr wraps a connection's fatal cause so that errors.Is matches ErrClosed and the
// cause (a *Error protocol, an io error, ...).
type closedErr struct {
	sent  bool
	cause error
}

func (e *closedErr) Error() string {
	if e.sent {
		return fmt.Sprintf("cachesvc: connection lost with the request in flight: %v", e.cause)
	}
	return fmt.Sprintf("cachesvc: connection closed before the request was sent: %v", e.cause)
}

func (e *closedErr) Is(target error) bool {
	return target == ErrClosed || (target == ErrNotSent && !e.sent)
}

func (e *closedErr) Unwrap() error { return e.cause }
