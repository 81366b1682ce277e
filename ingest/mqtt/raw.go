package mqtt

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/edgedio/edged/engine"
)

// ErrPayloadTooLarge is wrapped by DecodeRaw when a payload exceeds its
// size limit.
var ErrPayloadTooLarge = errors.New("mqtt: payload too large")

// DecodeRaw returns the whole payload as one string value, for the "raw"
// decoder: the payload becomes a single field of the record. The engine
// has no bytes kind, so the payload must be valid UTF-8; a payload longer
// than maxBytes (when maxBytes > 0) is refused too. Errors name the reason,
// for the dead-letter store. DecodeRaw allocates one string per call.
func DecodeRaw(payload []byte, maxBytes int) (engine.Value, error) {
	if maxBytes > 0 && len(payload) > maxBytes {
		return engine.Null, fmt.Errorf("raw: %w: %d bytes, limit %d", ErrPayloadTooLarge, len(payload), maxBytes)
	}
	if !utf8.Valid(payload) {
		return engine.Null, fmt.Errorf("raw: payload is not valid UTF-8")
	}
	return engine.String(string(payload)), nil
}
