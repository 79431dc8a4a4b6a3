package cachesvc

// Hostile and truncated input for every decoder: FuzzDecode (go test -fuzz=FuzzDecode) and
// a bounded, deterministic random-mutation test that runs in every plain `go test`.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// seedFrames are valid reply frames of every opcode (and the conformance file's reply
// cases, valid and not, when it is there).
func seedFrames(t testing.TB) [][]byte {
	m := meta(1, 0x16B374D848, 1500, false)
	cols := [][2]any{{"b", 1}, {"i", 2}, {"f", 3}, {"t", 4}, {"y", 5}, {"ts", 6}, {"tz", 7},
		{"n", 8}, {"j", 9}, {"o", 10}, {"u", 200}}
	row := []any{true, -5, 1.5, "text", []byte{1, 2}, time.Unix(1, 5), tsVal{-1, 0}, "1.50",
		`{"a":1}`, "{1,2}", "x"}
	nulls := make([]any, len(cols))
	get := resultBody(append(m, kv{"stored", true}), cols, [][]any{row, nulls})
	item := []any{meta(0, 1, 0, true), []any{[]any{[]any{"n", 2}}, []any{[]any{1}}}}
	seeds := [][]byte{
		frame(OpReplyFlag|OpGet, 1, get),
		frame(OpReplyFlag|OpRefresh, 2, get),
		frame(OpReplyFlag|OpMGet, 3, body([]any{item, omap{{"err", 2}, {"msg", "bad"}}, omap{{"code", 9}, {"msg", "t"}}})),
		frame(OpReplyFlag|OpHello, 4, body(omap{{"v", 1}, {"server", "s"}, {"max_frame", 1 << 20}})),
		frame(OpReplyFlag|OpPing, 5, []byte{0xc0}),
		frame(OpReplyFlag|OpInvalidate, 6, body(omap{{"generation", 7}})),
		frame(OpReplyFlag|OpStats, 7, body(omap{{"hits", 1}, {"ratio", 0.5}})),
		frame(OpError, 8, errBody(4, "no replica")),
		frame(OpReplyFlag|OpShow, 9, body([]any{omap{{"name", "q"}, {"hits", 3}, {"g", nil}, {"r", 0.5}, {"p", false}}, omap{}})),
		frame(OpReplyFlag|OpAdmin, 10, body([]any{omap{{"reload", "refused"}, {"error", "x"}}})),
	}
	if data, err := os.ReadFile(conformancePath); err == nil {
		var f struct {
			Cases []struct {
				Dir, Hex string
			}
		}
		if json.Unmarshal(data, &f) == nil {
			for _, c := range f.Cases {
				if b, err := hex.DecodeString(c.Hex); err == nil && c.Dir == "reply" {
					seeds = append(seeds, b)
				}
			}
		}
	}
	return seeds
}

