// bench/duckdb/diff.cjs — the reference for bench/plan.sh: DuckDB's
// (@duckdb/node-api) answer to what a nightly plan answers, on the same
// files in the same run: tonight's export left-joined on (vendor, id_type,
// subject_id) to what the vendors were told last night, keeping the rows
// where anything differs (a new subject, other restrictions, erasure or
// access request). Last night's state is its export (DuckDB cannot read
// the SQLite ledger without its sqlite extension, which is not bundled).
//
// Usage: DUCKDB_DIR=<dir holding node_modules/@duckdb/node-api> node diff.cjs TONIGHT.csv LASTNIGHT.csv
// Prints the changed rows and the seconds the query took.
const path = require('node:path');
const { DuckDBInstance } = require(path.join(process.env.DUCKDB_DIR, 'node_modules', '@duckdb', 'node-api'));

async function main() {
	const [tonight, last] = process.argv.slice(2);
	if (!tonight || !last) {
		console.error('usage: node diff.cjs TONIGHT.csv LASTNIGHT.csv');
		process.exit(2);
	}
	const start = process.hrtime.bigint();
	const db = await DuckDBInstance.create(':memory:');
	const conn = await db.connect();
	// Every column as text, empty as empty (not NULL): SFMC rows have no id_type.
	const csv = (f) => `read_csv('${f.replaceAll("'", "''")}', header = true, all_varchar = true, nullstr = '\\x01')`;
	const q = `SELECT count(*) AS changed
		FROM ${csv(tonight)} n LEFT JOIN ${csv(last)} p
		  ON n.vendor = p.vendor AND n.id_type = p.id_type AND n.subject_id = p.subject_id
		WHERE p.subject_id IS NULL OR n.restrictions <> p.restrictions OR n.erasure <> p.erasure
		   OR n.access_request <> p.access_request`;
	const reader = await conn.runAndReadAll(q);
	const changed = reader.getRows()[0][0];
	const secs = Number(process.hrtime.bigint() - start) / 1e9;
	console.log(JSON.stringify({ changed: Number(changed), seconds: secs }));
}

main().catch((e) => {
	console.error(e);
	process.exit(1);
});
