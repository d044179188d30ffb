package harness

import (
	"encoding/json"
	"fmt"
)

// DecodePeers parses the daemon API's /api/v0/peers answer.
func DecodePeers(body []byte) ([]PeerInfo, error) {
	var out struct {
		Peers []PeerInfo `json:"peers"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode peers: %w", err)
	}
	return out.Peers, nil
}
