package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hiddeco/sshsig"
	"github.com/privsync/privsync/ledger"
	"golang.org/x/crypto/ssh"
)

// newKey returns a fresh Ed25519 key as an unencrypted OpenSSH private
// key file's bytes, and its signer.
func newKey(t *testing.T) ([]byte, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "privacy@company")
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(block)
	signer, err := ParseSigningKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, signer
}

func allowedLine(principal string, k ssh.PublicKey) string {
	return principal + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func mustAllowed(t *testing.T, text string) *AllowedSigners {
	t.Helper()
	a, err := ParseAllowedSigners(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// runEvents returns n events of run id.
func runEvents(id string, n int) []*ledger.Event {
	evs := make([]*ledger.Event, n)
	for i := range evs {
		evs[i] = &ledger.Event{RunID: id, Seq: int64(i + 1), RecordedAt: "2026-11-23T06:00:00Z", Vendor: "sfmc",
			SubjectID: fmt.Sprintf("p-%d", i), Operation: "restrict", Outcome: "completed", Attempts: 1}
	}
	return evs
}

// writeRuns writes the reports and summaries of runs ids into dir, each
// chained to the one before, signed by signer when it is not nil.
func writeRuns(t *testing.T, dir string, signer ssh.Signer, ids ...string) {
	t.Helper()
	for i, id := range ids {
		info := SummaryInfo{Mode: "incremental", StartedAt: time.Date(2026, 11, 23+i, 6, 0, 0, 0, time.UTC), Signer: signer}
		if i > 0 {
			info.PreviousRun = ids[i-1]
		}
		if err := WriteSummary(context.Background(), dir, id, &fakeSource{events: runEvents(id, 3+i)}, info); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSignedSummaryVerifies(t *testing.T) {
	dir := t.TempDir()
	_, signer := newKey(t)
	writeRuns(t, dir, signer, testRun)
	jsonPath, _ := SummaryPaths(dir, testRun)
	js, _ := os.ReadFile(jsonPath)
	sig, err := os.ReadFile(SigPath(jsonPath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sig, []byte("-----BEGIN SSH SIGNATURE-----\n")) {
		t.Errorf("the signature is not armored as ssh-keygen writes it:\n%s", sig)
	}
	allowed := mustAllowed(t, "# the company's report key\n"+allowedLine("privacy@company", signer.PublicKey())+"\n")
	c, err := CheckSignature(js, sig, allowed)
	if err != nil {
		t.Fatal(err)
	}
	if c.Key != Fingerprint(signer.PublicKey()) || len(c.Principals) != 1 || c.Principals[0] != "privacy@company" {
		t.Errorf("CheckSignature = %+v", c)
	}
	s, _ := ReadSummary(jsonPath)
	if s.SigningKey != c.Key {
		t.Errorf("the summary names key %q, signed by %q", s.SigningKey, c.Key)
	}
	// The summaries for people say how to check it, with the exact names.
	keygen := "ssh-keygen -Y verify -f allowed_signers -I privacy@company -n privsync-report -s " + testRun + ".summary.json.sig "
	mdText, _ := os.ReadFile(filepath.Join(dir, testRun+".summary.md"))
	page, _ := os.ReadFile(HTMLPath(dir, testRun))
	if !bytes.Contains(mdText, []byte(keygen+"< "+testRun+".summary.json")) || !bytes.Contains(mdText, []byte("signed with the "+c.Key+" SSH key")) {
		t.Errorf("the Markdown summary does not say how to check its signature:\n%s", mdText)
	}
	if !bytes.Contains(page, []byte(keygen+"&lt; "+testRun+".summary.json")) || !bytes.Contains(page, []byte(`<span class="status ok">signed</span>`)) {
		t.Errorf("the HTML summary does not say how to check its signature")
	}

	// One byte changed in the summary.
	edited := bytes.Replace(js, []byte(`"rows": 3`), []byte(`"rows": 2`), 1)
	if _, err := CheckSignature(edited, sig, allowed); err == nil || !strings.Contains(err.Error(), "does not match the summary") {
		t.Errorf("an edited summary verified: %v", err)
	}
	// Another key, or this key for another namespace, is not allowed.
	_, other := newKey(t)
	if _, err := CheckSignature(js, sig, mustAllowed(t, allowedLine("privacy@company", other.PublicKey()))); err == nil {
		t.Error("a signature by a key the file does not hold verified")
	}
	if _, err := CheckSignature(js, sig, mustAllowed(t, `privacy@company namespaces="git,file" `+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))))); err == nil {
		t.Error("a key allowed only for other namespaces verified")
	}
	if _, err := CheckSignature(js, sig, mustAllowed(t, `"privacy@company,legal@company" namespaces="privsync-report" `+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))))); err != nil {
		t.Errorf("a key allowed for privsync-report was refused: %v", err)
	}
	// A signature made by the same key for another namespace.
	fileSig, err := sshsig.Sign(bytes.NewReader(js), signer, sshsig.HashSHA512, "file")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckSignature(js, sshsig.Armor(fileSig), allowed); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("a signature for another namespace verified: %v", err)
	}
}

