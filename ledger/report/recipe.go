package report

// PythonRecipe checks a report without privsync: run it as
// `python3 -c "$RECIPE" REPORT.csv`.
const PythonRecipe = `
import csv, hashlib, sys
prev, n = "0" * 64, 0
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = csv.reader(f)
    assert next(rows)[0] == "seq", "missing header"
    for n, r in enumerate(rows, 1):
        h = hashlib.sha256("\x1f".join(r[:13]).encode()).hexdigest()
        assert len(r) == 14 and r[0] == str(n) and r[12] == prev and r[13] == h, f"row {n} is bad"
        prev = h
print(n, "rows, final hash", prev)
`
