// Package objstore reads privsync's inputs where warehouses write them: S3
// (and S3-compatible stores), Google Cloud Storage and Azure Blob Storage,
// through gocloud.dev/blob and its s3blob, gcsblob and azureblob drivers.
//
// An input is a URL: s3://bucket/prefix/, gs://bucket/prefix/ or
// azblob://container/prefix/, or the URL of one object. Query options are
// gocloud's and pass through to the driver (s3: region, endpoint,
// use_path_style, disable_https, profile; gs: anonymous; azblob: domain,
// protocol, localemu, ...). Credentials come from each cloud's standard
// chain (AWS: environment, shared profile, web identity, instance role,
// AWS_ENDPOINT_URL; Google: application default credentials,
// STORAGE_EMULATOR_HOST; Azure: AZURE_STORAGE_ACCOUNT with a key, a SAS or
// the default Azure credential).
//
// A prefix is read like a directory: recursively, in lexical order of the
// keys, skipping hidden objects and those under a hidden "directory" (a
// path segment starting with '.' or '_', _SUCCESS and _temporary among
// them) and .crc files. Every object is pinned when it is listed (size,
// ETag, generation; S3 reads are made If-Match its ETag, and every answer's
// ETag or generation is compared with the listed one), so an object
// replaced while privsync reads it is an error rather than a mix of two
// exports.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob:// URLs
	_ "gocloud.dev/blob/gcsblob"   // gs:// URLs
	_ "gocloud.dev/blob/s3blob"    // s3:// URLs
	"gocloud.dev/gcerrors"
)

// SuccessMarker is the object Spark, Hadoop and many warehouse exports
// write last, when every part file of a prefix is in place.
const SuccessMarker = "_SUCCESS"

// schemes are the URL schemes this package reads.
var schemes = []string{"s3", "gs", "azblob"}

// IsURL reports whether an input names object storage rather than a
// local path.
func IsURL(input string) bool {
	scheme, _, ok := strings.Cut(input, "://")
	return ok && slices.Contains(schemes, scheme)
}

// Object is one listed object, pinned to the version that was listed.
type Object struct {
	URL     string // scheme://bucket/key, without the query string
	Key     string
	Size    int64
	ETag    string // the ETag (S3, Azure) or ETag and generation (GCS)
	ModTime time.Time

	gen    int64 // GCS generation, 0 elsewhere
	bucket *blob.Bucket
}

// Listing is what one input names.
type Listing struct {
	Objects []*Object // data objects in lexical order of their keys
	Prefix  bool      // the input is a prefix, not one object
	Success bool      // a prefix holding a _SUCCESS object
	// Skipped counts the objects skipped as not data (hidden, markers, .crc).
	Skipped int
}

// Store lists and opens objects. Buckets are opened once and listings are
// kept: listing an input twice, or the URL of an object already listed,
// gives the same pinned objects without asking the store again. A Store
// is safe for concurrent use; Close it when done.
type Store struct {
	// Formats says which keys are data: it returns "" for a key of an
	// unknown type (an error in a prefix). Nil takes every key.
	Formats func(key string) string

	mu       sync.Mutex
	buckets  map[string]*blob.Bucket // by scheme://bucket?query
	listings map[string]*Listing     // by input
	objects  map[string]*Object      // by URL
}

// NewStore returns an empty Store.
func NewStore(formats func(key string) string) *Store {
	return &Store{Formats: formats, buckets: map[string]*blob.Bucket{},
		listings: map[string]*Listing{}, objects: map[string]*Object{}}
}

// Close closes the buckets opened.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, b := range s.buckets {
		errs = append(errs, b.Close())
	}
	clear(s.buckets)
	return errors.Join(errs...)
}

// target is an input URL split into its bucket and key.
type target struct {
	bucketURL string // scheme://bucket?query: what gocloud opens
	base      string // scheme://bucket/
	key       string // the key or prefix, no leading slash
}

func parse(input string) (target, error) {
	u, err := url.Parse(input)
	if err != nil {
		return target{}, fmt.Errorf("not an object storage URL: %w", err)
	}
	if u.Host == "" {
		return target{}, errors.New("no bucket in the URL: write scheme://bucket/prefix/")
	}
	b := url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: u.RawQuery}
	return target{bucketURL: b.String(), base: u.Scheme + "://" + u.Host + "/", key: strings.TrimPrefix(u.Path, "/")}, nil
}