// TestSignatureVerifiesWithSSHKeygen checks privsync's signatures with
// OpenSSH itself, on a key ssh-keygen made.
func TestSignatureVerifiesWithSSHKeygen(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen is not installed (openssh-client)")
	}
	tmp := t.TempDir()
	keyPath := filepath.Join(tmp, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "privacy@company", "-f", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	keyBytes, _ := os.ReadFile(keyPath)
	signer, err := ParseSigningKey(keyBytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(keyPath + ".pub")
	allowed := filepath.Join(tmp, "allowed_signers")
	if err := os.WriteFile(allowed, []byte("privacy@company "+string(pub)), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "reports")
	writeRuns(t, dir, signer, testRun)
	jsonPath, _ := SummaryPaths(dir, testRun)

	verify := func(summary []byte) (string, error) {
		cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "privacy@company", "-n", Namespace, "-s", SigPath(jsonPath))
		cmd.Stdin = bytes.NewReader(summary)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	js, _ := os.ReadFile(jsonPath)
	if out, err := verify(js); err != nil || !strings.Contains(out, `Good "privsync-report" signature for privacy@company`) {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
	if out, err := verify(bytes.Replace(js, []byte(`"rows": 3`), []byte(`"rows": 4`), 1)); err == nil {
		t.Fatalf("ssh-keygen verified an edited summary:\n%s", out)
	}
	// And privsync verifies a signature ssh-keygen made, with the
	// allowed-signers file ssh-keygen read.
	a, err := os.Open(allowed)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	signers, err := ParseAllowedSigners(a)
	if err != nil {
		t.Fatal(err)
	}
	msg := filepath.Join(tmp, "msg")
	if err := os.WriteFile(msg, js, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ssh-keygen", "-Y", "sign", "-f", keyPath, "-n", Namespace, msg).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
	}
	theirs, _ := os.ReadFile(msg + ".sig")
	if c, err := CheckSignature(js, theirs, signers); err != nil || c.Principals[0] != "privacy@company" {
		t.Errorf("privsync refused ssh-keygen's own signature: %v", err)
	}
}

func TestParseSigningKeyRefuses(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "c", []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseSigningKey(pem.EncodeToMemory(block))
	if err == nil || !strings.Contains(err.Error(), "protected by a passphrase") || strings.Contains(err.Error(), "correct horse") {
		t.Errorf("passphrase-protected key: %v", err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	block, _ = ssh.MarshalPrivateKey(rsaKey, "")
	if _, err := ParseSigningKey(pem.EncodeToMemory(block)); err == nil || !strings.Contains(err.Error(), "Ed25519") {
		t.Errorf("RSA key: %v", err)
	}
	secret := "not a key but a secret value 12345"
	if _, err := ParseSigningKey([]byte(secret)); err == nil || strings.Contains(err.Error(), "12345") {
		t.Errorf("garbage key: %v", err)
	}
}

func TestParseAllowedSigners(t *testing.T) {
	_, signer := newKey(t)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	for _, bad := range []string{"", "# only a comment\n", "privacy@company\n", "privacy@company ssh-ed25519 notbase64\n",
		"privacy@company cert-authority " + key + "\n", `privacy@company valid-after="20260101" ` + key + "\n"} {
		if _, err := ParseAllowedSigners(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseAllowedSigners(%q) accepted it", bad)
		}
	}
	a := mustAllowed(t, "\n# comment\nlegal@company,privacy@company "+key+" the report key\n")
	if len(a.Signers) != 1 || len(a.Signers[0].Principals) != 2 || a.Signers[0].Line != 3 {
		t.Errorf("ParseAllowedSigners = %+v", a.Signers)
	}
}

func TestSameKey(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"ED25519 SHA256:Rq7RcP", "ed25519 SHA256:Rq7RcP", true},
		{"ED25519 SHA256:Rq7RcP", "ED25519 SHA256:rq7rcp", false},
		{"ED25519 SHA256:Rq7RcP", "RSA SHA256:Rq7RcP", false},
	} {
		if got := SameKey(tc.a, tc.b); got != tc.want {
			t.Errorf("SameKey(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
