package harness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procRoot is where process information is read (Linux /proc).
const procRoot = "/proc"

// RSSKiB returns the resident set size of process pid in KiB, read from
// /proc/PID/status (VmRSS).
func RSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("rss of pid %d: %w", pid, err)
	}
	v, err := parseVmRSS(b)
	if err != nil {
		return 0, fmt.Errorf("rss of pid %d: %w", pid, err)
	}
	return v, nil
}

// parseVmRSS finds the "VmRSS:  1234 kB" line of a /proc/PID/status file.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed VmRSS line %q", sc.Text())
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("malformed VmRSS value %q", f[0])
		}
		return v, nil
	}
	return 0, errors.New("no VmRSS line (a kernel thread or a zombie)")
}

// ProcessesOf returns the PIDs of running processes whose executable is bin
// (an absolute path), other than this process. Built into a fresh
// directory, a binary runs only as the processes this run started: none may
// be left once the run is over (the swarm runner checks that).
func ProcessesOf(bin string) ([]int, error) {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, fmt.Errorf("processes of %s: %w", bin, err)
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("processes of %s: %w", bin, err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		exe, err := os.Readlink(filepath.Join(procRoot, e.Name(), "exe"))
		if err != nil {
			continue // gone, a kernel thread, or not ours to read
		}
		if strings.TrimSuffix(exe, " (deleted)") == bin && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// isZombie reports whether pid has exited but not been reaped.
func isZombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return true // gone meanwhile
	}
	// The state follows the parenthesised command name, which may itself
	// contain spaces or parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z'
}
