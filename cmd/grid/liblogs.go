package main

import (
	"context"
	"io"
	"log/slog"
	"sync"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
)

// Library logs: go-libp2p (slog through gologshim, fx included) and the
// DHT (go-log, zap) write to stderr on their own, at error level unless
// $GOLOG_LOG_LEVEL says otherwise. An error that grid reports itself (a
// port in use: fx's "OnStart hook failed", "start failed, rolling back")
// would then print three lines before the "grid: ..." one. So the
// libraries log only at --log-level debug, into the command's stderr,
// unless the user sets $GOLOG_LOG_LEVEL, which then applies as documented
// by go-log.

// libLogs routes the libraries' slog records: one handler for the whole
// process (gologshim keeps the first handler each logger sees), whose
// writer and level each command sets.
var libLogs = &libHandler{level: new(slog.LevelVar)}

func init() {
	libLogs.level.Set(levelOff)
	libLogs.w = io.Discard
	gologshim.SetDefaultHandler(libLogs)
}

// levelOff is above every level a library logs at.
const levelOff = slog.LevelError + 100

// setLibraryLogs makes the libraries log at level into w when the
// command's level is debug, and silences them otherwise (unless
// $GOLOG_LOG_LEVEL is set).
func setLibraryLogs(getenv func(string) string, w io.Writer, level slog.Level) {
	if getenv("GOLOG_LOG_LEVEL") != "" {
		return // the user's choice, applied by go-log and gologshim
	}
	lib := levelOff
	if level <= slog.LevelDebug {
		lib = level
	}
	libLogs.set(w, lib)
	zapLevel := "fatal"
	if lib <= slog.LevelDebug {
		zapLevel = "debug"
	}
	_ = golog.SetLogLevel("*", zapLevel)
}

// libHandler is a text handler whose writer and level can change.
type libHandler struct {
	mu    sync.Mutex
	w     io.Writer
	level *slog.LevelVar
	attrs []slog.Attr
	group string
}

func (h *libHandler) set(w io.Writer, level slog.Level) {
	h.mu.Lock()
	h.w = w
	h.mu.Unlock()
	h.level.Set(level)
}

func (h *libHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *libHandler) Handle(ctx context.Context, r slog.Record) error {
	libLogs.mu.Lock()
	defer libLogs.mu.Unlock()
	var th slog.Handler = slog.NewTextHandler(libLogs.w, &slog.HandlerOptions{Level: libLogs.level})
	if len(h.attrs) > 0 {
		th = th.WithAttrs(h.attrs)
	}
	if h.group != "" {
		th = th.WithGroup(h.group)
	}
	return th.Handle(ctx, r)
}

func (h *libHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &libHandler{w: nil, level: h.level, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...), group: h.group}
}

func (h *libHandler) WithGroup(name string) slog.Handler {
	return &libHandler{level: h.level, attrs: h.attrs, group: name}
}
