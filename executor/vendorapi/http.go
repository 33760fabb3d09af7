package vendorapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits of the HTTP machinery.
const (
	// DefaultTimeout bounds one request, from dial to the last body byte.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxBody is the most bytes of a response body that are read.
	DefaultMaxBody = 1 << 20
	// MaxMessage is the most bytes of a raw error body kept in Error.Message.
	MaxMessage   = 4 << 10
	maxRedirects = 10
	// MaxIdleConns is how many connections to a vendor's host a client
	// keeps open between requests: as many as a vendor's requests in
	// flight usually are.
	MaxIdleConns = 64
)

// ErrRedirectRefused is returned (wrapped) when a vendor redirects a request
// to another host or from https to http: credentials travel in headers such
// as X-Authorization that Go would forward, so the redirect is not followed.
var ErrRedirectRefused = errors.New("redirect refused")

// HTTPOptions configures NewHTTPClient.
type HTTPOptions struct {
	Timeout time.Duration  // per request; DefaultTimeout when zero
	RootCAs *x509.CertPool // trusted roots; the system pool when nil
}

// NewHTTPClient returns a client with a per-request timeout, certificate
// verification always on (TLS 1.2 at least) and CheckRedirect set to
// CheckRedirect.
func NewHTTPClient(o HTTPOptions) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs}
	// The default keeps 2 idle connections per host: with a vendor's
	// requests in flight side by side, every other request dialled (and
	// shook hands) anew, a tenth of a Batch.com backfill's CPU.
	tr.MaxIdleConnsPerHost = MaxIdleConns
	return &http.Client{Timeout: o.Timeout, Transport: tr, CheckRedirect: CheckRedirect}
}

// CheckRedirect follows a redirect only to the same host and never from
// https down to http.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects: %w", maxRedirects, ErrRedirectRefused)
	}
	first := via[0].URL
	if req.URL.Host != first.Host {
		return fmt.Errorf("redirect from host %s to host %s: %w", first.Host, req.URL.Host, ErrRedirectRefused)
	}
	if first.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect from https to %s: %w", req.URL.Scheme, ErrRedirectRefused)
	}
	return nil
}

// ParseRetryAfter reads a Retry-After header value, given as delta-seconds
// or as an HTTP date (taken relative to now). A date in the past gives 0.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// DefaultAction is how a status code outside 2xx is classified unless a
// connector overrides it (Batch.com's 409 is RetryLater).
func DefaultAction(status int) Action {
	switch {
	case status == http.StatusTooManyRequests, status >= 500:
		return Retry
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return StopVendor
	case status == http.StatusNotFound:
		return NotFound
	default:
		return Reject
	}
}

// APIConfig configures an API.
type APIConfig struct {
	BaseURL    string       // scheme and host, optionally a path prefix
	HTTPClient *http.Client // nil: NewHTTPClient with Timeout
	Timeout    time.Duration
	// Header is set on every request: the vendor's credentials. It never
	// appears in an error.
	Header http.Header
	// Actions overrides DefaultAction for some status codes.
	Actions map[int]Action
	MaxBody int64            // DefaultMaxBody when zero
	Now     func() time.Time // for Retry-After dates; time.Now when nil
}

// API sends JSON requests to one vendor and classifies what comes back.
type API struct {
	base    *url.URL
	hc      *http.Client
	header  http.Header
	actions map[int]Action
	maxBody int64
	now     func() time.Time
}

