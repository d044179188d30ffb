package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/node"
)

// modelExists turns Publish's refusal to replace a live model into grid
// publish's one-line usage error (exit 2): the live version, its shapes
// and plan, and the flag that replaces it. Other errors are returned as
// they are.
func modelExists(id string, err error) error {
	var me *node.ModelExistsError
	if !errors.As(err, &me) {
		return err
	}
	v := viewModel(me.Manifest)
	return badInput(fmt.Errorf("publish %q: %w (version %d, input %s, output %s, plan %s): pass --update to replace it",
		id, node.ErrModelExists, v.Version, shapeString(v.InputShape), shapeString(batchOutput(v.InputShape, v.OutputShape)), shortHash(v.PlanHash)))
}

// shortHash is the first 8 characters of a plan hash, as messages show it.
func shortHash(h string) string { return h[:min(len(h), 8)] }

// describeUpdate says in one line what an update changed of a model:
// input and output shapes, plan hash, holder count, tolerance and dealers,
// those that changed as "old -> new", then those unchanged.
func describeUpdate(old, cur modelView) string {
	var changed, same []string
	item := func(name, a, b string, showSame bool) {
		switch {
		case a != b:
			changed = append(changed, fmt.Sprintf("%s %s -> %s", name, a, b))
		case showSame:
			same = append(same, name+" "+a)
		default:
			same = append(same, name)
		}
	}
	item("input", shapeString(old.InputShape), shapeString(cur.InputShape), true)
	item("output", shapeString(batchOutput(old.InputShape, old.OutputShape)), shapeString(batchOutput(cur.InputShape, cur.OutputShape)), true)
	item("plan", shortHash(old.PlanHash), shortHash(cur.PlanHash), true)
	item("holders", fmt.Sprint(len(old.Holders)), fmt.Sprint(len(cur.Holders)), true)
	item("tolerate", fmt.Sprint(old.Tolerate), fmt.Sprint(cur.Tolerate), true)
	item("dealers", dealerList(old.Dealers), dealerList(cur.Dealers), false)
	line := fmt.Sprintf("updated %q from version %d to %d", cur.ID, old.Version, cur.Version)
	if len(changed) > 0 {
		line += ": " + strings.Join(changed, ", ")
	} else {
		line += ": new weights"
	}
	if len(same) > 0 {
		line += "; unchanged: " + strings.Join(same, ", ")
	}
	return line
}

// dealerList prints a dealer set, sorted, with short peer IDs.
func dealerList(ds []string) string {
	if len(ds) == 0 {
		return "none"
	}
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = shortID(d)
	}
	slices.Sort(s)
	return "[" + strings.Join(s, " ") + "]"
}

// replacedManifest records the manifest an update replaces (Publish's
// PublishOptions.Replaces); nil when nothing was replaced.
type replacedManifest struct{ m *discovery.Manifest }

func (r *replacedManifest) set(m *discovery.Manifest) { r.m = m }
