package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/executor/batch"
	"github.com/privsync/privsync/executor/bloomreach"
	"github.com/privsync/privsync/executor/sfmc"
	"github.com/privsync/privsync/executor/vendorsim"
	"golang.org/x/time/rate"
)

// connectors builds the executor's vendors from the config. Vendors whose
// base_url is "sim" share one in-process simulator on a loopback port,
// serving until ctx ends.
func (c *common) connectors(ctx context.Context) ([]executor.Vendor, error) {
	var simURL string
	var out []executor.Vendor
	for _, name := range c.cfg.VendorNames() {
		v := c.cfg.Vendors[name]
		base := v.BaseURL
		if v.Sim() {
			if simURL == "" {
				opts := vendorsim.DemoOptions()
				opts.Logger = slog.New(slog.DiscardHandler)
				_, u, err := vendorsim.StartLoopback(ctx, opts)
				if err != nil {
					return nil, fmt.Errorf("starting the built-in simulator: %w", err)
				}
				simURL = u
				c.log.Info("vendors set to \"sim\" talk to the built-in simulator", "url", simURL)
			}
			base = simURL
		}
		conn, err := newConnector(name, v, base)
		if err != nil {
			return nil, err
		}
		out = append(out, executor.Vendor{Name: name, Conn: conn,
			Limiter:     rate.NewLimiter(rate.Limit(v.RequestsPerSecond), v.Burst),
			MaxInFlight: v.MaxInFlight, PollInterval: v.PollInterval.Duration})
	}
	return out, nil
}

func newConnector(name string, v *VendorConfig, base string) (executor.Connector, error) {
	secret := func(stem, demo string) string {
		if v.Sim() {
			return demo
		}
		return v.Secret(stem)
	}
	var conn executor.Connector
	var err error
	switch v.kind() {
	case privsync.KindSFMC:
		conn, err = sfmc.New(sfmc.Config{BaseURL: base, CustomerMID: v.CustomerMID, APIKey: secret("api_key", vendorsim.DemoSFMCKey),
			Timeout: v.Timeout.Duration, BatchSize: v.BatchSize})
	case privsync.KindBatch:
		conn, err = batch.New(batch.Config{BaseURL: base, AppAPIKey: v.AppAPIKey, RESTAPIKey: secret("rest_api_key", vendorsim.DemoBatchRESTKey),
			Timeout: v.Timeout.Duration})
	case privsync.KindBloomreach:
		conn, err = bloomreach.New(bloomreach.Config{BaseURL: base, ProjectToken: v.ProjectToken,
			APIKeyID: secret("api_key_id", vendorsim.DemoBloomreachKeyID), APISecret: secret("api_secret", vendorsim.DemoBloomreachSecret),
			Timeout: v.Timeout.Duration, BatchSize: v.BatchSize})
	}
	if err != nil {
		return nil, usageErr("vendor %s: %v", name, err)
	}
	return conn, nil
}