// NewAPI checks the config and returns an API. A caller's HTTPClient is
// copied and given CheckRedirect when it has no redirect policy of its own.
func NewAPI(c APIConfig) (*API, error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("base url: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("base url %q: want http(s)://host[/prefix]", c.BaseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	hc := c.HTTPClient
	if hc == nil {
		hc = NewHTTPClient(HTTPOptions{Timeout: c.Timeout})
	} else if hc.CheckRedirect == nil {
		cp := *hc
		cp.CheckRedirect = CheckRedirect
		hc = &cp
	}
	a := &API{base: u, hc: hc, header: c.Header.Clone(), actions: c.Actions, maxBody: c.MaxBody, now: c.Now}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBody
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// RequireFields returns an error naming the first empty value; pairs are
// (name, value).
func RequireFields(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.TrimSpace(pairs[i+1]) == "" {
			return fmt.Errorf("%s is required", pairs[i])
		}
	}
	return nil
}

// Path joins escaped path segments: Path("a b", "c") is "/a%20b/c".
func Path(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// Do sends in (JSON, unless nil) to path (escaped, as Path builds it) below
// the base URL and decodes a
// 2xx answer into out (unless nil); unknown fields are ignored. Any other
// answer, or a network failure, is a *Error; a cancelled ctx gives its own
// error, wrapped.
func (a *API) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	for k, v := range a.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "privsync")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return a.networkError(ctx, err)
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, a.maxBody+1))
	over := int64(len(raw)) > a.maxBody
	if over {
		raw = raw[:a.maxBody]
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return a.statusError(resp, raw)
	}
	switch {
	case readErr != nil:
		return &Error{Action: Retry, StatusCode: resp.StatusCode, Message: "reading response: " + readErr.Error(), Err: readErr}
	case over:
		return &Error{Action: Retry, StatusCode: resp.StatusCode, Message: fmt.Sprintf("response body over %d bytes, cut", a.maxBody)}
	case out == nil:
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &Error{Action: Retry, StatusCode: resp.StatusCode, Message: "undecodable response: " + Truncate(string(raw)), Err: err}
	}
	return nil
}

// networkError classifies a failure to get an answer. The *url.Error is
// unwrapped so that the URL (which may carry an account key) is not kept.
func (a *API) networkError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("request abandoned: %w", ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, ErrRedirectRefused) {
		return &Error{Action: StopVendor, Message: err.Error(), Err: err}
	}
	return &Error{Action: Retry, Message: err.Error(), Err: err}
}

func (a *API) statusError(resp *http.Response, raw []byte) *Error {
	act, ok := a.actions[resp.StatusCode]
	if !ok {
		act = DefaultAction(resp.StatusCode)
	}
	e := &Error{Action: act, StatusCode: resp.StatusCode}
	e.Code, e.Message = ParseErrorBody(raw)
	if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), a.now()); ok {
		e.RetryAfter = ra
	}
	return e
}

// ParseErrorBody reads the error bodies the vendors send:
// {"error": "NAME", "message": "...", "code": N},
// {"error": "text"}, {"errors": ["..."]} and {"errors": {"field": ["..."]}}
// (with "_global" for errors of the whole request). A body that does not
// parse as one of them is returned raw (cut to MaxMessage) as the message.
func ParseErrorBody(raw []byte) (code, message string) {
	var b struct {
		Code    json.RawMessage `json:"code"`
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Errors  json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return "", Truncate(strings.TrimSpace(string(raw)))
	}
	var name string
	_ = json.Unmarshal(b.Error, &name)
	var num json.Number
	_ = json.Unmarshal(b.Code, &num)
	var parts []string
	switch {
	case b.Message != "":
		code = name
		parts = append(parts, b.Message)
	case name != "":
		parts = append(parts, name)
	}
	if code == "" {
		code = num.String()
	}
	parts = append(parts, flatten("", b.Errors)...)
	if len(parts) == 0 {
		return code, Truncate(strings.TrimSpace(string(raw)))
	}
	return code, Truncate(strings.Join(parts, "; "))
}

// flatten turns a string, a list or a map of them into lines; map keys
// other than "_global" prefix their lines.
func flatten(prefix string, raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if prefix != "" && prefix != "_global" {
			s = prefix + ": " + s
		}
		return []string{s}
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var out []string
		for _, e := range list {
			out = append(out, flatten(prefix, e)...)
		}
		return out
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			out = append(out, flatten(k, obj[k])...)
		}
		return out
	}
	return nil
}

// Truncate cuts s to MaxMessage bytes on a rune boundary, marking the cut.
func Truncate(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	cut := MaxMessage
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(cut)"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
