package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	const sfmc = "[vendors.sfmc]\nkind = \"sfmc\"\ncustomer_mid = \"1\"\napi_key_env = \"K\"\n"
	env := map[string]string{"K": "secret-value", "B": "rest"}
	tests := []struct {
		name, toml, want string
	}{
		{"unknown top-level key", "ledgr = \"x.db\"\n" + sfmc, "unknown key ledgr"},
		{"unknown vendor key", sfmc + "batchsize = 3\n", "unknown key vendors.sfmc.batchsize"},
		{"missing secret", "[vendors.sfmc]\nkind = \"sfmc\"\ncustomer_mid = \"1\"\napi_key_env = \"NOT_SET\"\n", "api_key_env: environment variable NOT_SET is not set"},
		{"secret required", "[vendors.sfmc]\nkind = \"sfmc\"\ncustomer_mid = \"1\"\n", "api_key_env (or api_key_file) is required"},
		{"both env and file", sfmc + "api_key_file = \"/x\"\n", "give api_key_env or api_key_file, not both"},
		{"secret file missing", "[vendors.sfmc]\nkind = \"sfmc\"\ncustomer_mid = \"1\"\napi_key_file = \"/nonexistent/key\"\n", "api_key_file:"},
		{"unknown kind", "[vendors.x]\nkind = \"marketo\"\n", "[vendors.x] kind \"marketo\""},
		{"missing customer_mid", "[vendors.sfmc]\nkind = \"sfmc\"\napi_key_env = \"K\"\n", "customer_mid is required"},
		{"plain http", sfmc + "base_url = \"http://vendor.example\"\n", "vendors are reached over https"},
		{"batch too big", "[vendors.b]\nkind = \"batch\"\napp_api_key = \"A\"\nrest_api_key_env = \"B\"\nbatch_size = 5\n", "batch_size 5: must be a whole number from 1 to 1"},
		{"suppression too long", sfmc + "suppression_days = 31\n", "suppression_days 31"},
		{"no vendors", "ledger = \"x.db\"\n", "no [vendors.NAME] table"},
		{"unknown column", "[columns]\nemail = \"e\"\n" + sfmc, "[columns] email is not a column"},
		{"two sfmc windows", sfmc + "suppression_days = 10\n[vendors.sfmc2]\nkind = \"sfmc\"\ncustomer_mid = \"2\"\napi_key_env = \"K\"\n", "different suppression_days"},
		{"bad toml", "[vendors.sfmc\n", "reading config"},
		{"signing key twice", "signing_key_env = \"K\"\nsigning_key_file = \"/x\"\n" + sfmc, "give signing_key_file or signing_key_env, not both"},
		{"signing key env unset", "signing_key_env = \"NOT_SET\"\n" + sfmc, "signing_key_env: environment variable NOT_SET is not set"},
		{"signing key file missing", "signing_key_file = \"/nonexistent/key\"\n" + sfmc, "signing_key_file:"},
		{"signing key not a key", "signing_key_env = \"K\"\n" + sfmc, "signing_key_env K: the signing key is not an OpenSSH private key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(path, func(k string) string { return env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != ExitUsage {
				t.Errorf("err %v is not a usage error (exit 2)", err)
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}
}

func TestLoadConfigResolvesSecretsAndDefaults(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "br-secret")
	if err := os.WriteFile(keyFile, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "c.toml")
	toml := "[vendors.br]\nkind = \"bloomreach\"\nproject_token = \"p\"\napi_key_id_env = \"ID\"\napi_secret_file = \"" + keyFile + "\"\n"
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(path, func(k string) string { return map[string]string{"ID": "env-id"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	v := c.Vendors["br"]
	if v.Secret("api_key_id") != "env-id" || v.Secret("api_secret") != "file-secret" {
		t.Errorf("secrets not resolved from env and file")
	}
	if v.BaseURL != "https://api.exponea.com" || v.BatchSize != 1000 || v.RequestsPerSecond <= 0 || v.Burst < 1 || v.MaxInFlight < 1 {
		t.Errorf("defaults not applied: %+v", v)
	}
}
