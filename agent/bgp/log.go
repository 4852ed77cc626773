package bgp

import (
	"context"
	"log/slog"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// slogger hands gobgp's log lines to the agent's slog logger. gobgp logs
// each FSM step at Info; they go to Debug here, so a running session adds
// nothing to the agent's log but its state changes (logged by Speaker).
type slogger struct{ l *slog.Logger }

func (s slogger) log(level slog.Level, msg string, fields gobgplog.Fields) {
	if !s.l.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		if k == "Password" || k == "AuthPassword" {
			continue
		}
		attrs = append(attrs, k, v)
	}
	s.l.Log(context.Background(), level, "gobgp: "+msg, attrs...)
}

func (s slogger) Panic(msg string, f gobgplog.Fields) { s.log(slog.LevelError, msg, f) }
func (s slogger) Fatal(msg string, f gobgplog.Fields) { s.log(slog.LevelError, msg, f) }
func (s slogger) Error(msg string, f gobgplog.Fields) { s.log(slog.LevelWarn, msg, f) }
func (s slogger) Warn(msg string, f gobgplog.Fields)  { s.log(slog.LevelDebug, msg, f) }
func (s slogger) Info(msg string, f gobgplog.Fields)  { s.log(slog.LevelDebug, msg, f) }
func (s slogger) Debug(msg string, f gobgplog.Fields) { s.log(slog.LevelDebug-4, msg, f) }

func (s slogger) SetLevel(gobgplog.LogLevel) {}

// GetLevel lets gobgp skip building debug lines nobody reads.
func (s slogger) GetLevel() gobgplog.LogLevel {
	if s.l.Enabled(context.Background(), slog.LevelDebug) {
		return gobgplog.DebugLevel
	}
	return gobgplog.ErrorLevel
}
