package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxSize is the largest encoded plan Unmarshal accepts, in bytes.
const MaxSize = 16 << 20

// Unmarshal decodes a plan from its JSON encoding (Marshal) and validates
// it. It refuses input larger than MaxSize, unknown fields and trailing
// data, so that a plan and its hash mean one thing.
func Unmarshal(b []byte) (*Plan, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("decode plan: %d bytes exceeds the limit of %d", len(b), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode plan: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode plan: trailing data after the plan")
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("invalid plan: %w", err)
	}
	return &p, nil
}
