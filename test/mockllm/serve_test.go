package mockllm

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestServeStopsOnCancel: Serve answers on its listener and returns nil
// once its context ends, after which the port no longer answers.
func TestServeStopsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, New(Config{}).Handler()) }()
	url := "http://" + ln.Addr().String() + "/v1/models"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/models: %s", resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(ShutdownGrace + 5*time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	if resp, err := c.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("server still answers after Serve returned")
	}
}
