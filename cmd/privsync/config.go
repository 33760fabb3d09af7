package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/privsync/privsync"
)

// Config is privsync.toml.
type Config struct {
	Ledger    string                   `toml:"ledger"`
	ReportDir string                   `toml:"report_dir"`
	Columns   map[string]string        `toml:"columns"`
	Vendors   map[string]*VendorConfig `toml:"vendors"`
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
	days := map[int]string{}
	for _, name := range c.VendorNames() {
		v := c.Vendors[name]
		if err := v.check(name, getenv); err != nil {
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

func (v *VendorConfig) check(name string, getenv func(string) string) error {
	if !v.kind().Valid() {
		return fmt.Errorf("kind %q: use sfmc, batch or bloomreach", v.Kind)
	}
	if v.BaseURL == "" {
		v.BaseURL = map[privsync.Kind]string{privsync.KindSFMC: "https://app.igodigital.com",
			privsync.KindBatch: "https://api.batch.com", privsync.KindBloomreach: "https://api.exponea.com"}[v.kind()]
	}
	if !v.Sim() && !strings.HasPrefix(v.BaseURL, "https://") && !strings.HasPrefix(v.BaseURL, "http://127.0.0.1") && !strings.HasPrefix(v.BaseURL, "http://localhost") {
		return fmt.Errorf("base_url %q: vendors are reached over https (or \"sim\" for the built-in simulator)", v.BaseURL)
	}
	defaults := map[privsync.Kind][3]float64{ // rate, in flight, batch size
		privsync.KindSFMC: {5, 4, 1000}, privsync.KindBatch: {10, 8, 1}, privsync.KindBloomreach: {5, 4, 1000}}[v.kind()]
	if v.RequestsPerSecond <= 0 {
		v.RequestsPerSecond = defaults[0]
	}
	if v.Burst <= 0 {
		v.Burst = max(1, int(v.RequestsPerSecond))
	}
	if v.MaxInFlight <= 0 {
		v.MaxInFlight = int(defaults[1])
	}
	maxBatch := int(defaults[2])
	if v.BatchSize <= 0 {
		v.BatchSize = maxBatch
	}
	if v.kind() != privsync.KindSFMC && v.BatchSize > maxBatch {
		return fmt.Errorf("batch_size %d: %s takes at most %d per request", v.BatchSize, v.Kind, maxBatch)
	}
	if v.PollInterval.Duration <= 0 {
		v.PollInterval.Duration = 2 * time.Second
	}
	if v.Timeout.Duration <= 0 {
		v.Timeout.Duration = 30 * time.Second
	}
	if v.SuppressionDay <= 0 {
		v.SuppressionDay = 14
	}
	if v.SuppressionDay > 30 {
		return fmt.Errorf("suppression_days %d: sfmc allows at most 30", v.SuppressionDay)
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
