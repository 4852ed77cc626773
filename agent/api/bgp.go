package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// BGPStatus is a balancer's VIP announcement.
type BGPStatus struct {
	// Draining: the operator drained the node (POST /v1/drain).
	Draining bool `json:"draining"`
	// Withdrawn says why no route is announced ("" while announcing).
	Withdrawn string    `json:"withdrawn,omitempty"`
	Announced []string  `json:"announced"`
	Peers     []BGPPeer `json:"peers"`
}

// BGPPeer is one session.
type BGPPeer struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	State   string `json:"state"`
}

// Drain withdraws this balancer's routes (on) or announces them again
// (off); the node keeps forwarding what still reaches it either way.
func (c *Client) Drain(ctx context.Context, on bool) (*Status, error) {
	var s Status
	if err := c.do(ctx, http.MethodPost, PathDrain, url.Values{"on": {strconv.FormatBool(on)}}, nil, "", &s); err != nil {
		return nil, err
	}
	return &s, nil
}
