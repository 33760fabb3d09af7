package ingest_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/bench/gen/gendata"
	"github.com/privsync/privsync/ingest"
)

const header = "vendor,subject_id,id_type,restrictions,erasure,access_request,updated_at"

const configured = "(configured: batch-ios, bloomreach, sfmc)"

// badRow is a CSV with one good row then the given bad row (row 3).
func badRow(line string) string {
	return csvLines(header, "sfmc,p-1,,do_not_track,,,2026-01-02T03:04:05Z", line)
}

// toParquet converts the CSV content into a Parquet file in dir.
func toParquet(t *testing.T, dir, name, content string, o gendata.ParquetOptions) string {
	t.Helper()
	src := writeFile(t, dir, name+".csv", content)
	out := filepath.Join(dir, name)
	if err := gendata.ConvertCSV(src, o, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBadInput(t *testing.T) {
	type rej = privsync.RowError
	cases := []struct {
		name    string
		content string                                // written to input.csv
		setup   func(t *testing.T, dir string) string // or: makes the input, returns its path
		opts    ingest.Options

		want     *rej   // the one reject expected (File is the input)
		wantErr  string // or: the *FileError's Err text
		wantLine int64  // and its row
	}{
		// Row rejects.
		{name: "unknown vendor", content: badRow("mailchimp,p-2,,,,,"),
			want: &rej{Line: 3, Column: "vendor", Value: "mailchimp", Reason: "unknown vendor " + configured}},
		{name: "missing vendor", content: badRow(",p-2,,,,,"),
			want: &rej{Line: 3, Column: "vendor", Reason: "missing vendor " + configured}},
		{name: "vendor case matters", content: badRow("SFMC,p-2,,,,,"),
			want: &rej{Line: 3, Column: "vendor", Value: "SFMC", Reason: "unknown vendor " + configured}},
		{name: "missing subject_id", content: badRow("sfmc,,,,,,"),
			want: &rej{Line: 3, Column: "subject_id", Reason: "missing subject_id"}},
		{name: "subject_id leading space", content: badRow("sfmc, p-2,,,,,"),
			want: &rej{Line: 3, Column: "subject_id", Value: " p-2", Reason: "subject_id has leading or trailing spaces"}},
		{name: "subject_id trailing tab", content: badRow("sfmc,\"p-2\t\",,,,,"),
			want: &rej{Line: 3, Column: "subject_id", Value: "p-2\t", Reason: "subject_id has leading or trailing spaces"}},
		{name: "subject_id control character", content: badRow("sfmc,p\x01-2,,,,,"),
			want: &rej{Line: 3, Column: "subject_id", Value: "p\x01-2", Reason: "subject_id contains a control character"}},
		{name: "subject_id with a newline", content: badRow("sfmc,\"p\n2\",,,,,"),
			want: &rej{Line: 3, Column: "subject_id", Value: "p\n2", Reason: "subject_id contains a control character"}},
		{name: "subject_id too long", content: badRow("sfmc," + strings.Repeat("a", 257) + ",,,,,"),
			want: &rej{Line: 3, Column: "subject_id", Value: strings.Repeat("a", 257), Reason: "subject_id is longer than 256 bytes (257)"}},
		{name: "subject_id invalid UTF-8", content: badRow("sfmc,p-\xff2,,,,,"),
			want: &rej{Line: 3, Column: "subject_id", Value: "p-\uFFFD2", Reason: "invalid UTF-8"}},
		{name: "access_request invalid UTF-8", content: badRow("batch-ios,u1,custom_id,,,AR-\xc3,"),
			want: &rej{Line: 3, Column: "access_request", Value: "AR-\uFFFD", Reason: "invalid UTF-8"}},
		{name: "unknown restriction", content: badRow("sfmc,p-2,,do_not_track|do_not_sell,,,"),
			want: &rej{Line: 3, Column: "restrictions", Value: "do_not_track|do_not_sell",
				Reason: `unknown restriction "do_not_sell" (expected do_not_track, do_not_profile or do_not_process)`}},
		{name: "empty restriction between bars", content: badRow("sfmc,p-2,,do_not_track||do_not_profile,,,"),
			want: &rej{Line: 3, Column: "restrictions", Value: "do_not_track||do_not_profile",
				Reason: `unknown restriction "" (expected do_not_track, do_not_profile or do_not_process)`}},
		{name: "bad erasure", content: badRow("sfmc,p-2,,,forget,,"),
			want: &rej{Line: 3, Column: "erasure", Value: "forget", Reason: "erasure must be empty, delete or suppress"}},
		{name: "sfmc with an id_type", content: badRow("sfmc,p-2,email,,,,"),
			want: &rej{Line: 3, Column: "id_type", Value: "email", Reason: `sfmc profiles take no id_type (leave it empty), got "email"`}},
		{name: "batch without id_type", content: badRow("batch-ios,u-2,,,,,"),
			want: &rej{Line: 3, Column: "id_type", Reason: "batch id_type must be one of custom_id, advertising_id, install_id"}},
		{name: "batch unknown id_type", content: badRow("batch-ios,u-2,idfa,,,,"),
			want: &rej{Line: 3, Column: "id_type", Value: "idfa", Reason: "batch id_type must be one of custom_id, advertising_id, install_id"}},
		{name: "bloomreach without id_type", content: badRow("bloomreach,u-2,,,,,"),
			want: &rej{Line: 3, Column: "id_type", Reason: "bloomreach needs an id_type: an external id name (e.g. registered) or internal_id"}},
		{name: "bloomreach bad external id name", content: badRow("bloomreach,u-2,e mail,,,,"),
			want: &rej{Line: 3, Column: "id_type", Value: "e mail", Reason: "bloomreach id_type must be an external id name of letters, digits, '_', '.' or '-'"}},
		{name: "bloomreach internal_id not hex", content: badRow("bloomreach,5f1a2b3c4d5e6f7a8b9c0d1z,internal_id,,,,"),
			want: &rej{Line: 3, Column: "subject_id", Value: "5f1a2b3c4d5e6f7a8b9c0d1z", Reason: "bloomreach internal_id must be 24 hex digits"}},
		{name: "updated_at not RFC 3339", content: badRow("sfmc,p-2,,,,,2026-13-01"),
			want: &rej{Line: 3, Column: "updated_at", Value: "2026-13-01", Reason: ingest.ReasonBadUpdatedAt}},
		{name: "updated_at without zone", content: badRow("sfmc,p-2,,,,,2026-01-02T03:04:05"),
			want: &rej{Line: 3, Column: "updated_at", Value: "2026-01-02T03:04:05", Reason: ingest.ReasonBadUpdatedAt}},
		{name: "too few fields", content: badRow("sfmc,p-2,"),
			want: &rej{Line: 3, Reason: "wrong number of fields: 3, the header has 7"}},
		{name: "too many fields", content: badRow("sfmc,p-2,,,,,,extra"),
			want: &rej{Line: 3, Reason: "wrong number of fields: 8, the header has 7"}},
		{name: "row number after a multi-line field",
			content: csvLines(header, "sfmc,p-1,,,,\"AR\n1\n2\",", "sfmc,p-2,,,oops,,"),
			want:    &rej{Line: 3, Column: "erasure", Value: "oops", Reason: "erasure must be empty, delete or suppress"}},
		{name: "renamed column", content: csvLines("vendor,profile_hash", "sfmc,"),
			opts: ingest.Options{Columns: map[string]string{"subject_id": "profile_hash"}},
			want: &rej{Line: 2, Column: "subject_id", Reason: "missing subject_id"}},
		{name: "parquet unknown restriction in a list", setup: func(t *testing.T, dir string) string {
			return toParquet(t, dir, "in.parquet", badRow("sfmc,p-2,,do_not_track|nope,,,"), gendata.ParquetOptions{ListRestrictions: true})
		}, want: &rej{Line: 2, Column: "restrictions", Value: "do_not_track|nope",
			Reason: `unknown restriction "nope" (expected do_not_track, do_not_profile or do_not_process)`}},
		{name: "parquet bad id_type", setup: func(t *testing.T, dir string) string {
			return toParquet(t, dir, "in.parquet", badRow("batch-ios,u-2,,,,,"), gendata.ParquetOptions{})
		}, want: &rej{Line: 2, Column: "id_type", Reason: "batch id_type must be one of custom_id, advertising_id, install_id"}},

		// File errors.
		{name: "missing file", setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "nope.csv") },
			wantErr: "stat: no such file or directory"},
		{name: "unknown extension", setup: func(t *testing.T, dir string) string { return writeFile(t, dir, "in.txt", header) },
			wantErr: "unknown input type: expected a .csv or .parquet file"},
		{name: "empty file", content: "", wantErr: "empty file: no header"},
		{name: "missing subject_id column", content: csvLines("vendor,id_type", "sfmc,"),
			wantErr: `missing required column "subject_id"`, wantLine: 1},
		{name: "missing vendor column", content: csvLines("subject_id", "p-1"),
			wantErr: `missing required column "vendor"`, wantLine: 1},
		{name: "missing renamed column", content: csvLines(header),
			opts:    ingest.Options{Columns: map[string]string{"subject_id": "profile_hash"}},
			wantErr: `missing required column "profile_hash" (subject_id)`, wantLine: 1},
		{name: "empty column name", content: csvLines("vendor,,subject_id", "sfmc,x,p-1"),
			wantErr: "empty column name in the header (column 2)", wantLine: 1},
		{name: "duplicate column", content: csvLines("vendor,subject_id, vendor", "sfmc,p-1,sfmc"),
			wantErr: `duplicate column "vendor" in the header (columns 1 and 3)`, wantLine: 1},
		{name: "bare quote", content: badRow(`sfmc,p"2,,,,,`),
			wantErr: `CSV syntax error at line 3, column 7: bare " in non-quoted-field`, wantLine: 3},
		{name: "unterminated quote", content: badRow(`sfmc,"p-2,,,,,`),
			wantErr: `CSV syntax error at line 3, column 16: extraneous or missing " in quoted-field`, wantLine: 3},
		{name: "binary named .csv", content: "\x00\x01\x02\xff\xfe\x00binary\x00",
			wantErr: "not a CSV file: it holds binary data"},
		{name: "header not UTF-8", content: "vendor,subject_id,\xff\xfe\n",
			wantErr: "not a CSV file: the header is not UTF-8 text", wantLine: 1},
		{name: "parquet named .csv", setup: func(t *testing.T, dir string) string {
			p := toParquet(t, dir, "x.parquet", badRow("sfmc,p-2,,,,,"), gendata.ParquetOptions{})
			if err := os.Rename(p, filepath.Join(dir, "in.csv")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "in.csv")
		}, wantErr: "not a CSV file: it is a Parquet file (rename it .parquet)"},
		{name: "CSV named .parquet", setup: func(t *testing.T, dir string) string {
			return writeFile(t, dir, "in.parquet", badRow("sfmc,p-2,,,,,"))
		}, wantErr: "not a parquet file: no PAR1 mark at its start"},
		{name: "truncated parquet", setup: func(t *testing.T, dir string) string {
			p := toParquet(t, dir, "in.parquet", badRow("sfmc,p-2,,,,,"), gendata.ParquetOptions{})
			truncate(t, p, 0.6)
			return p
		}, wantErr: "truncated or corrupt parquet file: no PAR1 mark at its end"},
		{name: "parquet corrupt inside a page", setup: func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "in.parquet")
			if err := gendata.ConvertCSV(generate(t, dir, 300), gendata.ParquetOptions{Plain: true, Compressions: []string{"none"}}, p); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			values := bytes.Index(data, []byte("sfmc\x09\x00\x00\x00batch-ios")) // the first two values
			patch(t, p, values+4, "0000")                                        // the second's length: 808 MB
			return p
		}, wantErr: `truncated or corrupt parquet file: row group 1, column "vendor": parquet: eof reading bytearray`, wantLine: 1},
		{name: "parquet without subject_id", setup: func(t *testing.T, dir string) string {
			return toParquet(t, dir, "in.parquet", csvLines("vendor,id_type", "sfmc,"), gendata.ParquetOptions{})
		}, wantErr: `missing required column "subject_id"`},
		{name: "parquet int restrictions", setup: func(t *testing.T, dir string) string {
			return toParquet(t, dir, "in.parquet", csvLines("vendor,subject_id,updated_at", "sfmc,p-1,2026-01-02T03:04:05Z"),
				gendata.ParquetOptions{Timestamp: "micros"})
		}, opts: ingest.Options{Columns: map[string]string{"restrictions": "updated_at", "updated_at": "x"}},
			wantErr: `column "updated_at": unsupported parquet type INT64 for restrictions, expected strings`},
		{name: "empty directory", setup: func(t *testing.T, dir string) string {
			writeFile(t, dir, "in/_SUCCESS", "")
			writeFile(t, dir, "in/.part-0.csv.crc", "")
			return filepath.Join(dir, "in")
		}, wantErr: "no .csv or .parquet files in directory"},
		{name: "unknown file in directory", setup: func(t *testing.T, dir string) string {
			writeFile(t, dir, "in/part=1/data_0.csv.gz", "")
			return filepath.Join(dir, "in")
		}, wantErr: "unknown input type in directory " + "DIR/in" + ": expected .csv or .parquet files"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var input string
			if tc.setup != nil {
				input = tc.setup(t, dir)
			} else {
				input = writeFile(t, dir, "in.csv", tc.content)
			}
			got, _, err := read(t, tc.opts, input)
			if tc.wantErr != "" {
				var fe *ingest.FileError
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v (%T), want a *ingest.FileError", err, err)
				}
				wantErr := strings.ReplaceAll(tc.wantErr, "DIR", dir)
				if fe.Err.Error() != wantErr || fe.Line != tc.wantLine {
					t.Errorf("error at row %d: %q\nwant at row %d: %q", fe.Line, fe.Err.Error(), tc.wantLine, wantErr)
				}
				if !strings.HasPrefix(fe.Path, dir) {
					t.Errorf("error path %q, want one in %s", fe.Path, dir)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(got.rejects) != 1 {
				t.Fatalf("%d rejects, want 1: %v", len(got.rejects), got.rejectReasons())
			}
			want := *tc.want
			want.File = input
			// The raw vendor and subject_id travel with every reject (they
			// identify the bad row across nights); the table pins the rest.
			rej := got.rejects[0]
			if rej.Vendor == "" && rej.SubjectID == "" && tc.want.Column != "vendor" && tc.want.Column != "subject_id" && tc.want.Column != "" {
				t.Errorf("reject carries neither the row's vendor nor its subject_id: %#v", rej)
			}
			rej.Vendor, rej.SubjectID = "", ""
			if rej != want {
				t.Errorf("reject\n got %#v\nwant %#v", rej, want)
			}
			if g := got.rejects[0].Error(); !strings.Contains(g, want.Reason) {
				t.Errorf("Error() = %q lacks the reason", g)
			}
		})
	}
}

// patch overwrites the bytes of a file at offset.
func patch(t *testing.T, path string, offset int, s string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	copy(data[offset:], s)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// truncate cuts a file to the given fraction of its size.
func truncate(t *testing.T, path string, frac float64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(float64(st.Size())*frac)); err != nil {
		t.Fatal(err)
	}
}
