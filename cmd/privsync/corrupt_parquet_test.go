package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/privsync/privsync/bench/gen/gendata"
)

// maxCorruptRSS bounds the peak RSS of privsync reading a corrupt file.
const maxCorruptRSS = 200 << 20

// corruptCase is a corrupt Parquet file and whether it must be refused
// (exit 2) or may happen to read (a flipped byte inside a value).
type corruptCase struct {
	name    string
	data    []byte
	refused bool
}

// TestE2ECorruptParquetEndsInAClearErrorWithBoundedMemory runs the real
// binary on Parquet files corrupted as the fuzz corpus, the 7-byte patch
// that once made the reader allocate 1.5 GB, page headers claiming huge
// pages, and lengths flipped all over a file: each must end in exit 2
// naming the file (or, where the flip only hit a value, read), never in a
// panic, and the process's peak RSS must stay under 200 MiB.
func TestE2ECorruptParquetEndsInAClearErrorWithBoundedMemory(t *testing.T) {
	bin := binOf(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.csv")
	var b strings.Builder
	if err := gendata.WriteRows(&b, gendata.RowsOptions{N: 300, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// The fuzz test's base file, and a plain uncompressed one whose lengths
	// lie in the clear.
	base := convertTo(t, src, filepath.Join(dir, "base.parquet"),
		gendata.ParquetOptions{RowGroupRows: 100, ListRestrictions: true, Compressions: []string{"snappy"}})
	plain := convertTo(t, src, filepath.Join(dir, "plain.parquet"),
		gendata.ParquetOptions{RowGroupRows: 100, ListRestrictions: true, Plain: true, Compressions: []string{"none"}})

	var cases []corruptCase
	for _, e := range fuzzCorpus(t, "../../ingest/testdata/fuzz/FuzzParquet") {
		d := bytes.Clone(base)
		copy(d[int(e.at)%len(d):], e.patch)
		if e.cut != 0 {
			d = d[:int(e.cut)%len(d)]
		}
		cases = append(cases, corruptCase{name: "corpus " + e.name, data: d, refused: e.at == 30 && string(e.patch) == "0000#08"})
	}
	cases = append(cases, pageHeaderFlips(t, base, "snappy", 3)...)
	cases = append(cases, pageHeaderFlips(t, plain, "plain", 1)...)
	footer := len(base) - 8 - int(binary.LittleEndian.Uint32(base[len(base)-8:]))
	d := bytes.Clone(base)
	binary.LittleEndian.PutUint32(d[len(d)-8:], 0x7fffffff)
	cases = append(cases, corruptCase{name: "footer length", data: d, refused: true})
	for off := footer; off < len(base)-8; off += 151 {
		cases = append(cases, corruptCase{name: fmt.Sprintf("footer bytes at %d", off), data: flip(base, off)})
	}
	for off := 4; off < footer; off += 293 {
		cases = append(cases, corruptCase{name: fmt.Sprintf("plain lengths at %d", off), data: flip(plain, off)})
	}
	if i := bytes.Index(plain, []byte("sfmc\x09\x00\x00\x00batch-ios")); i >= 0 {
		d := bytes.Clone(plain)
		binary.LittleEndian.PutUint32(d[i+4:], 0x7fffffff)
		cases = append(cases, corruptCase{name: "string length", data: d, refused: true})
	} else {
		t.Fatal("no plain strings to corrupt")
	}

	var peak int64
	for _, c := range cases {
		p, ps, msg, err := planParquet(t, bin, dir, "corrupt.parquet", c.data)
		code := ps.ExitCode()
		rss := ps.SysUsage().(*syscall.Rusage).Maxrss << 10
		peak = max(peak, rss)
		switch {
		case strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine "):
			t.Errorf("%s: crashed (exit %d):\n%s", c.name, code, msg)
		case code == 2 && !strings.Contains(msg, p):
			t.Errorf("%s: exit 2 without naming the file:\n%s", c.name, msg)
		case c.refused && code != 2:
			t.Errorf("%s: exit %d (%v), want 2:\n%s", c.name, code, err, msg)
		case code != 0 && code != 1 && code != 2:
			t.Errorf("%s: exit %d:\n%s", c.name, code, msg)
		}
		if !raceEnabled && rss > maxCorruptRSS {
			t.Errorf("%s: peak RSS %d MiB, want under %d MiB", c.name, rss>>20, maxCorruptRSS>>20)
		}
		if testing.Verbose() && c.refused {
			t.Logf("%s: exit %d, peak RSS %d MiB: %s", c.name, code, rss>>20, strings.TrimSpace(msg))
		}
	}
	t.Logf("%d corrupt files, highest peak RSS %d MiB", len(cases), peak>>20)
}

// planParquet writes data to dir/name and runs `privsync plan` on it with
// the demo config; it returns the file's path, the finished process, its
// standard error and Run's error.
func planParquet(t *testing.T, bin, dir, name string, data []byte) (string, *os.ProcessState, string, error) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "plan", "--config", "../../testdata/demo.toml", "--ledger", filepath.Join(dir, "l.db"), "--quiet", p)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return p, cmd.ProcessState, stderr.String(), err
}

func convertTo(t *testing.T, src, out string, o gendata.ParquetOptions) []byte {
	t.Helper()
	if err := gendata.ConvertCSV(src, o, out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// flip writes 0x7fffffff (a length of 2 GiB, or a huge varint) at off.
func flip(data []byte, off int) []byte {
	d := bytes.Clone(data)
	copy(d[off:], []byte{0xff, 0xff, 0xff, 0x7f})
	return d
}

// pageHeaderFlips makes files whose first page header of each column chunk
// claims a page of about 1 GiB, compressed or not: the header is thrift
// compact, its fields 1 to 3 the page type and the sizes, as zigzag varints.
// Only the columns privsync reads (the first seven) must be refused; the
// first groups of rows are flipped.
func pageHeaderFlips(t *testing.T, data []byte, name string, groups int) []corruptCase {
	t.Helper()
	rd, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	md := rd.MetaData()
	var cases []corruptCase
	for g := range min(groups, md.NumRowGroups()) {
		rg := md.RowGroup(g)
		for c := range rg.NumColumns() {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			off := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 {
				off = cc.DictionaryPageOffset()
			}
			fields := varintFields(data[off:], 3)
			if fields == nil {
				t.Fatalf("%s: no page header at %d", name, off)
			}
			for k, what := range []string{"uncompressed", "compressed"} {
				f := fields[k+1]
				huge := binary.AppendUvarint(nil, uint64(1<<30)<<1) // zigzag of 1 GiB
				d := append(append(bytes.Clone(data[:int(off)+f[0]]), huge...), data[int(off)+f[1]:]...)
				cases = append(cases, corruptCase{
					name: fmt.Sprintf("%s row group %d column %d: %s page size 1 GiB", name, g+1, c+1, what), data: d, refused: c < 7})
			}
		}
	}
	return cases
}

// varintFields returns the [start, end) of the varints of the first n
// fields of a thrift compact struct whose fields are all i32.
func varintFields(b []byte, n int) [][2]int {
	var out [][2]int
	i := 0
	for range n {
		if i >= len(b) || b[i]&0x0f != 5 { // i32
			return nil
		}
		i++
		start := i
		for i < len(b) && b[i]&0x80 != 0 {
			i++
		}
		i++
		out = append(out, [2]int{start, i})
	}
	return out
}

type corpusEntry struct {
	name    string
	cut, at uint32
	patch   []byte
}

var corpusLine = regexp.MustCompile(`^(uint32|\[\]byte)\((.*)\)$`)

// fuzzCorpus reads the committed corpus of FuzzParquet (cut, at, patch).
func fuzzCorpus(t *testing.T, dir string) []corpusEntry {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fuzz corpus in %s: %v", dir, err)
	}
	var out []corpusEntry
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var ints []uint32
		e := corpusEntry{name: filepath.Base(f)}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			m := corpusLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
			switch {
			case m == nil:
			case m[1] == "uint32":
				v, err := strconv.ParseUint(m[2], 0, 32)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				ints = append(ints, uint32(v))
			default:
				s, err := strconv.Unquote(m[2])
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				e.patch = []byte(s)
			}
		}
		fh.Close()
		if len(ints) != 2 {
			t.Fatalf("%s: not a FuzzParquet entry", f)
		}
		e.cut, e.at = ints[0], ints[1]
		out = append(out, e)
	}
	return out
}
