// Package objstoretest starts protocol-faithful object stores over real
// HTTP for tests: S3 (github.com/johannesboyne/gofakes3) and Google Cloud
// Storage (github.com/fsouza/fake-gcs-server), with the environment set so
// the cloud SDKs reach them and nothing else (no instance metadata, no
// shared config, static test credentials).
package objstoretest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// AccessKey is the only access key id the S3 server accepts.
const AccessKey = "privsync-test-key"

// S3 is a running fake S3 server.
type S3 struct {
	URL     string // http://127.0.0.1:port
	backend *s3mem.Backend
	// Before, if set, is called before each request is served (a test
	// rewrites an object in the middle of a read with it).
	Before func(r *http.Request)

	mu       sync.Mutex
	requests []Request
}

// Request is one request the server answered.
type Request struct {
	Method, Path, Range string
	Status              int
}

var credential = regexp.MustCompile(`Credential=([^/]+)/`)

// StartS3 starts an S3 server with bucket and sets the AWS environment of
// the test to reach only it, as the access key AccessKey.
func StartS3(t testing.TB, bucket string) *S3 {
	t.Helper()
	s := &S3{backend: s3mem.New()}
	if err := s.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(s.backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		defer func() {
			s.mu.Lock()
			s.requests = append(s.requests, Request{r.Method, r.URL.Path, r.Header.Get("Range"), rec.status})
			s.mu.Unlock()
		}()
		// gofakes3 does not check signatures: refuse other access keys
		// as S3 does, so a wrong credential can be tested.
		if m := credential.FindStringSubmatch(r.Header.Get("Authorization")); m == nil || m[1] != AccessKey {
			rec.Header().Set("Content-Type", "application/xml")
			rec.WriteHeader(http.StatusForbidden)
			fmt.Fprint(rec, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>`)
			return
		}
		s.mu.Lock()
		before := s.Before
		s.mu.Unlock()
		if before != nil {
			before(r)
		}
		fake.ServeHTTP(rec, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	empty := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "privsync-test-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	return s
}

// Input is the s3:// URL of a key or prefix in bucket on this server, the
// endpoint given in the query as for MinIO.
func (s *S3) Input(bucket, key string) string {
	q := url.Values{"endpoint": {s.URL}, "use_path_style": {"true"}, "region": {"us-east-1"}, "disable_https": {"true"}}
	return "s3://" + bucket + "/" + key + "?" + q.Encode()
}

// SetBefore sets Before.
func (s *S3) SetBefore(fn func(r *http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Before = fn
}

// Put writes an object.
func (s *S3) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	if err := s.Store(bucket, key, data); err != nil {
		t.Fatal(err)
	}
}

// Store writes an object; it may be called from any goroutine.
func (s *S3) Store(bucket, key string, data []byte) error {
	_, err := s.backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil)
	return err
}

// Requests returns the requests answered so far, and forgets them.
func (s *S3) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

// Gets returns the GET requests of objects under prefix among reqs.
func Gets(reqs []Request, prefix string) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Method == http.MethodGet && strings.Contains(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// GCS is a running fake Cloud Storage server.
type GCS struct {
	*fakestorage.Server
}

// StartGCS starts a GCS server with bucket, and points the Google SDK at it
// (STORAGE_EMULATOR_HOST: no credentials needed).
func StartGCS(t testing.TB, bucket string) *GCS {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, PublicHost: "127.0.0.1", Writer: ioDiscard{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", u.Host)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "none"))
	return &GCS{srv}
}

// Put writes an object.
func (g *GCS) Put(bucket, key string, data []byte) {
	g.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: key}, Content: data})
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }
