package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUploadBarFailureLeavesNoLine checks that a failed upload clears the
// bar's line, so that the error is the one line the command leaves, and
// that the bar is only drawn on a terminal.
func TestUploadBarFailureLeavesNoLine(t *testing.T) {
	var buf bytes.Buffer
	u := newUploadBar(&buf)
	u.update(1<<20, 4<<20)
	u.update(2<<20, 4<<20)
	u.finish(false)
	out := buf.String()
	if !strings.Contains(out, "uploading shares") {
		t.Fatalf("no bar drawn: %q", out)
	}
	last := out[strings.LastIndexAny(out, "\r\n")+1:]
	if strings.TrimSpace(last) != "" || strings.Contains(out, "\n") {
		t.Fatalf("the failed bar leaves %q (whole output %q)", last, out)
	}

	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []io.Writer{&buf, f} {
		if isTerminal(w) {
			t.Errorf("%T counted as a terminal", w)
		}
	}
}
