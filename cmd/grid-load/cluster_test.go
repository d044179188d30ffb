package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartClusterFails: a cluster that cannot start returns the cause,
// in process (an invalid node config) and with daemons (no grid binary).
func TestStartClusterFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := DefaultConfig()
	cfg.Holders, cfg.Clients, cfg.MaxSessions, cfg.Sessions = 2, 1, -1, -1
	if _, err := startCluster(ctx, cfg, t.TempDir(), log); err == nil || !strings.Contains(err.Error(), "MaxSessions") {
		t.Fatalf("in process with MaxSessions -1: %v, want the config error", err)
	}
	cfg = DefaultConfig()
	cfg.GridBin = filepath.Join(t.TempDir(), "no-grid")
	if c, err := startCluster(ctx, cfg, t.TempDir(), log); err == nil {
		c.close()
		t.Fatal("daemons from a missing binary started")
	}
}
