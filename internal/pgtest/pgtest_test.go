package pgtest

import (
	"context"
	"testing"
)

func TestStartStopStart(t *testing.T) {
	s := Start(t)
	var one int
	if err := s.Pool(t).QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	s.Stop()
	if err := s.Pool(t).Ping(context.Background()); err == nil {
		t.Fatal("a stopped server answered")
	}
	s.Start(t)
	if err := s.Pool(t).Ping(context.Background()); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
}
