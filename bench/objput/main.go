// Command objput copies local files into object storage through
// gocloud.dev/blob, for the object storage benchmark and demo scripts:
//
//	objput DEST-URL FILE-OR-DIR...
//
// DEST-URL is a bucket URL with a prefix (s3://b/export/, gs://...,
// azblob://container/export/?localemu=true&...); a directory is copied
// with its relative paths.
package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: objput DEST-URL FILE-OR-DIR...")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "objput:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dest string, srcs []string) error {
	u, err := url.Parse(dest)
	if err != nil {
		return fmt.Errorf("parsing %s: %w", dest, err)
	}
	prefix := strings.TrimPrefix(u.Path, "/")
	u.Path = ""
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return fmt.Errorf("opening %s: %w", u.Redacted(), err)
	}
	defer b.Close()
	var c *container.Client
	if b.As(&c) { // Azure: the container must exist before writes
		if _, err := c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return fmt.Errorf("creating the container: %w", err)
		}
	}
	for _, src := range srcs {
		err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(src, path)
			if rel == "." {
				rel = filepath.Base(path)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			key := prefix + filepath.ToSlash(rel)
			if err := b.WriteAll(ctx, key, data, nil); err != nil {
				return fmt.Errorf("writing %s: %w", key, err)
			}
			fmt.Println(key, len(data))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
