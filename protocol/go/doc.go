// Package cachesvc is a client for the cachesvc caching tier's wire protocol
// (protocol/PROTOCOL.md, version 1).
//
// A Client is a small pool of connections, safe for concurrent use; a Conn is one
// connection. Both pipeline: requests carry ids and replies are matched by id in whatever
// order the server sends them, so a cache hit overtakes an earlier miss. Every opcode is
// here: Get, MGet, Refresh, InvalidateKey, InvalidateQuery, Stats and Ping, plus the
// *Async forms that send without waiting.
//
//	cl, err := cachesvc.Open(ctx, cachesvc.Options{Addr: "127.0.0.1:6380", Token: token})
//	...
//	res, err := cl.Get(ctx, cachesvc.Q("user_profile", 42))
//	if errors.Is(err, cachesvc.ErrUnknownQuery) { ... }
//	fmt.Println(res.Meta.Source, res.Meta.Age, res.Rows)
//
// Results are typed by column type (int64, float64, string, []byte, time.Time in UTC,
// Decimal, json.RawMessage, nil for NULL); errors carry the protocol's stable codes
// (*Error, errors.Is with the Err* sentinels). PostgreSQL's infinity / -infinity
// timestamps are InfinityTime / NegInfinityTime. See README.md for the details.
package cachesvc
