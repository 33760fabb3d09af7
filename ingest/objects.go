package ingest

import (
	"context"
	"errors"
	"io"
)

// Objects reads inputs that are not local paths: objects in a store
// (objstore.Store behind an adapter is one). Names are the objects' URLs.
type Objects interface {
	// Is reports whether an input names objects rather than a local path.
	Is(input string) bool
	// Expand returns the names of the objects an input names, in order:
	// itself for one object, the data objects under a prefix. Expanding a
	// name Expand returned gives it back.
	Expand(ctx context.Context, input string) ([]string, error)
	// Open opens an object as listed: it must not have changed since.
	Open(ctx context.Context, name string) (Object, error)
}

// Object is an opened object: Read streams it (CSV), ReadAt reads ranges
// of it (Parquet: the footer first, then the column chunks).
type Object interface {
	io.Reader
	io.ReaderAt
	io.Closer
	Size() int64
	// ETag identifies the object's version (ETag, or generation).
	ETag() string
}

// objectCSV is a CSV object, hashed as it is streamed.
type objectCSV struct {
	*csvSource
	obj Object
}

func (o *objectCSV) stream(ctx context.Context, s *session, h Handler, info *FileInfo) error {
	info.ETag = o.obj.ETag()
	return o.csvSource.stream(ctx, s, h, info)
}

func (o *objectCSV) close() { o.obj.Close() }

// openObject opens an object input and reads its header or footer.
func (s *session) openObject(ctx context.Context, name string) (input, error) {
	format := formatOf(name)
	if format == "" {
		return nil, fileErr(name, 0, "unknown input type: expected a .csv or .parquet object")
	}
	obj, err := s.opts.Objects.Open(ctx, name)
	if err != nil {
		return nil, &FileError{Path: name, Err: err}
	}
	switch format {
	case FormatCSV:
		// No closer: the CSV reader hashes what it streams, as for
		// standard input, rather than reading the object a second time.
		src, err := openCSV(name, obj, nil, s)
		if err != nil {
			obj.Close()
			return nil, err
		}
		return &objectCSV{csvSource: src, obj: obj}, nil
	default:
		// Ranged reads: the footer first, then the column chunks.
		p, err := openParquet(Source{Name: name, R: obj, Size: obj.Size()}, s)
		if err != nil {
			obj.Close()
			return nil, err
		}
		p.closer = obj
		return &objectParquet{parquetSource: p, etag: obj.ETag()}, nil
	}
}

// objectParquet is a Parquet object.
type objectParquet struct {
	*parquetSource
	etag string
}

func (o *objectParquet) stream(ctx context.Context, s *session, h Handler, info *FileInfo) error {
	info.ETag = o.etag
	return o.parquetSource.stream(ctx, s, h, info)
}

// expand resolves the inputs as Expand does, objects included.
func (s *session) expand(ctx context.Context, inputs []string) ([]string, error) {
	return ExpandObjects(ctx, inputs, s.opts.Objects)
}

// ExpandObjects resolves inputs as Expand does, and the inputs objs says
// are objects by listing them.
func ExpandObjects(ctx context.Context, inputs []string, objs Objects) ([]string, error) {
	if objs == nil {
		return Expand(inputs)
	}
	var files, local []string
	flush := func() error {
		if len(local) == 0 {
			return nil
		}
		f, err := Expand(local)
		files, local = append(files, f...), nil
		return err
	}
	for _, in := range inputs {
		if !objs.Is(in) {
			local = append(local, in)
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		names, err := objs.Expand(ctx, in)
		if err != nil {
			var fe *FileError
			if errors.As(err, &fe) {
				return nil, err
			}
			return nil, &FileError{Path: in, Err: err}
		}
		files = append(files, names...)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("ingest: no inputs")
	}
	return files, nil
}
