#!/usr/bin/env bash
# pagevault beside the backup tools an operator would pick instead (issue 30, item 3):
# restic and pgBackRest, on the same database-like data, alternated in one run.
#
#   scripts/peers.sh [--size SIZE] [--rounds N] [--threads N] [--tools LIST] [--dir DIR] [--keep]
#   PAGEVAULT=path/to/pagevault scripts/peers.sh ...      (default target/release/pagevault)
#
# The data is made once by pagevault's own generator: `pagevault init --files 2` and
# `pagevault workload --pattern sequential`, every data page written once with the
# workload's rows (zstd level 1 compresses them about 2.8x). restic backs up the same data
# files, and pgBackRest a stopped PostgreSQL cluster made by `initdb` whose `base/5/`
# holds them as the segments of one relation (`16384`, `16384.1`, ...). Both see the files
# through hard links, so every tool reads the same bytes (the links are checked after
# every change).
#
# Each round starts with empty repositories, then, every step run by each tool in turn
# (the order rotates from round to round):
#   full      a full backup (pagevault `--full`; restic's first snapshot; pgBackRest
#             `--type=full`), and the reference `zstd -1 -T<threads>` of the data files;
#   (untimed) 1 % of the data pages rewritten: `pagevault workload --pattern uniform`;
#             the peers see the same bytes change, through the links;
#   diff      pagevault `--diff`, restic's next snapshot, pgBackRest `--type=diff`;
#   restore   the latest backup into an empty folder: pagevault restores the full and
#             its differential and checks the result, as it does by default, and again
#             with `--no-check` (row "pagevault, no check": it still checks every record
#             and page it reads, as the peers check what they read); the reference
#             `zstd -d` of the full's frame.
# Two rows say what pgBackRest's figures owe to the cluster around the data: "pgBackRest,
# the cluster alone" backs up and restores a copy of the cluster as `initdb` made it,
# without the data (no differential: pgBackRest refuses one when nothing changed).
#
# Every timed command is followed by `sync`, inside the timing. Per step: wall seconds,
# CPU seconds (user + system of the tool and its children), peak RSS (GNU time's %M: the
# largest single process, not a sum; it counts the file pages a process maps, such as
# the restored files `pagevault check` maps) and stored bytes (`du -sb` of the repository
# after a full, what a differential added). Each restore is checked, untimed, and the run
# fails loudly (exit 1, "RESTORE NOT IDENTICAL") if one is not identical: pagevault's by
# `pagevault check` and a byte compare of every data page against the source (the file
# header and change-map pages are the engine's own and differ by design, and a restored
# copy is a new database whose pages carry its id and so their own checksum); restic's and
# pgBackRest's by a byte compare of every restored data file against its source; zstd's
# by the MD5 of the files concatenated, taken when the frame was made.
#
# Settings: zstd level 1 where the tool offers it (pagevault `--level 1`, pgBackRest
# `compress-type=zst compress-level=1`); restic `--compression auto`, its fastest zstd
# (klauspost/compress's default level, about zstd's 3; restic also encrypts and hashes
# every chunk). `--threads` (default 2) for pagevault, pgBackRest's `process-max`,
# restic's GOMAXPROCS and zstd's -T. pgBackRest: file bundling and block incremental
# (`repo1-bundle`, `repo1-block`; beta in 2.45, hence `beta=y`), `--no-online`, no page
# checksums (the files are not PostgreSQL pages). restic's password comes from
# RESTIC_PASSWORD, set here.
#
# `--tools` (default pagevault,restic,pgbackrest,zstd) chooses among them; pagevault is
# always run, as every ratio is to it. The medians (the sample with the median wall time)
# over the rounds are printed last as a Markdown table with the ratios to pagevault, then
# the goals (pagevault's full and restore faster than each peer's, its differential
# smaller). Everything happens in one folder under --dir (default $TMPDIR or /tmp),
# removed at the end unless --keep. Installs nothing: a missing tool is skipped with a
# sentence saying how to install it. CI does not run this (tests/it/peers_script.rs runs
# it with pagevault alone).
set -euo pipefail

