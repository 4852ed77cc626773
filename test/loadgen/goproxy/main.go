// Command goproxy is a plain net/http/httputil reverse proxy: the floor a
// Go gateway's throughput is measured against in scripts/bench/l7.sh.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

const (
	readHeaderTimeout   = 10 * time.Second
	maxIdleConnsPerHost = 1024
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18105", "address to serve on")
	upstream := flag.String("upstream", "http://127.0.0.1:18100", "upstream base URL")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goproxy:", err)
		os.Exit(2)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: maxIdleConnsPerHost, DisableCompression: true}
	rp.FlushInterval = -1
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: readHeaderTimeout}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "goproxy:", err)
		os.Exit(1)
	}
}
