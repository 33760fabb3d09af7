# bench/timelog.sh — read the figures of a GNU `time -v` log; sourced by the
# bench scripts so each reads them one way.

# wall_seconds LOG: the elapsed wall-clock time in seconds.
wall_seconds() {
	awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$1"
}

# peak_rss_mib LOG: the peak resident set size in MiB.
peak_rss_mib() {
	awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$1"
}

# cpu_seconds LOG: user plus system CPU seconds.
cpu_seconds() {
	awk -F': ' '/(User|System) time \(seconds\)/ {s += $2} END {print s}' "$1"
}
