// gen.mjs writes testdata/parquet/*.parquet from testdata/parquet/rows.csv
// with independent Parquet writers, so ingest is tested against the files
// warehouses and dataframe libraries really write:
//
//   DuckDB (@duckdb/node-api): every codec, PARQUET_VERSION V2, small row
//     groups, VARCHAR[], TIMESTAMP / TIMESTAMPTZ / TIMESTAMP_NS, ENUM, UUID,
//     PARTITION_BY;
//   arrow-rs (parquet-wasm): v2 pages, compressed and not, DELTA_BYTE_ARRAY,
//     LargeUtf8 and Timestamp(Second) (from Arrow IPC streams the Go
//     generator writes);
//   Polars (nodejs-polars);
//   hyparquet-writer.
//
// Run from this directory: `go run . && npm ci && node gen.mjs` (the Go
// generator writes the arrow-go and parquet-go files and large-utf8.arrows).
import { DuckDBInstance } from '@duckdb/node-api'
import { readParquet, writeParquet, Table, WriterPropertiesBuilder, WriterVersion, Compression, Encoding } from 'parquet-wasm/node'
import pl from 'nodejs-polars'
import { parquetWriteFile } from 'hyparquet-writer'
import fs from 'node:fs'
import path from 'node:path'

const out = path.resolve('..')
const csv = path.join(out, 'rows.csv')
const tmp = fs.mkdtempSync(path.join(process.env.TMPDIR || '/tmp', 'pqgen-'))

// ---- DuckDB
const db = await DuckDBInstance.create(':memory:')
const con = await db.connect()
await con.run(`CREATE TYPE vendor_t AS ENUM ('sfmc', 'batch-ios', 'bloomreach')`)
await con.run(`CREATE TABLE raw AS SELECT * FROM read_csv('${csv}', all_varchar = true, header = true)`)
// Restrictions as a list (NULL when empty), timestamps typed, ids as UUID.
await con.run(`CREATE TABLE typed AS SELECT
  vendor::vendor_t AS vendor,
  subject_id::UUID AS subject_id,
  id_type,
  CASE WHEN coalesce(restrictions, '') = '' THEN NULL ELSE string_split(restrictions, '|') END AS restrictions,
  erasure, access_request,
  updated_at::TIMESTAMP AS updated_at
FROM raw`)
const duck = async (name, select, opts) => {
  const file = path.join(out, name)
  await con.run(`COPY (${select}) TO '${file}' (FORMAT parquet, ${opts})`)
}
for (const codec of ['snappy', 'gzip', 'zstd', 'lz4', 'brotli', 'uncompressed']) {
  await duck(`duckdb-${codec}.parquet`, 'SELECT * FROM raw', `COMPRESSION ${codec}`)
}
await duck('duckdb-v2-typed.parquet', 'SELECT * FROM typed', 'COMPRESSION zstd, PARQUET_VERSION V2, ROW_GROUP_SIZE 4')
await duck('duckdb-timestamptz.parquet',
  `SELECT * REPLACE (updated_at::TIMESTAMPTZ AS updated_at) FROM typed`, 'COMPRESSION snappy, ROW_GROUP_SIZE 5')
await duck('duckdb-timestamp-ns.parquet',
  `SELECT * REPLACE (updated_at::TIMESTAMP_NS AS updated_at) FROM typed`, 'COMPRESSION gzip, PARQUET_VERSION V2')
await duck('duckdb-timestamp-ms.parquet',
  `SELECT * REPLACE (updated_at::TIMESTAMP_MS AS updated_at) FROM typed`, 'COMPRESSION lz4')
fs.rmSync(path.join(out, 'duckdb-partitioned'), { recursive: true, force: true })
await con.run(`COPY (SELECT * FROM typed) TO '${path.join(out, 'duckdb-partitioned')}' (FORMAT parquet, PARTITION_BY (vendor), COMPRESSION snappy)`)
// A plain snappy file for the other writers to start from.
const plainFile = path.join(tmp, 'plain.parquet')
await con.run(`COPY (SELECT * REPLACE (vendor::VARCHAR AS vendor, subject_id::VARCHAR AS subject_id) FROM typed) TO '${plainFile}' (FORMAT parquet, COMPRESSION uncompressed)`)

