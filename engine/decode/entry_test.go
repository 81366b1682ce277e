package decode

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestEntryRoundTrip(t *testing.T) {
	for _, in := range []Input{
		{Payload: []byte(`{"x":1}`), Topic: []byte("sensors/a/b"), Received: received},
		{Payload: []byte("\x00\x01raw"), Topic: nil, Received: 1},
		{Payload: nil, Topic: []byte("t"), Received: -5},
		{},
	} {
		rec := AppendEntry(nil, in.Received, string(in.Topic), in.Payload)
		got := ParseEntry(rec)
		if !bytes.Equal(got.Payload, in.Payload) || !bytes.Equal(got.Topic, in.Topic) || got.Received != in.Received {
			t.Errorf("ParseEntry(AppendEntry of %+v) = %+v", in, got)
		}
	}
}

func TestParseEntryOlderAndBareEntries(t *testing.T) {
	v0 := append([]byte{0x00}, binary.AppendUvarint(nil, 3)...)
	v0 = append(v0, "a/b{}"...)
	tests := []struct {
		name           string
		rec            []byte
		topic, payload string
		received       int64
	}{
		{"topic framing without receipt time", v0, "a/b", "{}", 0},
		{"bare JSON", []byte(`{"x":1}`), "", `{"x":1}`, 0},
		{"bare CSV", []byte("a,b\n1,2"), "", "a,b\n1,2", 0},
		{"empty", nil, "", "", 0},
		{"truncated receipt time", []byte{0x01, 1, 2}, "", "\x01\x01\x02", 0},
		{"topic length past the end", []byte{0x00, 200}, "", "\x00\xc8", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseEntry(tt.rec)
			if string(got.Topic) != tt.topic || string(got.Payload) != tt.payload || got.Received != tt.received {
				t.Errorf("got topic %q payload %q received %d; want %q %q %d", got.Topic, got.Payload, got.Received, tt.topic, tt.payload, tt.received)
			}
		})
	}
}

// TestEntryIdentityIgnoresReceiptTime: a redelivered message is received
// again later; its entry differs, its identity does not.
func TestEntryIdentityIgnoresReceiptTime(t *testing.T) {
	a := AppendEntry(nil, 1000, "t", []byte("p"))
	b := AppendEntry(nil, 2000, "t", []byte("p"))
	c := AppendEntry(nil, 1000, "u", []byte("p"))
	if bytes.Equal(a, b) || !bytes.Equal(EntryIdentity(a), EntryIdentity(b)) {
		t.Error("got different identities for one message received twice; want equal")
	}
	if bytes.Equal(EntryIdentity(a), EntryIdentity(c)) {
		t.Error("got equal identities for one payload on two topics; want different")
	}
	if bare := []byte(`{"x":1}`); !bytes.Equal(EntryIdentity(bare), bare) {
		t.Error("got a bare payload's identity different from it")
	}
}

func TestAppendEntryNoAllocs(t *testing.T) {
	payload := []byte(`{"x":1}`)
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendEntry(buf[:0], received, "sensors/a/b", payload); _ = ParseEntry(buf) }); n != 0 {
		t.Errorf("got %v allocs; want 0", n)
	}
}
