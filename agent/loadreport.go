package agent

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/infergate/infergate/gpu/report"
)

// DefaultLoadReportAddr is where a GPU host serves its load report unless
// told otherwise: loopback, so that the report (host names, GPU and queue
// figures) reaches only this node until the operator names the address the
// balancers poll and, with it, a token.
const DefaultLoadReportAddr = "127.0.0.1:9400"

// loadReportHandler is the /load handler of a GPU host: behind the bearer
// token of cfg.LoadReportTokenFile when there is one. Serving on anything
// but loopback without a token is allowed (the operator named the address)
// but logged, since anyone who reaches it can read the report.
func loadReportHandler(cfg Config, h http.Handler, addr net.Addr, log *slog.Logger) (http.Handler, error) {
	if cfg.LoadReportTokenFile == "" {
		if !isLoopback(addr) {
			log.Warn("the GPU load report is served without a token on a non-loopback address; set --load-report-token-file", "addr", addr.String())
		}
		return h, nil
	}
	tok, err := report.ReadTokenFile(cfg.LoadReportTokenFile)
	if err != nil {
		return nil, err
	}
	return report.RequireToken(tok, h), nil
}

// loadReportToken is the token a balancer's poller sends ("" for none).
func loadReportToken(cfg Config) (string, error) {
	if cfg.LoadReportTokenFile == "" {
		return "", nil
	}
	return report.ReadTokenFile(cfg.LoadReportTokenFile)
}

func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}
