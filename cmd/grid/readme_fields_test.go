package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// jsonFields returns the JSON names of a struct's fields.
func jsonFields(v any) []string {
	var out []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

var readmeField = regexp.MustCompile("`([a-z_]+)`")

// readmeFields returns the field names of the first table after the README
// line that starts with marker: the backquoted names of each row's first
// column.
func readmeFields(t *testing.T, readme, marker string) []string {
	t.Helper()
	lines := strings.Split(readme, "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, marker) })
	if start < 0 {
		t.Fatalf("README has no line starting with %q", marker)
	}
	var out []string
	inTable := false
	for _, l := range lines[start:] {
		if !strings.HasPrefix(l, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cols := strings.Split(l, "|")
		if len(cols) < 3 || strings.HasPrefix(cols[1], "---") || strings.TrimSpace(cols[1]) == "field" {
			continue
		}
		for _, m := range readmeField.FindAllStringSubmatch(cols[1], -1) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// TestReadmeJSONFields: the README lists every field of grid models --json
// and grid infer --json, and no other.
func TestReadmeJSONFields(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		marker string
		view   any
	}{
		{"`grid models --json`", modelView{}},
		{"`grid infer --json`", inferView{}},
	}
	for _, tc := range cases {
		got, want := readmeFields(t, string(b), tc.marker), jsonFields(tc.view)
		if !slices.Equal(got, want) {
			t.Errorf("README's fields after %s: %v; the struct's: %v", tc.marker, got, want)
		}
	}
	for _, f := range []string{"holders", "tolerate", "shares", "collusion_threshold"} {
		if !slices.Contains(jsonFields(modelView{}), f) {
			t.Errorf("grid models --json lacks the availability field %q", f)
		}
	}
}
