package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/privsync/privsync/ingest"
	"github.com/privsync/privsync/ingest/objstore"
)

// objects gives ingest the inputs in object storage (s3://, gs://,
// azblob://), listed once and pinned for the whole command.
type objects struct{ store *objstore.Store }

func newObjects() *objects {
	return &objects{store: objstore.NewStore(func(key string) string {
		switch strings.ToLower(filepath.Ext(key)) {
		case ".csv":
			return ingest.FormatCSV
		case ".parquet":
			return ingest.FormatParquet
		}
		return ""
	})}
}

func (o *objects) Is(input string) bool { return objstore.IsURL(input) }

func (o *objects) Expand(ctx context.Context, input string) ([]string, error) {
	l, err := o.store.List(ctx, input)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(l.Objects))
	for i, obj := range l.Objects {
		names[i] = obj.URL
	}
	return names, nil
}

func (o *objects) Open(ctx context.Context, name string) (ingest.Object, error) {
	obj, ok := o.store.Object(name)
	if !ok {
		l, err := o.store.List(ctx, name)
		if err != nil {
			return nil, err
		}
		if l.Prefix || len(l.Objects) != 1 {
			return nil, fmt.Errorf("%s is a prefix, not an object", name)
		}
		obj = l.Objects[0]
	}
	return obj.Open(ctx), nil
}

func (o *objects) close() { o.store.Close() }

// hasSuccessMarker reports whether a directory or prefix input holds a
// _SUCCESS marker; ok is false for an input that is neither (one file or
// object, standard input).
func (o *objects) hasSuccessMarker(ctx context.Context, input string) (has, ok bool, err error) {
	if o.Is(input) {
		l, err := o.store.List(ctx, input)
		if err != nil {
			return false, false, err
		}
		return l.Success, l.Prefix, nil
	}
	if input == ingest.Stdin {
		return false, false, nil
	}
	st, err := os.Stat(input)
	if err != nil || !st.IsDir() {
		return false, false, nil // Expand says what is wrong with it
	}
	m, err := os.Stat(filepath.Join(input, objstore.SuccessMarker))
	return err == nil && m.Mode().IsRegular(), true, nil
}

// statInput gives an input file's or object's identity for the run's
// input key: size and modification time, or size and ETag.
func (o *objects) statInput(name string) (string, error) {
	if o.Is(name) {
		obj, ok := o.store.Object(name)
		if !ok {
			return "", fmt.Errorf("input %s was not listed", name)
		}
		return fmt.Sprintln(name, obj.Size, obj.ETag), nil
	}
	st, err := os.Stat(name)
	if err != nil {
		return "", fmt.Errorf("reading input %s: %w", name, err)
	}
	abs, _ := filepath.Abs(name)
	return fmt.Sprintln(abs, st.Size(), st.ModTime().UnixNano()), nil
}
