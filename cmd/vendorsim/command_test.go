package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestHelpDocumentsEveryFlagAndSecret(t *testing.T) {
	var out bytes.Buffer
	_, err := parseArgs([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, want := range []string{"-addr", "-seed", "-error-rate", "-rate-429", "-reset-rate", "-latency",
		"-sfmc-rps", "-batch-rps", "-bloomreach-rps", "-async-delay", "-suppression-window", "-bloomreach-projects",
		"-log-level", "VENDORSIM_SFMC_API_KEY", "VENDORSIM_BATCH_REST_API_KEY", "VENDORSIM_BLOOMREACH_KEY_ID",
		"VENDORSIM_BLOOMREACH_SECRET", "/_sim/state", "sim-fail"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	c, err := parseArgs([]string{"--addr", ":9", "--seed", "42", "--error-rate", "0.1", "--latency", "20ms",
		"--sfmc-rps", "0", "--async-delay", "3s", "--suppression-window", "48h", "--bloomreach-projects", "a, b"},
		env(map[string]string{"VENDORSIM_SFMC_API_KEY": "k1", "VENDORSIM_BLOOMREACH_SECRET": "s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if c.addr != ":9" || o.Seed != 42 || o.ErrorRate != 0.1 || time.Duration(o.Latency) != 20*time.Millisecond ||
		o.RateLimits.SFMC != 0 || o.RateLimits.Batch != 20 || time.Duration(o.AsyncDelay) != 3*time.Second ||
		time.Duration(o.SuppressionWindow) != 48*time.Hour || strings.Join(o.BloomreachProjects, "|") != "a|b" ||
		o.SFMCKey != "k1" || o.BloomreachSecret != "s" || o.BatchRESTKey != "" {
		t.Fatalf("%+v %+v", c, o)
	}
	for _, bad := range [][]string{{"--error-rate", "2"}, {"--latency", "soon"}, {"--suppression-window", "800h"},
		{"--log-level", "loud"}, {"extra"}, {"--api-key", "x"}} {
		if _, err := parseArgs(bad, env(nil), io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesAndNeverLogsSecrets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	var logs syncBuffer
	secrets := map[string]string{"VENDORSIM_BATCH_REST_API_KEY": "top-secret-rest-key"}
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0"}, env(secrets), &logs, func(a string) { addr <- a })
	}()
	url := "http://" + <-addr
	req, _ := http.NewRequest("POST", url+"/1.0/APP/gdpr/request", strings.NewReader(`{"request_type": "remove", "id": {"type": "custom_id", "value": "u"}}`))
	req.Header.Set("X-Authorization", "top-secret-rest-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatal(resp.StatusCode)
	}
	resp, err = http.Post(url+"/_sim/faults", "application/json", strings.NewReader(`{"latency": "1ms"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, "top-secret") || !strings.Contains(out, "VENDORSIM_BATCH_REST_API_KEY") || !strings.Contains(out, "vendorsim listening") {
		t.Fatalf("logs:\n%s", out)
	}
}