// checkDecoders runs a frame (or any bytes) through the frame reader and every body
// decoder. Nothing may panic, and every error must be the client's: a local *Error with
// CodeProtocol, or "need more bytes" from the frame reader.
func checkDecoders(data []byte) error {
	h, body, err := readFrame(bufio.NewReader(bytes.NewReader(data)), 1<<20)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF && !isLocalProtocol(err) {
		return fmt.Errorf("frame reader: %T %v", err, err)
	}
	if err == nil && len(body) != int(h.Len) {
		return fmt.Errorf("frame reader: body of %d bytes for length %d", len(body), h.Len)
	}
	bodies := [][]byte{data}
	if len(data) > HeaderSize {
		bodies = append(bodies, data[HeaderSize:])
	}
	for _, b := range bodies {
		res := []struct {
			name string
			v    any
			err  error
		}{}
		add := func(name string, v any, err error) {
			res = append(res, struct {
				name string
				v    any
				err  error
			}{name, v, err})
		}
		r, err := DecodeResult(b)
		add("result", r, err)
		items, err := DecodeMGet(b, -1)
		add("mget", items, err)
		st, err := DecodeStats(b)
		add("stats", st, err)
		hl, err := DecodeHello(b)
		add("hello", hl, err)
		e, err := DecodeError(b)
		add("error", e, err)
		_, _, err = DecodeInvalidate(b)
		add("invalidate", nil, err)
		add("nil", nil, DecodeNil(b))
		_, _, err = DecodeRows(b, 1000)
		add("rows", nil, err)
		_, err = DecodeAdmin(b)
		add("admin", nil, err)
		_, err = decodeBody(b)
		add("generic", nil, err)
		for op := 0; op < 256; op += 1 {
			if op == int(OpError) || op&0x80 != 0 && op < 0x8a || op == 0x42 {
				_, err := DecodeReply(byte(op), b)
				add(fmt.Sprintf("reply 0x%02x", op), nil, err)
			}
		}
		for _, x := range res {
			if x.err != nil && !isLocalProtocol(x.err) {
				return fmt.Errorf("%s decoder: %T %v", x.name, x.err, x.err)
			}
		}
		// What decoded must hold together.
		if r != nil {
			if err := resultInvariants(r); err != nil {
				return err
			}
		}
		for _, it := range items {
			if (it.Result == nil) == (it.Err == nil) {
				return fmt.Errorf("MGET item with both or neither of result and error")
			}
			if it.Result != nil {
				if err := resultInvariants(it.Result); err != nil {
					return err
				}
			}
		}
		if e != nil && (len(e.Msg) > 4*MaxMsg || e.Code == 0) {
			return fmt.Errorf("error reply %+v", e)
		}
	}
	return nil
}

func resultInvariants(r *Result) error {
	if len(r.Columns) > MaxColumns || r.Meta.Source > SourcePrimary {
		return fmt.Errorf("result out of limits: %d columns, source %d", len(r.Columns), r.Meta.Source)
	}
	for _, c := range r.Columns {
		if len(c.Name) > MaxColumnName || c.Type == 0 {
			return fmt.Errorf("column %+v", c)
		}
	}
	for i, row := range r.Rows {
		if len(row) != len(r.Columns) {
			return fmt.Errorf("row %d has %d values for %d columns", i, len(row), len(r.Columns))
		}
	}
	return nil
}

func FuzzDecode(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := checkDecoders(data); err != nil {
			t.Fatal(err)
		}
	})
}

// mutate applies 1..4 random edits: bit flips, random bytes, interesting bytes (msgpack
// headers with huge counts and lengths), cuts, inserts, duplicated runs; then usually
// makes the header's length agree with the new body so the body decoders run deep.
func mutate(rng *rand.Rand, in []byte) []byte {
	b := append([]byte(nil), in...)
	interesting := []byte{0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3,
		0xc4, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcc, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd,
		0xde, 0xdf, 0xe0, 0xff}
	for n := 1 + rng.Intn(4); n > 0; n-- {
		if len(b) == 0 {
			b = append(b, byte(rng.Intn(256)))
			continue
		}
		i := rng.Intn(len(b))
		switch rng.Intn(8) {
		case 0:
			b[i] ^= 1 << rng.Intn(8)
		case 1:
			b[i] = byte(rng.Intn(256))
		case 2:
			b[i] = interesting[rng.Intn(len(interesting))]
		case 3: // a huge 32-bit count or length after a header byte
			if i+5 <= len(b) {
				b[i] = []byte{0xdd, 0xdf, 0xdb, 0xc6, 0xc9}[rng.Intn(5)]
				binary.BigEndian.PutUint32(b[i+1:], rng.Uint32())
			}
		case 4:
			b = b[:i]
		case 5:
			ins := make([]byte, 1+rng.Intn(8))
			rng.Read(ins)
			b = append(b[:i], append(ins, b[i:]...)...)
		case 6:
			j := i + rng.Intn(len(b)-i+1)
			b = append(b[:j], append(append([]byte(nil), b[i:j]...), b[j:]...)...)
		case 7:
			b = append(b[:i], b[i+1:]...)
		}
	}
	if len(b) >= HeaderSize && rng.Intn(4) != 0 {
		binary.BigEndian.PutUint32(b, uint32(len(b)-HeaderSize))
	}
	return b
}

