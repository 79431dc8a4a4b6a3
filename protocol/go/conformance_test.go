package cachesvc

// Runs every case of protocol/conformance/frames.json (see its README.md): reply cases
// through this client's frame reader and typed reply decoders, request cases through its
// encoder.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"
)

const conformancePath = "../conformance/frames.json"

type confCase struct {
	Name      string          `json:"name"`
	Dir       string          `json:"dir"`
	Hex       string          `json:"hex"`
	Truncated bool            `json:"truncated"`
	Frame     json.RawMessage `json:"frame"`
	Error     *struct {
		Code int    `json:"code"`
		Name string `json:"name"`
	} `json:"error"`
}

type confFrame struct {
	Opcode int             `json:"opcode"`
	ID     uint32          `json:"id"`
	Body   json.RawMessage `json:"body"`
}

// Known disagreements of this client with the conformance file (none). A case listed here
// must still disagree, so the list shrinks when the code is fixed.
var knownDisagreements = map[string]bool{}

func loadConformance(t *testing.T) []confCase {
	data, err := os.ReadFile(conformancePath)
	if err != nil {
		t.Fatalf("conformance file: %v", err)
	}
	var f struct {
		Format int               `json:"format"`
		Cases  []json.RawMessage `json:"cases"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Format != 1 {
		t.Fatalf("conformance format %d, this test reads format 1", f.Format)
	}
	cases := make([]confCase, len(f.Cases))
	for i, raw := range f.Cases {
		if err := json.Unmarshal(raw, &cases[i]); err != nil {
			t.Fatal(err)
		}
		if (cases[i].Frame == nil) == (cases[i].Error == nil) {
			t.Fatalf("case %q: exactly one of frame and error", cases[i].Name)
		}
	}
	return cases
}

func TestConformance(t *testing.T) {
	cases := loadConformance(t)
	var nreply, nreq int
	for _, c := range cases {
		c := c
		t.Run(c.Name, func(t *testing.T) {
			frame, err := hex.DecodeString(c.Hex)
			if err != nil {
				t.Fatal(err)
			}
			var fail error
			if c.Dir == "reply" {
				nreply++
				fail = checkReplyCase(c, frame)
			} else {
				nreq++
				fail = checkRequestCase(c, frame)
			}
			switch {
			case knownDisagreements[c.Name] && fail == nil:
				t.Errorf("listed as a known disagreement but now agrees: remove it from the list")
			case knownDisagreements[c.Name]:
				t.Skipf("known disagreement: %v", fail)
			case fail != nil:
				t.Error(fail)
			}
		})
	}
	if nreply < 50 || nreq < 50 {
		t.Errorf("only %d reply and %d request cases: is the file complete?", nreply, nreq)
	}
}

// ---- Reply cases -----------------------------------------------------------------------

func checkReplyCase(c confCase, b []byte) error {
	br := bufio.NewReader(bytes.NewReader(b))
	h, body, err := readFrame(br, DefaultMaxReply)
	if c.Truncated {
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			return fmt.Errorf("truncated frame: the reader must want more bytes, got %v", err)
		}
		if len(b) < HeaderSize {
			return nil
		}
		_, err := DecodeReply(b[5], b[HeaderSize:])
		return wantCode(err, c.Error.Code)
	}
	if c.Error != nil {
		if err == nil {
			if _, err = DecodeReply(h.Opcode, body); err == nil && br.Buffered() > 0 {
				return fmt.Errorf("bytes left over after the frame")
			}
		}
		return wantCode(err, c.Error.Code)
	}
	if err != nil {
		return fmt.Errorf("valid frame refused: %v", err)
	}
	if br.Buffered() > 0 {
		return fmt.Errorf("bytes left over after the frame")
	}
	var f confFrame
	if err := json.Unmarshal(c.Frame, &f); err != nil {
		return err
	}
	if int(h.Opcode) != f.Opcode || h.ID != f.ID {
		return fmt.Errorf("header opcode %d id %d, want %d %d", h.Opcode, h.ID, f.Opcode, f.ID)
	}
	want, err := parseOrderedJSON(f.Body)
	if err != nil {
		return err
	}
	// 1. The generic decoder reproduces the body exactly (wire order included).
	gen, err := decodeBody(body)
	if err != nil {
		return fmt.Errorf("generic decode: %v", err)
	}
	if got := jsonForm(gen); !reflect.DeepEqual(got, want) {
		return fmt.Errorf("generic decode:\n got %#v\nwant %#v", got, want)
	}
	// 2. The typed decoder gives the same meaning.
	v, err := DecodeReply(h.Opcode, body)
	if err != nil {
		return fmt.Errorf("typed decode: %v", err)
	}
	got, wantN := typedForm(v), normalizeReply(h.Opcode, want)
	if !reflect.DeepEqual(got, wantN) {
		return fmt.Errorf("typed decode:\n got %#v\nwant %#v", got, wantN)
	}
	return nil
}

func wantCode(err error, code int) error {
	var e *Error
	if !errors.As(err, &e) {
		return fmt.Errorf("want a refusal with code %d, got %v", code, err)
	}
	if int(e.Code) != code {
		return fmt.Errorf("refused with code %d (%v), want %d", e.Code, e, code)
	}
	return nil
}

// jsonForm turns a generic decoded value into the conformance file's JSON form.
func jsonForm(v any) any {
	switch x := v.(type) {
	case uint64:
		if x <= 1<<53 {
			return int64(x)
		}
		return omap{{"int", strconv.FormatUint(x, 10)}}
	case int64:
		if x <= 1<<53 && x >= -(1<<53) {
			return x
		}
		return omap{{"int", strconv.FormatInt(x, 10)}}
	case float64:
		return omap{{"float", x}}
	case []byte:
		return omap{{"bin", hex.EncodeToString(x)}}
	case tsVal:
		return omap{{"ts", omap{{"sec", jsonForm(x.Sec)}, {"nsec", int64(x.Nsec)}}}}
	case extVal:
		return omap{{"ext", int64(x.Type)}, {"hex", hex.EncodeToString(x.Data)}}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonForm(e)
		}
		return out
	case omap:
		out := make(omap, len(x))
		for i, e := range x {
			out[i] = kv{e.K, jsonForm(e.V)}
		}
		return out
	}
	return v // nil, bool, string
}

// cellForm is the JSON form of a typed result cell.
func cellForm(v any) any {
	switch x := v.(type) {
	case int64:
		return jsonForm(x)
	case float64:
		return jsonForm(x)
	case []byte:
		return jsonForm(x)
	case time.Time:
		switch {
		case x.Equal(InfinityTime):
			return jsonForm(tsVal{math.MaxInt64, 0})
		case x.Equal(NegInfinityTime):
			return jsonForm(tsVal{math.MinInt64, 0})
		}
		return jsonForm(tsVal{x.Unix(), uint32(x.Nanosecond())})
	case Decimal:
		return x.String()
	case json.RawMessage:
		return string(x)
	}
	return v // nil, bool, string
}

// Protocol maps whose key order or extra keys do not matter to the typed decoders are
// compared as Go maps.
type jmap map[string]any

func resultForm(r *Result) any {
	m := jmap{"src": int64(r.Meta.Source), "lsn": jsonForm(uint64(r.Meta.LSN)),
		"age": int64(r.Meta.Age / time.Millisecond), "stale": r.Meta.Stale}
	if r.Meta.Stored != nil {
		m["stored"] = *r.Meta.Stored
	}
	cols := make([]any, len(r.Columns))
	for i, c := range r.Columns {
		cols[i] = []any{c.Name, int64(c.Type)}
	}
	rows := make([]any, len(r.Rows))
	for i, row := range r.Rows {
		cells := make([]any, len(row))
		for j, v := range row {
			cells[j] = cellForm(v)
		}
		rows[i] = cells
	}
	return []any{m, []any{cols, rows}}
}

func errForm(e *Error) any { return jmap{"code": int64(e.Code), "msg": e.Msg} }

// typedForm is the JSON form of a typed reply.
func typedForm(v any) any {
	switch x := v.(type) {
	case *HelloInfo:
		return jmap{"v": int64(x.Version), "server": x.Server, "max_frame": int64(x.MaxFrame)}
	case *Result:
		return resultForm(x)
	case []Item:
		out := make([]any, len(x))
		for i, it := range x {
			if it.Err != nil {
				out[i] = errForm(it.Err.(*Error))
			} else {
				out[i] = resultForm(it.Result)
			}
		}
		return out
	case InvalidateReply:
		k := "deleted"
		if x.WholeQuery {
			k = "generation"
		}
		return jmap{k: jsonForm(x.N)}
	case Stats:
		m := jmap{}
		for k, n := range x.Counters {
			m[k] = jsonForm(n)
		}
		for k, f := range x.Gauges {
			m[k] = jsonForm(f)
		}
		return m
	case *Error:
		return errForm(x)
	}
	return v
}

// normalizeReply turns the expected body into what the typed decoders keep: protocol maps
// as jmap, meta without unknown keys, item errors' "err" as "code".
func normalizeReply(op byte, want any) any {
	switch op {
	case OpReplyFlag | OpGet, OpReplyFlag | OpRefresh:
		return normItem(want)
	case OpReplyFlag | OpMGet:
		a := want.([]any)
		out := make([]any, len(a))
		for i, it := range a {
			if m, ok := it.(omap); ok {
				j := jmap{}
				for _, e := range m {
					k := e.K.(string)
					if k == "err" {
						k = "code"
					}
					j[k] = e.V
				}
				out[i] = j
			} else {
				out[i] = normItem(it)
			}
		}
		return out
	case OpReplyFlag | OpPing:
		return want
	}
	return toJmap(want.(omap))
}

func normItem(v any) any {
	a := v.([]any)
	m := jmap{}
	for _, e := range a[0].(omap) {
		switch k := e.K.(string); k {
		case "src", "lsn", "age", "stale", "stored":
			m[k] = e.V
		}
	}
	return []any{m, a[1]}
}

func toJmap(m omap) jmap {
	j := jmap{}
	for _, e := range m {
		j[e.K.(string)] = e.V
	}
	return j
}

// parseOrderedJSON parses JSON keeping object key order (omap) with bare numbers as int64
// (they are always integers) and {"float": x} as float64.
func parseOrderedJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	v, err := parseJSONValue(d)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func parseJSONValue(d *json.Decoder) (any, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch x := tok.(type) {
	case json.Delim:
		if x == '[' {
			a := []any{}
			for d.More() {
				v, err := parseJSONValue(d)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := d.Token()
			return a, err
		}
		m := omap{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return nil, err
			}
			v, err := parseJSONValue(d)
			if err != nil {
				return nil, err
			}
			if k == "float" {
				if n, ok := v.(json.Number); ok {
					f, err := n.Float64()
					if err != nil {
						return nil, err
					}
					v = f
				}
			}
			m = append(m, kv{k.(string), v})
		}
		_, err := d.Token()
		return m, err
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		return x, nil // only inside {"float": x}, converted above
	}
	return tok, nil // nil, bool, string
}

// ---- Request cases ---------------------------------------------------------------------

// checkRequestCase checks this client's encoder against request cases: a valid request
// built through the encoder must decode to the same meaning (and be byte for byte the
// case's hex when it writes the same keys); a refused request that the API can express
// must be refused by the encoder. Cases the API cannot express (malformed structures, ext
// parameters) are server-side only and pass.
func checkRequestCase(c confCase, b []byte) error {
	if c.Truncated || len(b) < HeaderSize {
		return nil // stream-reader cases of the server
	}
	op, id := b[5], uint32(b[8])<<24|uint32(b[9])<<16|uint32(b[10])<<8|uint32(b[11])
	var body any
	if c.Frame != nil {
		var f confFrame
		if err := json.Unmarshal(c.Frame, &f); err != nil {
			return err
		}
		v, err := parseOrderedJSON(f.Body)
		if err != nil {
			return err
		}
		body = v
	} else {
		v, err := decodeBody(b[HeaderSize:])
		if err != nil || b[4] != ProtocolVersion || b[6] != 0 || b[7] != 0 {
			return nil // malformed frames: the server's business
		}
		body = jsonForm(v)
	}
	out, expressible, err := encodeFromBody(op, id, body)
	if !expressible {
		// (a HELLO for another protocol version is a server case: this client speaks 1)
		if c.Frame != nil && op != OpHello {
			return fmt.Errorf("valid request the client API cannot express")
		}
		return nil
	}
	if c.Error != nil {
		if err == nil {
			return fmt.Errorf("the encoder built a request the server must refuse (code %d): %x", c.Error.Code, out)
		}
		var e *Error
		if !errors.As(err, &e) || !e.Local {
			return fmt.Errorf("encoder refusal is not a local *Error: %v", err)
		}
		if os.Getenv("CONF_DEBUG") != "" {
			fmt.Printf("refused %q: %v\n", c.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("the encoder refused a valid request: %v", err)
	}
	if bytes.Equal(out, b) {
		return nil
	}
	// Not byte-equal: the case spells out a default; compare meanings.
	h, err := ParseHeader(out, DefaultMaxFrame)
	if err != nil || h.Opcode != op || h.ID != id {
		return fmt.Errorf("encoded header %x (%v)", out[:HeaderSize], err)
	}
	got, err := decodeBody(out[HeaderSize:])
	if err != nil {
		return err
	}
	g, w := withDefaults(op, jsonForm(got)), withDefaults(op, body)
	if !reflect.DeepEqual(g, w) {
		return fmt.Errorf("encoded %x\n means %#v\n  want %#v", out, g, w)
	}
	return nil
}

// withDefaults fills GET defaults (PING/STATS: {} is nil) and returns comparable maps.
func withDefaults(op byte, v any) any {
	getMap := func(m omap) any {
		j := jmap{"p": []any{}, "tier": int64(1), "lsn": int64(0), "bypass": false}
		for _, e := range m {
			j[e.K.(string)] = e.V
		}
		return j
	}
	switch op {
	case OpPing, OpStats:
		if m, ok := v.(omap); ok && len(m) == 0 {
			return nil
		}
	case OpGet, OpRefresh:
		if m, ok := v.(omap); ok {
			return getMap(m)
		}
	case OpMGet:
		if a, ok := v.([]any); ok {
			out := make([]any, len(a))
			for i, e := range a {
				if m, ok := e.(omap); ok {
					out[i] = getMap(m)
				} else {
					out[i] = e
				}
			}
			return out
		}
	case OpHello, OpInvalidate:
		if m, ok := v.(omap); ok {
			return toJmap(m)
		}
	}
	return v
}

// encodeFromBody builds the request a body describes through the client's encoder.
// expressible is false when the API has no way to say it.
func encodeFromBody(op byte, id uint32, body any) (out []byte, expressible bool, err error) {
	switch op {
	case OpPing, OpStats:
		if body != nil {
			if m, ok := body.(omap); !ok || len(m) != 0 {
				return nil, false, nil
			}
		}
		return appendEmpty(nil, op, id), true, nil
	case OpHello:
		m, ok := body.(omap)
		if !ok {
			return nil, false, nil
		}
		var client, token string
		var haveClient, haveV bool
		for _, e := range m {
			switch e.K {
			case "v":
				haveV = e.V == int64(ProtocolVersion) // the client speaks only version 1
			case "client":
				client, haveClient = e.V.(string)
			case "token":
				if token, ok = e.V.(string); !ok || token == "" {
					return nil, false, nil
				}
			default:
				return nil, false, nil
			}
		}
		if !haveV || !haveClient {
			return nil, false, nil
		}
		out, err = appendHello(nil, id, client, token)
		return out, true, err
	case OpGet, OpRefresh:
		q, ok := queryFromBody(body)
		if !ok {
			return nil, false, nil
		}
		out, err = appendGet(nil, op, id, &q)
		return out, true, err
	case OpMGet:
		a, ok := body.([]any)
		if !ok {
			return nil, false, nil
		}
		qs := make([]Query, len(a))
		for i, e := range a {
			if qs[i], ok = queryFromBody(e); !ok {
				return nil, false, nil
			}
		}
		out, err = appendMGet(nil, id, qs)
		return out, true, err
	case OpInvalidate:
		m, ok := body.(omap)
		if !ok {
			return nil, false, nil
		}
		var name string
		var params []any
		var withP, haveQ bool
		for _, e := range m {
			switch e.K {
			case "q":
				name, haveQ = e.V.(string)
			case "p":
				a, ok := e.V.([]any)
				if !ok {
					return nil, false, nil
				}
				if params, ok = paramsFromJSON(a); !ok {
					return nil, false, nil
				}
				withP = true
			default:
				return nil, false, nil
			}
		}
		if !haveQ {
			return nil, false, nil
		}
		out, err = appendInvalidate(nil, id, name, params, withP)
		return out, true, err
	}
	return nil, false, nil
}

func queryFromBody(v any) (Query, bool) {
	var q Query
	m, ok := v.(omap)
	if !ok {
		return q, false
	}
	seen := map[any]bool{}
	haveQ := false
	for _, e := range m {
		if seen[e.K] {
			return q, false
		}
		seen[e.K] = true
		switch e.K {
		case "q":
			if q.Name, ok = e.V.(string); !ok {
				return q, false
			}
			haveQ = true
		case "p":
			a, ok := e.V.([]any)
			if !ok {
				return q, false
			}
			if q.Params, ok = paramsFromJSON(a); !ok {
				return q, false
			}
		case "tier":
			t, ok := e.V.(int64)
			if !ok || t < 0 {
				return q, false
			}
			switch t {
			case 0:
				q.Tier = TierCritical
			case 1:
				q.Tier = TierDefault
			case 2:
				q.Tier = TierBatch
			default:
				q.Tier = Tier(t) // out of range: the encoder must refuse it
			}
		case "lsn":
			switch n := e.V.(type) {
			case int64:
				if n < 0 {
					return q, false
				}
				q.MinLSN = LSN(n)
			case omap:
				u, err := strconv.ParseUint(n[0].V.(string), 10, 64)
				if err != nil {
					return q, false
				}
				q.MinLSN = LSN(u)
			default:
				return q, false
			}
		case "shard": // set as it is: the encoder must refuse what the decoder refuses
			if q.Shard, ok = e.V.(string); !ok {
				return q, false
			}
			if q.Shard == "" { // "" means no shard in the API: cannot express an empty one
				return q, false
			}
		case "bypass":
			if q.Bypass, ok = e.V.(bool); !ok {
				return q, false
			}
		default:
			return q, false
		}
	}
	return q, haveQ
}

// paramsFromJSON converts JSON-form values to Go parameters; arrays and maps are passed
// as they are (the encoder must refuse them); ext values are not expressible.
func paramsFromJSON(a []any) ([]any, bool) {
	out := make([]any, len(a))
	for i, v := range a {
		p, ok := paramFromJSON(v)
		if !ok {
			return nil, false
		}
		out[i] = p
	}
	return out, true
}

func paramFromJSON(v any) (any, bool) {
	switch x := v.(type) {
	case nil, bool, string, int64:
		return x, true
	case []any:
		return x, true
	case omap:
		if len(x) == 1 {
			switch x[0].K {
			case "int":
				s := x[0].V.(string)
				if i, err := strconv.ParseInt(s, 10, 64); err == nil {
					return i, true
				}
				if u, err := strconv.ParseUint(s, 10, 64); err == nil {
					return u, true
				}
				return new(big.Int), false
			case "float":
				return x[0].V.(float64), true
			case "bin":
				b, err := hex.DecodeString(x[0].V.(string))
				return b, err == nil
			case "ts":
				ts := x[0].V.(omap)
				sec, _ := ts[0].V.(int64)
				nsec, _ := ts[1].V.(int64)
				if nsec < 0 || nsec > 999999999 {
					return nil, false
				}
				return time.Unix(sec, nsec), true
			}
		}
		if len(x) == 2 && x[0].K == "ext" {
			return nil, false
		}
		return x, true // a map parameter
	}
	return nil, false
}

var _ = math.MaxInt64