func (s *Store) bucket(ctx context.Context, t target) (*blob.Bucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.buckets[t.bucketURL]; b != nil {
		return b, nil
	}
	b, err := blob.OpenBucket(ctx, t.bucketURL)
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", strings.TrimSuffix(t.base, "/"), err)
	}
	s.buckets[t.bucketURL] = b
	return b, nil
}

// Object returns an object already listed, by its URL.
func (s *Store) Object(url string) (*Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[url]
	return o, ok
}

// List lists what an input names: the one object at its key, or every data
// object under it as a prefix (a key ending in '/', or one that names no
// object). A prefix holding no data object is an error, as is a key of a
// type Formats does not know.
func (s *Store) List(ctx context.Context, input string) (*Listing, error) {
	s.mu.Lock()
	l, ok := s.listings[input]
	if !ok {
		if o, known := s.objects[input]; known {
			l, ok = &Listing{Objects: []*Object{o}}, true
		}
	}
	s.mu.Unlock()
	if ok {
		return l, nil
	}
	t, err := parse(input)
	if err != nil {
		return nil, err
	}
	b, err := s.bucket(ctx, t)
	if err != nil {
		return nil, describe(err, t)
	}
	l = &Listing{}
	if t.key != "" && !strings.HasSuffix(t.key, "/") {
		a, err := b.Attributes(ctx, t.key)
		switch {
		case err == nil:
			o := s.pin(t, b, t.key, a)
			if s.Formats != nil && s.Formats(t.key) == "" {
				return nil, errors.New("unknown input type: expected a .csv or .parquet object")
			}
			l.Objects = []*Object{o}
		case gcerrors.Code(err) == gcerrors.NotFound:
			t.key += "/" // a prefix named without its slash
		default:
			return nil, describe(err, t)
		}
	}
	if l.Objects == nil {
		if err := s.listPrefix(ctx, b, t, l); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.listings[input] = l
	for _, o := range l.Objects {
		s.objects[o.URL] = o
	}
	s.mu.Unlock()
	return l, nil
}

func (s *Store) listPrefix(ctx context.Context, b *blob.Bucket, t target, l *Listing) error {
	l.Prefix = true
	it := b.List(&blob.ListOptions{Prefix: t.key})
	var keys []string
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return describe(err, t)
		}
		rel := strings.TrimPrefix(obj.Key, t.key)
		switch {
		case obj.IsDir || rel == "" || strings.HasSuffix(rel, "/"): // directory markers
			continue
		case rel == SuccessMarker:
			l.Success = true
			l.Skipped++
			continue
		case skip(rel):
			l.Skipped++
			continue
		}
		if s.Formats != nil && s.Formats(obj.Key) == "" {
			return fmt.Errorf("%s%s: unknown input type under prefix %s: expected .csv or .parquet objects", t.base, obj.Key, t.key)
		}
		keys = append(keys, obj.Key)
	}
	if len(keys) == 0 {
		return fmt.Errorf("no .csv or .parquet objects under prefix %s%s (does it exist?)", t.base, t.key)
	}
	slices.Sort(keys) // stores list in key order; make sure of it
	for _, k := range keys {
		a, err := b.Attributes(ctx, k)
		if err != nil {
			return describe(err, t)
		}
		l.Objects = append(l.Objects, s.pin(t, b, k, a))
	}
	return nil
}

// skip reports whether a key relative to the prefix is not data: a hidden
// or '_' segment anywhere on its path, or a checksum file.
func skip(rel string) bool {
	for _, seg := range strings.Split(rel, "/") {
		if strings.HasPrefix(seg, ".") || strings.HasPrefix(seg, "_") {
			return true
		}
	}
	return strings.HasSuffix(strings.ToLower(path.Base(rel)), ".crc")
}

func (s *Store) pin(t target, b *blob.Bucket, key string, a *blob.Attributes) *Object {
	o := &Object{URL: t.base + key, Key: key, Size: a.Size, ETag: a.ETag, ModTime: a.ModTime, bucket: b}
	var ga storage.ObjectAttrs
	if a.As(&ga) && ga.Generation != 0 {
		o.gen = ga.Generation
		o.ETag = fmt.Sprintf("%s (generation %d)", a.ETag, ga.Generation)
	}
	return o
}