// TestMutatedFrames feeds 20000 mutations of the seed frames to every decoder.
func TestMutatedFrames(t *testing.T) {
	rng := rand.New(rand.NewSource(19))
	seeds := seedFrames(t)
	refused := 0
	for i := 0; i < 20000; i++ {
		in := mutate(rng, seeds[rng.Intn(len(seeds))])
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("panic on %x: %v", in, p)
				}
			}()
			if err := checkDecoders(in); err != nil {
				t.Fatalf("input %x: %v", in, err)
			}
			if len(in) > HeaderSize {
				if _, err := DecodeReply(in[5], in[HeaderSize:]); err != nil {
					refused++
				}
			}
		}()
	}
	// The mutations must actually reach the refusal paths (a test that cannot fail is no test).
	if refused < 6000 {
		t.Errorf("only %d of 20000 mutated frames were refused", refused)
	}
}

// TestTruncatedEverywhere cuts every seed frame at every length: the frame reader wants
// more bytes, and the body decoder refuses every cut body.
func TestTruncatedEverywhere(t *testing.T) {
	for _, s := range seedFrames(t)[:8] {
		for n := 0; n < len(s); n++ {
			_, _, err := readFrame(bufio.NewReader(bytes.NewReader(s[:n])), 1<<20)
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("frame cut at %d of %d: %v", n, len(s), err)
			}
			if n > HeaderSize {
				if _, err := DecodeReply(s[5], s[HeaderSize:n]); !isLocalProtocol(err) {
					t.Fatalf("body of %x cut at %d: %v", s, n, err)
				}
			}
		}
	}
}

// TestConnHostileReplies sends mutated replies through a real connection: the request gets
// a result or an error (never a hang or a panic), and a protocol error closes the
// connection.
func TestConnHostileReplies(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	seeds := seedFrames(t)[:1]
	for i := 0; i < 150; i++ {
		reply := mutate(rng, seeds[0])
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			fc := &fakeConn{Conn: server, br: bufio.NewReader(server)}
			r, err := fc.read()
			if err != nil {
				return
			}
			fc.write(frame(OpReplyFlag|OpHello, r.h.ID, body(omap{{"v", 1}, {"server", "s"}, {"max_frame", 1 << 20}})))
			if r, err = fc.read(); err != nil {
				return
			}
			if len(reply) >= HeaderSize {
				binary.BigEndian.PutUint32(reply[8:], r.h.ID)
			}
			fc.write(reply)
			io.Copy(io.Discard, server)
		}()
		opts := Options{Addr: "pipe", MaxReply: 1 << 20, Dial: func(context.Context, string, string) (net.Conn, error) {
			return client, nil
		}}
		c, err := Dial(ctxT(t, 30*time.Second), opts)
		if err != nil {
			t.Fatal(err)
		}
		// (a reply announcing more bytes than it has waits for this deadline)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		res, err := c.Get(ctx, Q("q", 1))
		cancel()
		switch {
		case err == nil:
			if res == nil || resultInvariants(res) != nil {
				t.Fatalf("reply %x: bad result %+v", reply, res)
			}
		case errors.Is(err, ErrProtocol):
			if c.Alive() {
				t.Fatalf("reply %x: protocol error %v but the connection lives", reply, err)
			}
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrClosed):
			// a header announcing more bytes than sent: the request waits; or an error
			// reply code; fine as long as nothing panics
		default:
			var e *Error
			if !errors.As(err, &e) || e.Local {
				t.Fatalf("reply %x: unexpected error %T %v", reply, err, err)
			}
			if !c.Alive() && !strings.Contains(c.Err().Error(), "protocol") {
				t.Fatalf("reply %x: request error %v closed the connection", reply, err)
			}
		}
		c.Close()
	}
}