size=256MiB
rounds=3
threads=2
dir="${TMPDIR:-/tmp}"
keep=0
wanted=pagevault,restic,pgbackrest,zstd
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}
die() {
    echo "peers.sh: $*" >&2
    exit 1
}
while [[ $# -gt 0 ]]; do
    case "$1" in
    --size) size="${2:?--size needs a value}"; shift 2 ;;
    --rounds) rounds="${2:?--rounds needs a value}"; shift 2 ;;
    --threads) threads="${2:?--threads needs a value}"; shift 2 ;;
    --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
    --tools) wanted="${2:?--tools needs a value}"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "peers.sh: unknown argument $1 (see --help)" >&2; exit 64 ;;
    esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "peers.sh: --rounds must be a whole number from 1" >&2; exit 64; }
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "peers.sh: --threads must be a whole number from 1" >&2; exit 64; }
for t in ${wanted//,/ }; do
    case "$t" in
    pagevault | restic | pgbackrest | zstd) ;;
    *) echo "peers.sh: --tools: unknown tool $t (pagevault, restic, pgbackrest, zstd)" >&2; exit 64 ;;
    esac
done
want() { [[ ",$wanted," == *",$1,"* ]]; }

here="$(cd "$(dirname "$0")" && pwd)"
pv="${PAGEVAULT:-$here/../target/release/pagevault}"
[[ -x "$pv" ]] || die "$pv: no pagevault binary; build it with \`cargo build --release\` or set PAGEVAULT."
[[ -x /usr/bin/time ]] && /usr/bin/time -f %e true 2>/dev/null ||
    die "/usr/bin/time (GNU time) is missing; install it with \`apt-get install time\`."
command -v python3 >/dev/null || die "python3 is missing; install it with \`apt-get install python3\`."

# The peers: each one present is run, each one missing is said and skipped.
tools=(pagevault pagevault-nocheck)
if ! want restic; then
    :
elif command -v restic >/dev/null; then
    tools+=(restic)
else
    echo "restic is not installed, so its rows are skipped (install it with \`apt-get install restic\`)." >&2
fi
initdb_bin="$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)"
if ! want pgbackrest; then
    :
elif ! command -v pgbackrest >/dev/null; then
    echo "pgBackRest is not installed, so its rows are skipped (install it with \`apt-get install pgbackrest postgresql\`)." >&2
elif [[ -z "$initdb_bin" ]]; then
    echo "PostgreSQL's initdb is not installed, so pgBackRest's rows are skipped (install it with \`apt-get install postgresql\`)." >&2
