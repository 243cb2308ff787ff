package pktscript

import "testing"

// FuzzParse checks that no input makes the parser, the canonical printer or the
// frame builder panic, and that whatever parses prints to text that parses back
// to the same script.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse("fuzz.pkt", src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse returned %T, want *Error: %v", err, err)
			}
			return
		}
		text := s.String()
		s2, err := Parse("again.pkt", []byte(text))
		if err != nil {
			t.Fatalf("canonical text does not parse: %v\n%s", err, text)
		}
		if again := s2.String(); again != text {
			t.Fatalf("round trip differs:\n%s\n---\n%s", text, again)
		}
		p := NewPeer(s)
		for _, l := range s.Lines {
			if l.Kind != KindInject {
				continue
			}
			frame, err := p.Build(l)
			if err != nil {
				continue
			}
			pk, err := DecodePacket(frame)
			if err != nil {
				t.Fatalf("line %d: the built frame does not decode: %v", l.Pos.Line, err)
			}
			_ = p.Format(pk, true)
		}
	})
}