// describe says what went wrong with a store in words an operator acts on.
func describe(err error, t target) error {
	where := t.base + t.key
	code := gcerrors.Code(err)
	var status interface{ HTTPStatusCode() int } // the AWS SDK's response errors
	if errors.As(err, &status) && (status.HTTPStatusCode() == 401 || status.HTTPStatusCode() == 403) {
		code = gcerrors.PermissionDenied
	}
	switch code {
	case gcerrors.PermissionDenied:
		return fmt.Errorf("access denied to %s: check the credentials the environment gives (AWS_ACCESS_KEY_ID/AWS_PROFILE/role, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*): %w", where, err)
	case gcerrors.NotFound:
		return fmt.Errorf("%s: no such bucket or object: %w", where, err)
	}
	return fmt.Errorf("reading %s: %w", where, err)
}

// ErrChanged is returned when an object no longer is the version listed.
var ErrChanged = errors.New("the object changed since it was listed (a new export is being written?): run again once it is complete")

// pinned makes a read ask for the listed version of o where the store can.
func (o *Object) pinned() *blob.ReaderOptions {
	return &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
		var in *s3.GetObjectInput
		if as(&in) && o.ETag != "" {
			in.IfMatch = aws.String(o.ETag)
		}
		var opts *[]func(*s3.Options)
		if as(&opts) {
			// S3-compatible stores often send no checksum; the SDK would
			// print a line on standard error for every read.
			*opts = append(*opts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
		}
		return nil
	}}
}

// check refuses a reader of another version than the one listed: the
// store refused the read (412, or 404 for a GCS generation gone), or its
// answer names another ETag (for stores that ignore If-Match on reads) or
// size (whole reads).
func (o *Object) check(r *blob.Reader, err error, whole bool) error {
	if err != nil {
		switch gcerrors.Code(err) {
		case gcerrors.FailedPrecondition, gcerrors.NotFound:
			return ErrChanged
		}
		return describe(err, target{base: strings.TrimSuffix(o.URL, o.Key), key: o.Key})
	}
	var out s3.GetObjectOutput
	var gr *storage.Reader
	if (whole && r.Size() != o.Size) || (r.As(&out) && out.ETag != nil && o.ETag != "" && *out.ETag != o.ETag) ||
		(r.As(&gr) && o.gen != 0 && gr.Attrs.Generation != 0 && gr.Attrs.Generation != o.gen) {
		r.Close()
		return ErrChanged
	}
	return nil
}

// Reader reads one pinned object: Read streams it from the start (one
// request), ReadAt reads ranges (a request each), as Parquet readers do.
type Reader struct {
	ctx context.Context // the reads' context: io.Reader and io.ReaderAt take none
	o   *Object

	stream *blob.Reader
	// Ranges counts the ranged requests made by ReadAt.
	Ranges int
	mu     sync.Mutex
}

// Open returns a Reader of o; reads are bound to ctx.
func (o *Object) Open(ctx context.Context) *Reader { return &Reader{ctx: ctx, o: o} }

// Size is the object's size as listed.
func (r *Reader) Size() int64 { return r.o.Size }

// ETag is the object's ETag (or generation) as listed.
func (r *Reader) ETag() string { return r.o.ETag }

// Read streams the object.
func (r *Reader) Read(p []byte) (int, error) {
	if r.stream == nil {
		s, err := r.o.bucket.NewReader(r.ctx, r.o.Key, r.o.pinned())
		if err := r.o.check(s, err, true); err != nil {
			return 0, err
		}
		r.stream = s
	}
	n, err := r.stream.Read(p)
	if err != nil && err != io.EOF {
		err = r.o.check(nil, err, true)
	}
	return n, err
}

// ReadAt reads len(p) bytes at off with one ranged request.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("objstore: negative offset")
	}
	if off >= r.o.Size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.o.Size-off)
	r.mu.Lock()
	r.Ranges++
	r.mu.Unlock()
	rr, err := r.o.bucket.NewRangeReader(r.ctx, r.o.Key, off, n, r.o.pinned())
	if err := r.o.check(rr, err, false); err != nil {
		return 0, err
	}
	defer rr.Close()
	m, err := io.ReadFull(rr, p[:n])
	if err != nil {
		return m, r.o.check(nil, err, false)
	}
	if n < int64(len(p)) {
		return m, io.EOF
	}
	return m, nil
}

// Close ends a stream.
func (r *Reader) Close() error {
	if r.stream != nil {
		return r.stream.Close()
	}
	return nil
}
