package main

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ingest"
	"github.com/privsync/privsync/ledger/report"
	"golang.org/x/crypto/ssh"
)

// Config is privsync.toml.
type Config struct {
	Ledger    string                   `toml:"ledger"`
	ReportDir string                   `toml:"report_dir"`
	Columns   map[string]string        `toml:"columns"`
	Vendors   map[string]*VendorConfig `toml:"vendors"`

	// The SSH key that signs each run's summary: an unencrypted Ed25519
	// private key, from a file or an environment variable.
	SigningKeyFile string `toml:"signing_key_file"`
	SigningKeyEnv  string `toml:"signing_key_env"`

	signer ssh.Signer // resolved, never printed
}

// VendorConfig is one [vendors.NAME] table.
type VendorConfig struct {
	Kind    string `toml:"kind"`
	BaseURL string `toml:"base_url"`

	CustomerMID string `toml:"customer_mid"` // sfmc
	APIKeyEnv   string `toml:"api_key_env"`
	APIKeyFile  string `toml:"api_key_file"`

	AppAPIKey      string `toml:"app_api_key"` // batch
	AppAPIKeyEnv   string `toml:"app_api_key_env"`
	RestAPIKeyEnv  string `toml:"rest_api_key_env"`
	RestAPIKeyFile string `toml:"rest_api_key_file"`

	ProjectToken   string `toml:"project_token"` // bloomreach
	APIKeyIDEnv    string `toml:"api_key_id_env"`
	APIKeyIDFile   string `toml:"api_key_id_file"`
	APISecretEnv   string `toml:"api_secret_env"`
	APISecretFile  string `toml:"api_secret_file"`
	SuppressionDay int    `toml:"suppression_days"` // sfmc account's suppression period

	RequestsPerSecond float64  `toml:"requests_per_second"`
	Burst             int      `toml:"burst"`
	MaxInFlight       int      `toml:"max_in_flight"`
	BatchSize         int      `toml:"batch_size"`
	PollInterval      duration `toml:"poll_interval"`
	Timeout           duration `toml:"timeout"`

	secrets map[string]string // resolved, never printed
}

type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

// Kind is the vendor's kind.
func (v *VendorConfig) kind() privsync.Kind { return privsync.Kind(v.Kind) }

// Sim reports whether the vendor points at the built-in simulator.
func (v *VendorConfig) Sim() bool { return v.BaseURL == "sim" }

// Secret returns a resolved secret by its config key stem (e.g. "api_key").
func (v *VendorConfig) Secret(name string) string { return v.secrets[name] }

var canonicalColumns = []string{"vendor", "subject_id", "id_type", "restrictions", "erasure", "access_request", "updated_at"}

// loadConfig reads and checks a config file; getenv resolves secrets.
func loadConfig(path string, getenv func(string) string) (*Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, usageErr("reading config: %s does not exist (give --config, or copy testdata/demo.toml)", path)
		}
		return nil, usageErr("reading config %s: %v", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, usageErr("config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	if len(c.Vendors) == 0 {
		return nil, usageErr("config %s: no [vendors.NAME] table", path)
	}
	for col := range c.Columns {
		if !slices.Contains(canonicalColumns, col) {
			return nil, usageErr("config %s: [columns] %s is not a column privsync reads (it reads %s)", path, col, strings.Join(canonicalColumns, ", "))
		}
	}
	if err := ingest.CheckColumns(c.Columns); err != nil {
		return nil, usageErr("config %s: [columns] %v", path, err)
	}
	folded := map[string]string{}
	for _, name := range c.VendorNames() {
		if name == "" || strings.TrimSpace(name) != name || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
			// The name is written in every report row: nothing invisible.
			return nil, usageErr("config %s: [vendors.%q]: a vendor name must be non-empty, printable, without surrounding spaces", path, name)
		}
		if other, dup := folded[strings.ToLower(name)]; dup {
			// Rows name vendors by hand; two that differ only by case are
			// one vendor configured twice, or a typo.
			return nil, usageErr("config %s: [vendors.%s] and [vendors.%s]: vendor names must differ by more than case", path, other, name)
		}
		folded[strings.ToLower(name)] = name
	}
	if err := c.loadSigningKey(getenv); err != nil {
		return nil, usageErr("config %s: %v", path, err)
	}
	days := map[int]string{}
	for _, name := range c.VendorNames() {
		v := c.Vendors[name]
		if v == nil {
			return nil, usageErr("config %s: vendors.%s: must be a table [vendors.%s]", path, name, name)
		}
		isSet := func(key string) bool { return md.IsDefined("vendors", name, key) }
		if err := v.check(name, getenv, isSet); err != nil {
			return nil, usageErr("config %s: [vendors.%s] %v", path, name, err)
		}
		if v.kind() == privsync.KindSFMC {
			days[v.SuppressionDay] = name
		}
	}
	if len(days) > 1 {
		// The planner applies one suppression window; refuse a config it
		// would read differently from run to run.
		return nil, usageErr("config %s: the sfmc vendors have different suppression_days; privsync supports one window for all sfmc accounts", path)
	}
	return &c, nil
}

// loadSigningKey reads the signing key named by signing_key_file or
// signing_key_env, if any. Errors name the config key, never the key.
func (c *Config) loadSigningKey(getenv func(string) string) error {
	var pem []byte
	var from string
	switch {
	case c.SigningKeyFile != "" && c.SigningKeyEnv != "":
		return fmt.Errorf("give signing_key_file or signing_key_env, not both")
	case c.SigningKeyFile != "":
		b, err := os.ReadFile(c.SigningKeyFile)
		if err != nil {
			return fmt.Errorf("signing_key_file: %w", err)
		}
		pem, from = b, "signing_key_file "+c.SigningKeyFile
	case c.SigningKeyEnv != "":
		v := getenv(c.SigningKeyEnv)
		if v == "" {
			return fmt.Errorf("signing_key_env: environment variable %s is not set", c.SigningKeyEnv)
		}
		pem, from = []byte(v), "signing_key_env "+c.SigningKeyEnv
	default:
		return nil
	}
	signer, err := report.ParseSigningKey(pem)
	if err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	c.signer = signer
	return nil
}

// VendorNames returns the configured vendor names, sorted.
func (c *Config) VendorNames() []string {
	names := make([]string, 0, len(c.Vendors))
	for n := range c.Vendors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Kinds maps vendor names to kinds.
func (c *Config) Kinds() map[string]privsync.Kind {
	m := map[string]privsync.Kind{}
	for n, v := range c.Vendors {
		m[n] = v.kind()
	}
	return m
}

// The largest values the limits take: beyond them a value is a typo, not a
// setting (and a burst or a concurrency that large costs memory).
const (
	maxRate        = 10_000
	maxBurst       = 10_000
	maxInFlight    = 1_000
	maxSuppression = 30 // sfmc's longest rtbf_suppress period, in days
	maxDuration    = 24 * time.Hour
)

// batchLimits are the most items a request of each kind takes (the vendors'
// documented maxima: SFMC 1,000 profiles, Bloomreach 1,000 customers).
var batchLimits = map[privsync.Kind]int{privsync.KindSFMC: 1000, privsync.KindBatch: 1, privsync.KindBloomreach: 1000}

// checkLimits checks the rate, batch and time settings that are set and
// fills in the defaults of those that are not. isSet tells whether the
// config file sets a key: a key set to 0 is an error, not the default.
func (v *VendorConfig) checkLimits(isSet func(key string) bool) error {
	defaults := map[privsync.Kind][2]float64{ // rate, in flight
		privsync.KindSFMC: {5, 4}, privsync.KindBatch: {10, 8}, privsync.KindBloomreach: {5, 4}}[v.kind()]
	maxBatch := batchLimits[v.kind()]
	if !isSet("requests_per_second") {
		v.RequestsPerSecond = defaults[0]
	} else if r := v.RequestsPerSecond; math.IsNaN(r) || r <= 0 || r > maxRate {
		return fmt.Errorf("requests_per_second %v: must be a number above 0 and at most %d", r, maxRate)
	}
	if !isSet("burst") {
		v.Burst = max(1, int(v.RequestsPerSecond))
	} else if v.Burst < 1 || v.Burst > maxBurst {
		return fmt.Errorf("burst %d: must be a whole number from 1 to %d", v.Burst, maxBurst)
	}
	if !isSet("max_in_flight") {
		v.MaxInFlight = int(defaults[1])
	} else if v.MaxInFlight < 1 || v.MaxInFlight > maxInFlight {
		return fmt.Errorf("max_in_flight %d: must be a whole number from 1 to %d", v.MaxInFlight, maxInFlight)
	}
	if !isSet("batch_size") {
		v.BatchSize = maxBatch
	} else if v.BatchSize < 1 || v.BatchSize > maxBatch {
		return fmt.Errorf("batch_size %d: must be a whole number from 1 to %d (%s takes at most %d per request)", v.BatchSize, maxBatch, v.Kind, maxBatch)
	}
	durations := []struct {
		key string
		d   *time.Duration
		def time.Duration
	}{{"poll_interval", &v.PollInterval.Duration, 2 * time.Second}, {"timeout", &v.Timeout.Duration, 30 * time.Second}}
	for _, d := range durations {
		if !isSet(d.key) {
			*d.d = d.def
		} else if *d.d <= 0 || *d.d > maxDuration {
			return fmt.Errorf("%s %q: must be a duration above 0s and at most %v, such as \"%v\"", d.key, d.d.String(), maxDuration, d.def)
		}
	}
	if !isSet("suppression_days") {
		v.SuppressionDay = 14
	} else if v.kind() != privsync.KindSFMC {
		return fmt.Errorf("suppression_days: only sfmc vendors have a suppression period")
	} else if v.SuppressionDay < 1 || v.SuppressionDay > maxSuppression {
		return fmt.Errorf("suppression_days %d: must be a whole number from 1 to %d (sfmc allows at most %d)", v.SuppressionDay, maxSuppression, maxSuppression)
	}
	return nil
}

// checkBaseURL lets plain http through only to this machine: a loopback
// IP literal or exactly localhost. Everything else, however local it
// looks (127.0.0.1.nip.io, localhost.example.com, 127.0.0.1@example.com),
// needs https: a bearer token must not cross a network in clear.
func checkBaseURL(s string) error {
	const want = "vendors are reached over https (plain http only to 127.0.0.1, [::1] or localhost; \"sim\" for the built-in simulator)"
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("base_url %q: not a URL: %v", s, errors.Unwrap(err))
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("base_url %q: %s", s, want)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("base_url %q: no host: give scheme://host[:port][/path]", s)
	case u.User != nil:
		return fmt.Errorf("base_url %q: user information (before '@') is not allowed: credentials come from *_env or *_file keys", s)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return fmt.Errorf("base_url %q: no query or fragment allowed", s)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return fmt.Errorf("base_url %q: %s", s, want)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback() && ip.Zone() == ""
}

func (v *VendorConfig) check(name string, getenv func(string) string, isSet func(key string) bool) error {
	if !v.kind().Valid() {
		return fmt.Errorf("kind %q: use sfmc, batch or bloomreach", v.Kind)
	}
	if v.BaseURL == "" {
		v.BaseURL = map[privsync.Kind]string{privsync.KindSFMC: "https://app.igodigital.com",
			privsync.KindBatch: "https://api.batch.com", privsync.KindBloomreach: "https://api.exponea.com"}[v.kind()]
	}
	if !v.Sim() {
		if err := checkBaseURL(v.BaseURL); err != nil {
			return err
		}
	}
	if err := v.checkLimits(isSet); err != nil {
		return err
	}
	v.secrets = map[string]string{}
	need := func(field, value string) error {
		if value == "" {
			return fmt.Errorf("%s is required for kind %s", field, v.Kind)
		}
		return nil
	}
	secret := func(stem, envName, file string) error {
		switch {
		case envName != "" && file != "":
			return fmt.Errorf("give %s_env or %s_file, not both", stem, stem)
		case envName != "":
			val := getenv(envName)
			if val == "" {
				return fmt.Errorf("%s_env: environment variable %s is not set", stem, envName)
			}
			v.secrets[stem] = val
		case file != "":
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("%s_file: %w", stem, err)
			}
			v.secrets[stem] = strings.TrimSpace(string(b))
			if v.secrets[stem] == "" {
				return fmt.Errorf("%s_file: %s is empty", stem, file)
			}
		case !v.Sim():
			return fmt.Errorf("%s_env (or %s_file) is required: secrets come from the environment or a file, never the config itself", stem, stem)
		}
		return nil
	}
	var errs []error
	switch v.kind() {
	case privsync.KindSFMC:
		errs = append(errs, need("customer_mid", v.CustomerMID), secret("api_key", v.APIKeyEnv, v.APIKeyFile))
	case privsync.KindBatch:
		if v.AppAPIKey == "" && v.AppAPIKeyEnv != "" {
			v.AppAPIKey = getenv(v.AppAPIKeyEnv)
			if v.AppAPIKey == "" {
				errs = append(errs, fmt.Errorf("app_api_key_env: environment variable %s is not set", v.AppAPIKeyEnv))
			}
		}
		errs = append(errs, need("app_api_key (or app_api_key_env)", v.AppAPIKey), secret("rest_api_key", v.RestAPIKeyEnv, v.RestAPIKeyFile))
	case privsync.KindBloomreach:
		errs = append(errs, need("project_token", v.ProjectToken), secret("api_key_id", v.APIKeyIDEnv, v.APIKeyIDFile),
			secret("api_secret", v.APISecretEnv, v.APISecretFile))
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
