package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/privsync/privsync/executor/vendorapi/simkit"
	"github.com/privsync/privsync/executor/vendorsim"
)

// errUsage marks a bad command line (already explained on stderr).
var errUsage = errors.New("bad usage")

// The environment variables that hold the credentials the simulators
// insist on. Unset: any non-empty credential is accepted.
var secretEnv = []struct{ name, what string }{
	{"VENDORSIM_SFMC_API_KEY", "SFMC Bearer token"},
	{"VENDORSIM_BATCH_REST_API_KEY", "Batch.com X-Authorization REST API key"},
	{"VENDORSIM_BLOOMREACH_KEY_ID", "Bloomreach API key id (Basic auth user)"},
	{"VENDORSIM_BLOOMREACH_SECRET", "Bloomreach API secret (Basic auth password)"},
}

type config struct {
	addr     string
	logLevel slog.Level
	opts     vendorsim.Options
}

func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c := config{opts: vendorsim.DefaultOptions()}
	o := &c.opts
	fs := flag.NewFlagSet("vendorsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of every random choice (faults, ids): the same seed and request order behave the same")
	fs.Float64Var(&o.ErrorRate, "error-rate", 0, "share of requests answered 500 or 503 (0 to 1)")
	fs.Float64Var(&o.Rate429, "rate-429", 0, "share of requests answered 429 with Retry-After, besides the rate limits (0 to 1)")
	fs.Float64Var(&o.ResetRate, "reset-rate", 0, "share of connections closed without an answer (0 to 1)")
	durationVar(fs, &o.Latency, "latency", "delay added before every answer")
	fs.Float64Var(&o.RateLimits.SFMC, "sfmc-rps", o.RateLimits.SFMC, "SFMC requests per second before 429 (burst: one second's worth; 0 disables)")
	fs.Float64Var(&o.RateLimits.Batch, "batch-rps", o.RateLimits.Batch, "Batch.com requests per second before 429 (0 disables)")
	fs.Float64Var(&o.RateLimits.Bloomreach, "bloomreach-rps", o.RateLimits.Bloomreach, "Bloomreach requests per second before 429 (0 disables)")
	durationVar(fs, &o.AsyncDelay, "async-delay", "how long SFMC rows and Batch.com requests stay initiated/pending")
	durationVar(fs, &o.SuppressionWindow, "suppression-window", "SFMC rtbf_suppress: time before the profile is deleted (at most 720h)")
	projects := fs.String("bloomreach-projects", "", "comma-separated Bloomreach project tokens the key may use (others get 403); empty allows any")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: vendorsim [flags]\n\n"+
			"Serves the SFMC (/api/v2/...), Batch.com (/1.0/...) and Bloomreach (/data/v2/...)\n"+
			"simulators on one address, and the control API: GET /_sim/state, GET /_sim/stats,\n"+
			"GET and POST /_sim/faults (the settings below, as JSON), POST /_sim/reset.\n\n"+
			"Subject ids containing sim-fail fail at the vendor, sim-expire (Batch.com) are\n"+
			"forgotten once done, sim-slow never complete until a reset.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\nCredentials come only from the environment (unset: any non-empty value is accepted):\n")
		for _, e := range secretEnv {
			fmt.Fprintf(stderr, "  %-30s %s\n", e.name, e.what)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vendorsim takes no arguments, got %q\n", fs.Args())
		return c, errUsage
	}
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "--log-level: %v\n", err)
		return c, errUsage
	}
	if err := o.Settings.Validate(); err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return c, errUsage
	}
	for _, p := range strings.Split(*projects, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.BloomreachProjects = append(o.BloomreachProjects, p)
		}
	}
	o.SFMCKey = getenv(secretEnv[0].name)
	o.BatchRESTKey = getenv(secretEnv[1].name)
	o.BloomreachKeyID = getenv(secretEnv[2].name)
	o.BloomreachSecret = getenv(secretEnv[3].name)
	return c, nil
}

func durationVar(fs *flag.FlagSet, d *simkit.Duration, name, usage string) {
	fs.Func(name, fmt.Sprintf("%s (default %v)", usage, time.Duration(*d)), func(s string) error {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as 250ms: %w", err)
		}
		*d = simkit.Duration(v)
		return nil
	})
}

// run serves until ctx ends; ready, when set, learns the address served.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(addr string)) error {
	c, err := parseArgs(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	c.opts.Logger = log
	srv, err := vendorsim.New(c.opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var required []string
	for _, e := range secretEnv {
		if getenv(e.name) != "" {
			required = append(required, e.name)
		}
	}
	log.Info("vendorsim listening", "url", "http://"+ln.Addr().String(), "seed", c.opts.Seed,
		"settings", fmt.Sprintf("%+v", c.opts.Settings), "credentials_from", required)
	if ready != nil {
		ready(ln.Addr().String())
	}
	err = srv.Serve(ctx, ln)
	log.Info("vendorsim stopped")
	return err
}