elif [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    echo "initdb does not run as root and there is no user postgres, so pgBackRest's rows are skipped (run this as another user)." >&2
else
    tools+=(pgbackrest pgcluster)
fi
if ! want zstd; then
    :
elif command -v zstd >/dev/null; then
    tools+=(zstd)
else
    echo "zstd is not installed, so the reference rows are skipped (install it with \`apt-get install zstd\`)." >&2
fi

mkdir -p "$dir"
work="$(mktemp -d "$dir/pagevault-peers.XXXXXX")"
cleanup() {
    local rc=$?
    if [[ $keep -eq 1 ]]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
        [[ $rc -eq 0 ]] || echo "peers.sh: removed $work; rerun with --keep to look at what failed" >&2
    fi
}
trap cleanup EXIT
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# ---- the data --------------------------------------------------------------------------
db="$work/db"
log "generating $size with pagevault's workload (2 files, every data page written once)"
"$pv" -q init "$db" --files 2 --size "$size" >/dev/null
data_files=()
for f in "$db"/data_*.pvd; do data_files+=("$(basename "$f")"); done
[[ ${#data_files[@]} -ge 1 ]] || die "$db: pagevault init made no data files"
page_bytes=8192
# docs/format.md, file header: offset 60, u32 little-endian, extents per change-map page;
# a map page opens every 8 * E pages (page 1, 1 + 8E, ...), page 0 is the header.
extents_per_map=$(od -An -t u4 -j 60 -N 4 --endian=little "$db/${data_files[0]}" | tr -d ' ')
[[ "$extents_per_map" =~ ^[1-9][0-9]*$ ]] || die "$db/${data_files[0]}: unreadable extents-per-map field"
map_interval=$((8 * extents_per_map))
data_pages=0
for f in "${data_files[@]}"; do
    pages=$(($(stat -c %s "$db/$f") / page_bytes))
    data_pages=$((data_pages + pages - 1 - ((pages - 2) / map_interval + 1)))
done
"$pv" -q workload "$db" --writes "$data_pages" --pattern sequential --seed 1 --batch 1024 >/dev/null
data_bytes=0
for f in "${data_files[@]}"; do data_bytes=$((data_bytes + $(stat -c %s "$db/$f"))); done
changed_pages=$((data_pages / 100 > 0 ? data_pages / 100 : 1))

# Room for three repositories, a restore and the reference frame.
avail=$(($(df --output=avail -k "$work" | tail -1) * 1024))
((avail > 3 * data_bytes)) ||
    die "$work: $((avail >> 20)) MiB free, about $((3 * data_bytes >> 20)) MiB needed; use --dir or a smaller --size"

# restic's source: links to the data files.
src="$work/restic-src"
mkdir -p "$src"
for f in "${data_files[@]}"; do ln "$db/$f" "$src/$f"; done

# pgBackRest's source: a stopped cluster whose base/5 (the `postgres` database) holds the
# data files as the segments of relation 16384.
pgdata="$work/pg/data"
rel_name() { # index of the data file -> relation segment name
    if [[ $1 -eq 0 ]]; then echo 16384; else echo "16384.$1"; fi
}
if [[ " ${tools[*]} " == *" pgbackrest "* ]]; then
    log "initdb $pgdata"
    if [[ $EUID -eq 0 ]]; then
        chmod 711 "$work"
        install -d -o postgres "$work/pg"
        runuser -u postgres -- "$initdb_bin" -D "$pgdata" -A trust -E UTF8 --no-sync \
            --no-instructions >"$work/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$work/initdb.log")"
        chown -R "$(id -u):$(id -g)" "$work/pg"
    else
        "$initdb_bin" -D "$pgdata" -A trust -E UTF8 --no-sync --no-instructions \
            >"$work/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$work/initdb.log")"
    fi
    [[ -d "$pgdata/base/5" ]] || die "$pgdata/base/5: initdb made no database with oid 5"
    cluster_bytes=$(du -sb "$pgdata" | cut -f1)
    # The cluster alone, backed up and restored as a row of its own: what pgBackRest's
    # figures owe to the cluster around the data rather than to the data.
    cp -a "$pgdata" "$work/pg/cluster"
    i=0
    for f in "${data_files[@]}"; do
        ln "$db/$f" "$pgdata/base/5/$(rel_name $i)"
        i=$((i + 1))
    done
    cat >"$work/pgbackrest.conf" <<EOF
[global]
repo1-retention-full=99
repo1-bundle=y
repo1-block=y
beta=y
compress-type=zst
compress-level=1
process-max=$threads
checksum-page=n
lock-path=$work/pgbackrest-lock
log-level-console=warn
log-level-file=off
log-level-stderr=warn

[peers]
pg1-path=$pgdata
repo1-path=$work/pgbackrest-repo

[cluster]
pg1-path=$work/pg/cluster
repo1-path=$work/pgcluster-repo
EOF
fi
links_intact() { # the peers' sources must still be the database's files
    local i=0 f
    for f in "${data_files[@]}"; do
        [[ "$db/$f" -ef "$src/$f" ]] || die "$src/$f: no longer the same file as $db/$f"
        if [[ " ${tools[*]} " == *" pgbackrest "* ]]; then
            [[ "$db/$f" -ef "$pgdata/base/5/$(rel_name $i)" ]] ||
                die "$pgdata/base/5/$(rel_name $i): no longer the same file as $db/$f"
        fi
        i=$((i + 1))
    done
}

export RESTIC_PASSWORD="peers-bench-$$"
export RESTIC_REPOSITORY="$work/restic-repo"
export RESTIC_CACHE_DIR="$work/restic-cache"
pgbr=(pgbackrest --config="$work/pgbackrest.conf" --stanza=peers)
pgcl=(pgbackrest --config="$work/pgbackrest.conf" --stanza=cluster)

# ---- the steps -------------------------------------------------------------------------
results="$work/results.tsv"
: >"$results"
out="$work/restored"
repo_of() {
    case "$1" in
    pagevault | pagevault-nocheck) echo "$work/pagevault-repo" ;;
    restic) echo "$RESTIC_REPOSITORY" ;;
    pgbackrest) echo "$work/pgbackrest-repo" ;;
    pgcluster) echo "$work/pgcluster-repo" ;;
    zstd) echo "$work/zstd-ref.zst" ;;
    esac
}
fresh_repo() { # tool: an empty repository for a new round (untimed)
    local r
    [[ "$1" != pagevault-nocheck ]] || return 0 # restores from pagevault's
    r="$(repo_of "$1")"
    rm -rf "$r"
    case "$1" in
    pagevault) "$pv" -q repo init "$r" >/dev/null ;;
    restic) rm -rf "$RESTIC_CACHE_DIR"; restic init --repository-version 2 --quiet >/dev/null ;;
    pgbackrest) "${pgbr[@]}" --no-online stanza-create >/dev/null ;;
    pgcluster) "${pgcl[@]}" --no-online stanza-create >/dev/null ;;
    esac
}
command_for() { # tool step: the command timed, in the array cmd
    local r
    r="$(repo_of "$1")"
    case "$1:$2" in
    pagevault:full) cmd=("$pv" -q backup "$db" -r "$r" --full --threads "$threads" --level 1) ;;
    pagevault:diff) cmd=("$pv" -q backup "$db" -r "$r" --diff --threads "$threads" --level 1) ;;
    pagevault:restore) cmd=("$pv" -q restore -r "$r" --to "$out" latest --threads "$threads") ;;
    pagevault-nocheck:restore)
        cmd=("$pv" -q restore -r "$r" --to "$out" latest --threads "$threads" --no-check) ;;
    restic:full | restic:diff)
        cmd=(env GOMAXPROCS="$threads" restic backup --quiet --compression auto --host peers "$src") ;;
    restic:restore) cmd=(env GOMAXPROCS="$threads" restic restore latest --quiet --target "$out") ;;
    pgbackrest:full) cmd=("${pgbr[@]}" --no-online --type=full backup) ;;
    pgbackrest:diff) cmd=("${pgbr[@]}" --no-online --type=diff backup) ;;
    pgbackrest:restore) cmd=("${pgbr[@]}" --pg1-path="$out" restore) ;;
    pgcluster:full) cmd=("${pgcl[@]}" --no-online --type=full backup) ;;
    pgcluster:restore) cmd=("${pgcl[@]}" --pg1-path="$out" restore) ;;
    zstd:full)
        cmd=(sh -c 'out="$1"; shift; zstd -q -1 -T"$0" -c "$@" > "$out"' "$threads" "$r")
        for f in "${data_files[@]}"; do cmd+=("$db/$f"); done ;;
    zstd:restore) cmd=(sh -c 'zstd -q -d -c "$1" > "$2"' _ "$r" "$out/data") ;;
    *) cmd=() ;;
    esac
}
stored_bytes() {
    local r
    r="$(repo_of "$1")"
    if [[ -e "$r" ]]; then du -sb "$r" | cut -f1; else echo 0; fi
}
timed() { # round tool step
    local round="$1" tool="$2" step="$3" before=0 after stored
    command_for "$tool" "$step"
    [[ ${#cmd[@]} -gt 0 ]] || return 0
    if [[ "$step" == restore ]]; then
        rm -rf "$out"
        mkdir -m 700 "$out"
    fi
    [[ "$step" == diff ]] && before=$(stored_bytes "$tool")
    sync
    if ! /usr/bin/time -f '%e %U %S %M' -o "$work/time" bash -c '"$@" && sync' _ "${cmd[@]}" \
        >"$work/step.log" 2>&1; then
        cat "$work/step.log" >&2
        die "$tool $step failed (round $round): ${cmd[*]}"
    fi
    local wall user sys rss
    read -r wall user sys rss < <(tail -1 "$work/time")
    stored=0
    if [[ "$step" != restore ]]; then
        after=$(stored_bytes "$tool")
        stored=$((after - before))
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$tool" "$step" "$wall" "$user" "$sys" "$rss" "$stored" >>"$results"
    log "round $round: $tool $step ${wall}s (cpu ${user}+${sys}s, rss ${rss} KiB, stored $stored B)"
    if [[ "$tool:$step" == zstd:full ]]; then # what its restore must give back
        local paths=() f
        for f in "${data_files[@]}"; do paths+=("$db/$f"); done
        cat "${paths[@]}" | md5sum >"$work/zstd-ref.md5"
    fi
    if [[ "$step" == restore ]]; then
        check_restore "$tool"
        rm -rf "$out"
        sync
    fi
}

# A restore is proven identical, untimed; a difference ends the run.
not_identical() {
    echo "peers.sh: RESTORE NOT IDENTICAL: $*" >&2
    exit 1
}
same_file() { # source restored
    [[ -f "$2" ]] || not_identical "$2 is missing"
    cmp -s "$1" "$2" || not_identical "$2 differs from its source $1"
}
check_restore() {
    local f i=0
    case "$1" in
    pagevault | pagevault-nocheck)
        "$pv" -q check "$out" >"$work/check.log" 2>&1 ||
            { cat "$work/check.log" >&2; not_identical "pagevault check $out failed"; }
        for f in "${data_files[@]}"; do
            [[ -f "$out/$f" ]] || not_identical "$out/$f is missing"
            [[ $(stat -c %s "$db/$f") -eq $(stat -c %s "$out/$f") ]] ||
                not_identical "$out/$f is not the size of $db/$f"
            # Every differing byte must be in a system page (the header, page 0, or a
            # change-map page, 1 + k * 8E) or be a data page's database id or checksum
            # (bytes 24..32 and 0..4: a restore into a new folder is a new database and
            # re-stamps its pages, docs/restore.md); every other byte of a data page is
            # the source's.
            local bad
            bad=$( (cmp -l "$db/$f" "$out/$f" || true) | awk -v ps="$page_bytes" -v iv="$map_interval" '
                { p = int(($1 - 1) / ps); o = ($1 - 1) % ps
                  if (p != 0 && p % iv != 1 && o >= 4 && (o < 24 || o >= 32)) { print p; exit } }')
            [[ -z "$bad" ]] || not_identical "$out/$f: data page $bad differs from $db/$f"
        done
        ;;
    restic)
        for f in "${data_files[@]}"; do same_file "$src/$f" "$out$src/$f"; done
        ;;
    pgbackrest)
        for f in "${data_files[@]}"; do
            same_file "$db/$f" "$out/base/5/$(rel_name $i)"
            i=$((i + 1))
        done
        ;;
    pgcluster)
        same_file "$work/pg/cluster/global/pg_control" "$out/global/pg_control"
        ;;
    zstd)
        [[ "$(md5sum <"$out/data")" == "$(cat "$work/zstd-ref.md5")" ]] ||
            not_identical "$out/data differs from the data files concatenated, as the frame was made"
        ;;
    esac
}