// ---- arrow-rs (parquet-wasm)
const props = (f) => f(new WriterPropertiesBuilder()).build()
const arrowRS = (name, table, f) => {
  fs.writeFileSync(path.join(out, name), writeParquet(table, props(f)))
}
const fromDuck = () => readParquet(fs.readFileSync(plainFile))
arrowRS('arrow-rs-v2-uncompressed.parquet', fromDuck(), (b) => b
  .setWriterVersion(WriterVersion.V2).setCompression(Compression.UNCOMPRESSED).setMaxRowGroupSize(5))
arrowRS('arrow-rs-v2-zstd-delta-byte-array.parquet', fromDuck(), (b) => b
  .setWriterVersion(WriterVersion.V2).setCompression(Compression.ZSTD).setDictionaryEnabled(false)
  .setColumnEncoding('vendor', Encoding.DELTA_BYTE_ARRAY).setColumnEncoding('subject_id', Encoding.DELTA_BYTE_ARRAY)
  .setColumnEncoding('id_type', Encoding.DELTA_BYTE_ARRAY).setColumnEncoding('access_request', Encoding.DELTA_LENGTH_BYTE_ARRAY)
  .setColumnEncoding('updated_at', Encoding.DELTA_BINARY_PACKED))
arrowRS('arrow-rs-brotli.parquet', fromDuck(), (b) => b.setCompression(Compression.BROTLI))
arrowRS('arrow-rs-lz4-raw.parquet', fromDuck(), (b) => b.setCompression(Compression.LZ4_RAW).setWriterVersion(WriterVersion.V2))
arrowRS('arrow-rs-lz4-hadoop.parquet', fromDuck(), (b) => b.setCompression(Compression.LZ4))
const large = path.join(import.meta.dirname, 'large-utf8.arrows')
if (fs.existsSync(large)) {
  arrowRS('arrow-rs-large-utf8.parquet', Table.fromIPCStream(fs.readFileSync(large)), (b) => b
    .setWriterVersion(WriterVersion.V2).setCompression(Compression.SNAPPY))
} else {
  console.error('no large-utf8.arrows: run `go run .` first for arrow-rs-large-utf8.parquet')
}
// Timestamp(Second): a bare INT64 in Parquet, its unit only in ARROW:schema.
const seconds = path.join(import.meta.dirname, 'seconds.arrows')
if (fs.existsSync(seconds)) {
  arrowRS('arrow-rs-timestamp-seconds.parquet', Table.fromIPCStream(fs.readFileSync(seconds)), (b) => b
    .setCompression(Compression.SNAPPY))
} else {
  console.error('no seconds.arrows: run `go run .` first for arrow-rs-timestamp-seconds.parquet')
}

// ---- Polars
const df = pl.readCSV(fs.readFileSync(csv, 'utf8'), { inferSchemaLength: 0 })
  .withColumns(
    pl.col('restrictions').str.split('|').alias('restrictions'),
    pl.col('updated_at').str.strptime(pl.Datetime('ms'), '%Y-%m-%dT%H:%M:%SZ').alias('updated_at'))
df.writeParquet(path.join(out, 'polars-zstd.parquet'), { compression: 'zstd' })
df.writeParquet(path.join(out, 'polars-lz4.parquet'), { compression: 'lz4' })
df.writeParquet(path.join(out, 'polars-brotli.parquet'), { compression: 'brotli' })

// ---- hyparquet-writer
const rows = fs.readFileSync(csv, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','))
const col = (i) => rows.map((r) => r[i] === '' ? null : r[i])
parquetWriteFile({
  filename: path.join(out, 'hyparquet.parquet'),
  columnData: [
    { name: 'vendor', data: col(0), type: 'STRING' },
    { name: 'subject_id', data: col(1), type: 'STRING' },
    { name: 'id_type', data: col(2), type: 'STRING' },
    { name: 'restrictions', data: col(3), type: 'STRING' },
    { name: 'erasure', data: col(4), type: 'STRING' },
    { name: 'access_request', data: col(5), type: 'STRING' },
    { name: 'updated_at', data: rows.map((r) => r[6] === '' ? null : new Date(r[6])), type: 'TIMESTAMP' },
  ],
})
fs.rmSync(tmp, { recursive: true, force: true })
console.log('wrote', fs.readdirSync(out).filter((f) => f.endsWith('.parquet')).length, 'files to', out)
