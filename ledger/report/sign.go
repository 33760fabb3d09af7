package report

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Namespace is the SSHSIG namespace of a summary's signature: what
// `ssh-keygen -Y verify -n` must be given.
const Namespace = "privsync-report"

// sigHash is the hash SSHSIG signs; ssh-keygen's default.
const sigHash = sshsig.HashSHA512

// SigPath returns the signature file of a summary: {run_id}.summary.json.sig.
func SigPath(summaryPath string) string { return summaryPath + ".sig" }

// ParseSigningKey reads an unencrypted OpenSSH (or PEM) Ed25519 private
// key. A key protected by a passphrase is refused: a batch job has no one
// to type it. Errors never quote the key.
func ParseSigningKey(pemBytes []byte) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey(pemBytes)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, errors.New("the signing key is protected by a passphrase, and a batch job has no one to type it: " +
			"give privsync a key without one (ssh-keygen -t ed25519 -N '' -f FILE), kept where only privsync can read it")
	case err != nil:
		return nil, fmt.Errorf("the signing key is not an OpenSSH private key: %w", err)
	}
	if t := signer.PublicKey().Type(); t != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("the signing key is %s: privsync signs with an Ed25519 key (ssh-keygen -t ed25519)", t)
	}
	return signer, nil
}

// Sign returns the armored SSHSIG signature of data, as
// `ssh-keygen -Y sign -n privsync-report` writes it.
func Sign(data []byte, signer ssh.Signer) ([]byte, error) {
	sig, err := sshsig.Sign(bytes.NewReader(data), signer, sigHash, Namespace)
	if err != nil {
		return nil, fmt.Errorf("signing the summary: %w", err)
	}
	return sshsig.Armor(sig), nil
}

// Fingerprint is how privsync names a public key: as ssh-keygen -l does.
func Fingerprint(k ssh.PublicKey) string {
	return strings.ToUpper(strings.TrimPrefix(k.Type(), "ssh-")) + " " + ssh.FingerprintSHA256(k)
}

// SameKey reports whether two fingerprints (Fingerprint) name the same
// key; the key type's case does not matter, the hash's does.
func SameKey(a, b string) bool {
	ta, ha, _ := strings.Cut(a, " ")
	tb, hb, _ := strings.Cut(b, " ")
	return strings.EqualFold(ta, tb) && ha == hb
}

// AllowedSigner is one line of an allowed-signers file.
type AllowedSigner struct {
	Principals []string // patterns, as the file gives them
	Key        ssh.PublicKey
	Namespaces []string // empty: any namespace
	Line       int
}

// AllowedSigners is an OpenSSH allowed-signers file (ssh-keygen(1), ALLOWED
// SIGNERS): which keys may sign, and as whom.
type AllowedSigners struct{ Signers []AllowedSigner }

// ParseAllowedSigners reads an allowed-signers file: one
// `principals [options] key-type base64-key [comment]` per line, '#'
// comments. The namespaces= option is honoured; cert-authority lines are
// refused (privsync signs with plain keys); valid-after and valid-before
// are refused rather than ignored.
func ParseAllowedSigners(r io.Reader) (*AllowedSigners, error) {
	var a AllowedSigners
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		principals, rest, ok := cutPrincipals(line)
		if !ok {
			return nil, fmt.Errorf("allowed signers, line %d: expected principals, then a key", n)
		}
		key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(rest))
		if err != nil {
			return nil, fmt.Errorf("allowed signers, line %d: %w", n, err)
		}
		s := AllowedSigner{Principals: strings.Split(principals, ","), Key: key, Line: n}
		for _, o := range options {
			name, value, _ := strings.Cut(o, "=")
			switch strings.ToLower(name) {
			case "namespaces":
				s.Namespaces = strings.Split(strings.Trim(value, `"`), ",")
			default:
				return nil, fmt.Errorf("allowed signers, line %d: option %s is not supported by privsync (use plain keys; ssh-keygen -Y verify reads it)", n, name)
			}
		}
		a.Signers = append(a.Signers, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the allowed signers: %w", err)
	}
	if len(a.Signers) == 0 {
		return nil, errors.New("the allowed signers file names no key")
	}
	return &a, nil
}

// cutPrincipals splits the principals field (maybe quoted) off a line.
func cutPrincipals(line string) (principals, rest string, ok bool) {
	if strings.HasPrefix(line, `"`) {
		end := strings.IndexByte(line[1:], '"')
		if end < 0 {
			return "", "", false
		}
		return line[1 : end+1], strings.TrimSpace(line[end+2:]), true
	}
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return "", "", false
	}
	return line[:i], strings.TrimSpace(line[i:]), true
}

// SignatureCheck is what a summary's signature says.
type SignatureCheck struct {
	Key        string   // the signing key's fingerprint (Fingerprint)
	Principals []string // who the allowed-signers file says holds it; nil when none was given
}

// CheckSignature verifies an armored SSHSIG signature of data in the
// privsync-report namespace. With allowed, the key must be one the file
// allows for that namespace; without, only the signature's own key is
// checked (which proves integrity, not who signed).
func CheckSignature(data, armored []byte, allowed *AllowedSigners) (*SignatureCheck, error) {
	sig, err := sshsig.Unarmor(armored)
	if err != nil {
		return nil, fmt.Errorf("the signature file is not an SSH signature: %w", err)
	}
	if sig.Namespace != Namespace {
		return nil, fmt.Errorf("the signature is for namespace %q, not %q", sig.Namespace, Namespace)
	}
	if err := sshsig.Verify(bytes.NewReader(data), sig, sig.PublicKey, sig.HashAlgorithm, Namespace); err != nil {
		return nil, fmt.Errorf("the signature does not match the summary (the summary was changed after it was signed): %w", err)
	}
	c := &SignatureCheck{Key: Fingerprint(sig.PublicKey)}
	if allowed == nil {
		return c, nil
	}
	want := sig.PublicKey.Marshal()
	for _, s := range allowed.Signers {
		if !bytes.Equal(s.Key.Marshal(), want) {
			continue
		}
		if len(s.Namespaces) > 0 && !slices.Contains(s.Namespaces, Namespace) {
			continue
		}
		c.Principals = append(c.Principals, s.Principals...)
	}
	if len(c.Principals) == 0 {
		return c, fmt.Errorf("the summary is signed by %s, a key the allowed signers file does not allow for %s", c.Key, Namespace)
	}
	return c, nil
}
