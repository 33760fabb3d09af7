// check-export.mjs CSV PARQUET: DuckDB reads a `privsync report export`
// in CSV and in Parquet and says whether they hold the same events (the
// Parquet's typed recorded_at and attempts rendered as the CSV has them).
// Used by bench/export-duckdb.sh; exits 1 on a difference.
import { DuckDBInstance } from '@duckdb/node-api'

const [csv, pq] = process.argv.slice(2)
const db = await DuckDBInstance.create(':memory:')
const con = await db.connect()
await con.run(`SET TimeZone = 'UTC'`)
const types = await (await con.runAndReadAll(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${pq}'))`)).getRows()
console.log('parquet columns:', types.map(([n, t]) => `${n} ${t}`).join(', '))
const want = { recorded_at: 'TIMESTAMP WITH TIME ZONE', attempts: 'INTEGER', seq: 'BIGINT' }
for (const [n, t] of types) {
  if (want[n] && want[n] !== t) {
    console.error(`column ${n} is ${t}, want ${want[n]}`)
    process.exit(1)
  }
}
await con.run(`CREATE TABLE c AS SELECT * FROM read_csv('${csv}', all_varchar = true, header = true)`)
await con.run(`CREATE TABLE p AS SELECT * REPLACE (
  strftime(recorded_at, '%Y-%m-%dT%H:%M:%SZ') AS recorded_at,
  seq::VARCHAR AS seq, attempts::VARCHAR AS attempts, item_id::VARCHAR AS item_id)
  FROM read_parquet('${pq}')`)
const count = async (sql) => Number((await (await con.runAndReadAll(sql)).getRows())[0][0])
const rows = await count('SELECT count(*) FROM p')
// The CSV's spreadsheet safety prefixes a quote to values starting with = + - @ (none in the demo).
// read_csv gives NULL for an empty field, the Parquet export an empty string.
const norm = (t) => `SELECT coalesce(COLUMNS(*), '') FROM ${t}`
const onlyCSV = await count(`SELECT count(*) FROM (${norm('c')} EXCEPT ALL ${norm('p')})`)
const onlyPQ = await count(`SELECT count(*) FROM (${norm('p')} EXCEPT ALL ${norm('c')})`)
if (onlyCSV + onlyPQ > 0) {
  console.log((await (await con.runAndReadAll(`${norm('c')} EXCEPT ALL ${norm('p')} LIMIT 2`)).getRows()))
  console.log((await (await con.runAndReadAll(`${norm('p')} EXCEPT ALL ${norm('c')} LIMIT 2`)).getRows()))
}
console.log(`${rows} events in the parquet export; ${onlyCSV} only in the CSV, ${onlyPQ} only in the parquet`)
process.exit(onlyCSV === 0 && onlyPQ === 0 && rows > 0 ? 0 : 1)