# ---- the run ---------------------------------------------------------------------------
started_at="$(date -u '+%Y-%m-%d %H:%M UTC')"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
n=${#tools[@]}
for ((round = 1; round <= rounds; round++)); do
    order=()
    for ((k = 0; k < n; k++)); do order+=("${tools[$(((k + round - 1) % n))]}"); done
    log "round $round of $rounds: ${order[*]}"
    for t in "${order[@]}"; do fresh_repo "$t"; done
    for t in "${order[@]}"; do timed "$round" "$t" full; done
    links_intact
    "$pv" -q workload "$db" --writes "$changed_pages" --pattern uniform --seed $((100 + round)) >/dev/null
    links_intact
    sync
    for t in "${order[@]}"; do timed "$round" "$t" diff; done
    for t in "${order[@]}"; do timed "$round" "$t" restore; done
done
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the table -------------------------------------------------------------------------
restic_version="$(command -v restic >/dev/null && restic version | cut -d' ' -f2 || echo -)"
pgbackrest_version="$(command -v pgbackrest >/dev/null && pgbackrest version | cut -d' ' -f2 || echo -)"
zstd_version="$(command -v zstd >/dev/null && zstd -V | grep -o 'v[0-9.]*' | head -1 || echo -)"
mem_gib=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
python3 - "$results" <<PY
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    rnd, tool, step = int(r[0]), r[1], r[2]
    wall, user, sys_, rss, stored = float(r[3]), float(r[4]), float(r[5]), int(r[6]), int(r[7])
    by.setdefault((tool, step), []).append((wall, user + sys_, rss, stored))
def median(samples):  # the sample with the median wall time (the lower of two middles)
    s = sorted(samples)
    return s[(len(s) - 1) // 2]
tools = [t for t in "${tools[*]}".split() ]
steps = ["full", "diff", "restore"]
names = {"pagevault": "pagevault", "pagevault-nocheck": "pagevault, no check",
         "restic": "restic", "pgbackrest": "pgBackRest",
         "pgcluster": "pgBackRest, the cluster alone",
         "zstd": "zstd (reference)"}
what = {
    ("pagevault", "full"): "backup --full", ("pagevault", "diff"): "backup --diff",
    ("pagevault", "restore"): "restore full + diff, checked",
    ("pagevault-nocheck", "restore"): "restore full + diff, --no-check",
    ("restic", "full"): "first snapshot", ("restic", "diff"): "next snapshot",
    ("restic", "restore"): "restore latest",
    ("pgbackrest", "full"): "--type=full", ("pgbackrest", "diff"): "--type=diff",
    ("pgbackrest", "restore"): "restore (full + diff)",
    ("pgcluster", "full"): "--type=full", ("pgcluster", "restore"): "restore (full)",
    ("zstd", "full"): "zstd -1 -T${threads} > file", ("zstd", "restore"): "zstd -d > file",
}
def mib(b): return f"{b / 2**20:.1f} MiB"
def ratio(a, b): return f"{a / b:.2f}" if b else "-"
print()
print(f"data: ${size} (${data_bytes} bytes in ${#data_files[@]} files, ${data_pages} data pages); "
      f"1 % changed: ${changed_pages} page writes; ${threads} threads, zstd level 1; "
      f"median of ${rounds} by wall time")
print("machine: $(nproc) cores, ${mem_gib} GiB; started ${started_at}; load average ${load_start} at the start, ${load_end} at the end")
print("versions: pagevault $("$pv" --version | cut -d' ' -f2), restic ${restic_version}, pgBackRest ${pgbackrest_version}, zstd ${zstd_version}")
if "pgbackrest" in tools:
    print("pgBackRest's cluster around the data (initdb): ${cluster_bytes:-0} bytes in "
          "$(find "$work/pg/cluster" -type f 2>/dev/null | wc -l) files, backed up with it; "
          "its row 'the cluster alone' is that cluster without the data")
print()
print("| tool | step | what | wall s | x pagevault | each round's wall s | CPU s | x pagevault | peak RSS | stored | x pagevault |")
print("|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|")
for step in steps:
    pv = by.get(("pagevault", step))
    pvm = median(pv) if pv else None
    for tool in tools:
        s = by.get((tool, step))
        if not s:
            continue
        wall, cpu, rss, stored = median(s)
        show_stored = step != "restore"
        pw, pc, _, ps = pvm if pvm else (0, 0, 0, 0)
        rounds_wall = ", ".join(f"{w:.2f}" for w, *_ in s)
        print(f"| {names[tool]} | {step} | {what[(tool, step)]} | {wall:.2f} | {ratio(wall, pw)} | "
              f"{rounds_wall} | {cpu:.2f} | {ratio(cpu, pc)} | {rss / 1024:.0f} MiB | "
              f"{mib(stored) if show_stored else '-'} | {ratio(stored, ps) if show_stored else '-'} |")
print()
# The goals (issue 30): pagevault's full and restore faster than both peers', its 1 %
# differential smaller than both peers' incrementals; the restore without its check is
# shown beside them, for information.
for mine_tool, step, key, word in (
    ("pagevault", "full", 0, "faster"),
    ("pagevault", "restore", 0, "faster"),
    ("pagevault-nocheck", "restore", 0, "faster"),
    ("pagevault", "diff", 3, "smaller"),
):
    m = by.get((mine_tool, step))
    if not m:
        continue
    mine = median(m)[key]
    for peer in ("restic", "pgbackrest"):
        s = by.get((peer, step))
        if not s:
            continue
        theirs = median(s)[key]
        show = (lambda v: f"{v:.2f} s") if key == 0 else mib
        verdict = ("met" if mine < theirs else "NOT met") if mine_tool == "pagevault" else "informative"
        who = "pagevault's" if mine_tool == "pagevault" else "pagevault's (--no-check)"
        print(f"- {who} {step} {word} than {names[peer]}'s: {show(mine)} against "
              f"{show(theirs)} ({ratio(mine, theirs)}x): {verdict}")
PY
