package main

import (
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
)

// parseRepairPolicy reads grid publish's --repair-grace and
// --repair-candidates: a policy needs mpc mode with --tolerate 1 or more,
// candidates need a grace, and candidates are at most
// discovery.MaxRepairCandidates distinct peer IDs. Errors are usage errors.
func parseRepairPolicy(f *publishFlags) (discovery.RepairPolicy, error) {
	var p discovery.RepairPolicy
	switch {
	case f.repairGrace < 0:
		return p, usageErrorf("--repair-grace %v: want a duration >= 0", f.repairGrace)
	case f.repairGrace == 0 && f.repairCandidates != "":
		return p, usageErrorf("--repair-candidates needs --repair-grace (how long a holder must be unreachable before it is replaced)")
	case f.repairGrace == 0:
		return p, nil
	case f.plain || f.tolerate < 1:
		return p, usageErrorf("--repair-grace needs --tolerate 1 or more: a repair copies a lost holder's shares from their other holders")
	}
	p.Grace = f.repairGrace
	if strings.TrimSpace(f.repairCandidates) == "" {
		return p, nil
	}
	for _, s := range strings.Split(f.repairCandidates, ",") {
		id, err := peer.Decode(strings.TrimSpace(s))
		if err != nil {
			return p, usageErrorf("--repair-candidates: %q is not a peer ID (like 12D3KooW...): %v", strings.TrimSpace(s), err)
		}
		if slices.Contains(p.Candidates, id) {
			return p, usageErrorf("--repair-candidates: %s named twice", id)
		}
		p.Candidates = append(p.Candidates, id)
	}
	if len(p.Candidates) > discovery.MaxRepairCandidates {
		return p, usageErrorf("--repair-candidates: %d peers, at most %d", len(p.Candidates), discovery.MaxRepairCandidates)
	}
	return p, nil
}
