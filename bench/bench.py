#!/usr/bin/env python3
"""One command, every figure of issue 6 side by side with its anchor, in one run on this machine.

Usage: python3 bench/bench.py [--count 1000000] [--runs 3] [--keep] [--skip STEP,...]

Builds the release binary and the floor app (../shared/bench/floor), generates COUNT results
with ../shared/bench/gen_results.py, and prints the median of RUNS runs of each figure and its
ratio to the anchor measured in the same run:

  import      `exports-api import` (CLI) rate and peak RSS (always runs: the data of every step)
  upload      POST /v1/schemas/{id}/results with the same NDJSON: rate, server RSS above idle
  export      flat and expand_array=line_items `exports-api export` (CLI) vs the sqlite3 CLI
              (json_extract -> CSV; json_each for the expanded case) and a raw
              `SELECT extraction` scan to /dev/null, on the same database; then `--format jsonl`
              and `--format xlsx` (flat, time and peak RSS against the flat CSV export's) and
              an expanded xlsx (past Excel's 1,048,576 rows at 1M results: a second sheet)
  download    the signed URL of a completed export vs nginx (sendfile on) serving the same file
  http        GET /v1/exports?limit=20 (wrk -t2 -c32 -d8s) vs the floor app on the same
              database, and POST /v1/exports (wrk -c8), both while the workers are exporting
  paging      first and 1,000th page of GET /v1/exports with 200 vs 100,000 exports in a team,
              and of GET /v1/results with 200 vs COUNT results

The server runs with `--rate-limit 0 --max-queued-exports 0` so that rate limiting and the queue
bound do not shape the HTTP figures, and `--max-body 4GB` so that the whole NDJSON file uploads. Everything listens on 127.0.0.1, in a temporary folder.
Needs nginx (Debian nginx-light), wrk and sqlite3: installed with apt-get when missing and
running as root; otherwise the script says what to install and skips the steps that need them.
Standard library only.
"""
import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "exports-api")
SHARED = os.path.join(ROOT, "..", "shared", "bench")
GEN = os.path.join(SHARED, "gen_results.py")
FLOOR_SRC = os.path.join(SHARED, "floor")
FLOOR_TARGET = "/tmp/floor-target"
FLOOR_BIN = os.path.join(FLOOR_TARGET, "release", "floor")
KEY = "bench-key-0123456789abcdef"
STEPS = ("upload", "export", "download", "http", "paging")

ROWS = []  # (section, figure, median, unit, anchor text, ratio text)


def say(*a):
    print(*a, flush=True)


def record(section, figure, values, unit, anchor=None, anchor_values=None, fmt="{:,.2f}"):
    med = statistics.median(values)
    runs = ", ".join(fmt.format(v) for v in values)
    anchor_text, ratio = "", ""
    if anchor_values:
        am = statistics.median(anchor_values)
        anchor_text = f"{anchor}: {fmt.format(am)} {unit}"
        ratio = f"{med / am:.2f}x" if am else "-"
    ROWS.append((section, figure, fmt.format(med) + " " + unit, anchor_text, ratio))
    say(f"  {figure}: median {fmt.format(med)} {unit} (runs: {runs})" + (f"; {anchor_text}; ratio {ratio}" if ratio else ""))
    return med


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tools():
    """Installs nginx-light, wrk and sqlite3 when missing (root only); returns what is there."""
    want = {"nginx": "nginx-light", "wrk": "wrk", "sqlite3": "sqlite3", "curl": "curl"}
    missing = [pkg for tool, pkg in want.items() if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}")]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        say(f"installing {' '.join(missing)} with apt-get")
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=False, stdout=subprocess.DEVNULL)
    have = {tool for tool in want if shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")}
    lost = [want[t] for t in want if t not in have]
    if lost:
        say(f"missing: {' '.join(lost)}; install them with `sudo apt-get install -y {' '.join(lost)}`; "
            "the steps that need them are skipped")
    return have


def call(base, method, path, body=None, key=KEY):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"x-api-key": key, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def timed(cmd, env=None, stdout=subprocess.DEVNULL, stdin=None):
    return measured(cmd, env, stdout, stdin)[0]


PEAKS = {}


def wait_checkpointed(db_path, limit=180):
    """Waits (at most `limit` seconds) for the server's checkpoint thread to copy a large WAL
    into the database and truncate it (it does so once writes have been quiet for 10 s)."""
    wal = db_path + "-wal"
    deadline = time.time() + limit
    while time.time() < deadline:
        if not os.path.exists(wal) or os.path.getsize(wal) < 64 << 20:
            return
        time.sleep(0.5)
    say(f"  (the WAL was still {os.path.getsize(wal) >> 20} MB after {limit} s)")


def measured(cmd, env=None, stdout=subprocess.DEVNULL, stdin=None):
    """Runs a command; (seconds, its own peak RSS in MB). The disk's write-back queue is
    emptied first (`sync`), so that no run, ours or an anchor's, pays for the files the steps
    before it wrote (the generated NDJSON, an earlier run's output)."""
    os.sync()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=stdout, stdin=stdin)
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} failed")
    return dt, usage.ru_maxrss / 1024


def rss_mb(pid, field):
    """VmRSS or VmHWM of a running process (Linux), MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_http(url):
    for _ in range(300):
        try:
            urllib.request.urlopen(url)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


def wrk(url, key, threads=2, conns=32, secs=8, script=None):
    """(requests/s, p99 ms, mean latency ms) of one wrk run."""
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", "-H", f"x-api-key: {key}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        say(f"  warning: {non2xx.group(1)} non-2xx answers from {url}")

    def ms(pattern):
        m = re.search(pattern, out, re.M)
        v = m and re.match(r"([\d.]+)(us|ms|m|s)$", m.group(1))
        if not v:
            say(f"  warning: could not read {pattern!r} from wrk's output:\n{out}")
            return float("nan")
        return float(v.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000}[v.group(2)]
    p99 = ms(r"^\s*99%\s+(\S+)")
    mean = ms(r"^\s*Latency\s+(\S+)")
    return rps, p99, mean


class Server:
    def __init__(self, data, env, workers=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [BIN, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{self.port}",
               "--rate-limit", "0", "--max-queued-exports", "0", "--max-body", "4GB"]
        if workers:
            cmd += ["--workers", str(workers)]
        self.proc = subprocess.Popen(cmd, env=env)
        wait_http(self.base + "/healthz")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def schema_columns(schema):
    """json paths of the flat CSV's columns, and the expanded array's item keys."""
    paths, items = [], []
    for f in schema["schema"]["fields"]:
        if f["type"] == "object":
            paths += [f"$.{f['key']}.{g['key']}" for g in f["fields"]]
        else:
            paths.append(f"$.{f['key']}")
        if f["key"] == "line_items":
            items = [g["key"] for g in f["fields"]]
    return paths, items


def id_key(sid):
    """A UUID as the blob literal results store it as (16 bytes, migration 7)."""
    return "x'" + sid.replace("-", "") + "'"


def id_text(col):
    """SQL giving the lowercase hyphenated text of a 16-byte id column, as the export writes it."""
    h = f"lower(hex({col}))"
    return " || '-' || ".join(f"substr({h}, {a}, {n})" for a, n in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)))


def sqlite_anchor_sql(sid, schema, out, expanded):
    paths, items = schema_columns(schema)
    cols = ", ".join(f"json_extract(r.extraction, '{p}')" for p in paths if not (expanded and p == "$.line_items"))
    head = f".headers on\n.mode csv\n.output {out}\n"
    if not expanded:
        return head + (f"SELECT {id_text('r.id')}, r.file_name, r.created_at, {cols} FROM results r "
                       f"WHERE r.schema_id = {id_key(sid)} ORDER BY r.created_at, r.id;\n")
    item_cols = ", ".join(f"json_extract(j.value, '$.{k}')" for k in items)
    return head + (f"SELECT {id_text('r.id')}, r.file_name, r.created_at, {cols}, {item_cols} FROM results r "
                   f"LEFT JOIN json_each(r.extraction, '$.line_items') j "
                   f"WHERE r.schema_id = {id_key(sid)} ORDER BY r.created_at, r.id, j.key;\n")


def export_via_api(srv, sid, expand=None, start="2000-01-01", end="2100-01-01", key=KEY):
    body = {"schema_id": sid, "start_date": start, "end_date": end, "expand_array": expand}
    e = call(srv.base, "POST", "/v1/exports", body, key=key)
    while e["status"] in ("PENDING", "PROCESSING"):
        time.sleep(0.05)
        e = call(srv.base, "GET", f"/v1/exports/{e['id']}", key=key)
    assert e["status"] == "COMPLETED", e
    return e


def nginx_start(tmp, www):
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""user root;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fastcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  server {{ listen 127.0.0.1:{port}; root {www}; }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-c", conf, "-p", tmp], stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/nothing-here")
        except urllib.error.HTTPError:
            return proc, base
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("nginx did not start; see " + os.path.join(tmp, "nginx-error.log"))


def curl_speed(url):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}", url],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]) / 1e6, int(out[1])


class KeepBusy:
    """Keeps every worker exporting: posts expanded exports while fewer than 2 per worker wait."""

    def __init__(self, srv, sid, workers):
        self.srv, self.sid, self.workers = srv, sid, workers
        self.stop_flag = threading.Event()
        self.ids = []  # exports not yet deleted
        self.started = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_flag.is_set():
            pending = 0
            for i in list(self.ids):
                try:
                    if call(self.srv.base, "GET", f"/v1/exports/{i}")["status"] in ("PENDING", "PROCESSING"):
                        pending += 1
                    else:
                        # finished: delete it and its file, or the disk fills up
                        call(self.srv.base, "DELETE", f"/v1/exports/{i}")
                        self.ids.remove(i)
                except OSError:
                    pass
            if pending < 2 * self.workers:
                e = call(self.srv.base, "POST", "/v1/exports", {"schema_id": self.sid, "start_date": "2000-01-01",
                                                               "end_date": "2100-01-01", "expand_array": "line_items"})
                self.ids.append(e["id"])
                self.started += 1
            else:
                self.stop_flag.wait(0.2)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while time.time() < deadline and self.started < self.workers:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join()
        for i in self.ids:  # cancel what is left, so the next step starts quiet
            try:
                call(self.srv.base, "DELETE", f"/v1/exports/{i}")
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="results to generate (default 1,000,000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is printed (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--skip", default="", help=f"comma-separated steps to skip: {','.join(STEPS)}")
    a = ap.parse_args()
    skip = {s for s in a.skip.split(",") if s}
    runs = range(a.runs)
    have = ensure_tools()
    say("building the release binary")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    if "http" not in skip:
        say("building the floor app")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=FLOOR_SRC, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=FLOOR_TARGET))
    tmp = tempfile.mkdtemp(prefix="exports-bench-")
    data = os.path.join(tmp, "data")
    ds = os.path.join(tmp, "ds")
    t = time.time()
    subprocess.run([sys.executable, GEN, "--count", str(a.count), "--out", ds], check=True)
    nd = os.path.join(ds, "results.ndjson")
    say(f"generated {a.count:,} results in {time.time() - t:.1f} s ({os.path.getsize(nd) / 1e6:.0f} MB NDJSON)")
    schema = json.load(open(os.path.join(ds, "schema.json")))
    env = dict(os.environ, EXPORTS_API_KEY=KEY, RUST_LOG="warn")
    db_path = os.path.join(data, "exports.db")
    workers = os.cpu_count() or 2
    say(f"server: --rate-limit 0 --max-queued-exports 0 --max-body 4GB, {workers} workers; runs per figure: {a.runs}")

    srv = Server(data, env)
    nginx = None
    try:
        sid = call(srv.base, "POST", "/v1/schemas", schema)["id"]

        # --- import: run 1 into the main database, the others into copies taken before it
        say("import (CLI)")
        copies = []
        for i in runs[1:]:
            d = os.path.join(tmp, f"import{i}")
            os.makedirs(d, mode=0o700)
            with sqlite3.connect(db_path) as src, sqlite3.connect(os.path.join(d, "exports.db")) as dst:
                src.backup(dst)
            copies.append(d)
        # the anchor's empty database: a copy of the one the import goes into
        floor_base = os.path.join(tmp, "import-floor-base.db")
        with sqlite3.connect(db_path) as src, sqlite3.connect(floor_base) as dst:
            src.backup(dst)
        rates, peaks = [], []
        # the copies first, the server's own database last: the server copies that import's
        # WAL into the database once it has been quiet for a while, which is waited for below,
        # so that no later timed run shares the disk with that copy
        for d in copies + [data]:
            dt, peak = measured([BIN, "import", "--schema", sid, nd, "--data-dir", d], env)
            rates.append(a.count / dt)
            peaks.append(peak)
        for d in copies:
            shutil.rmtree(d, ignore_errors=True)
        wait_checkpointed(db_path)
        # Anchor: SQLite itself storing the same rows, already parsed, into the same empty
        # table with its indexes (the sqlite3 CLI's INSERT ... SELECT, with the import's
        # settings): what one writer of this database costs before any JSON is read.
        floor_rates = None
        if "sqlite3" in have:
            with sqlite3.connect(db_path) as c:
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            floor_rates = []
            for _ in runs:
                target = os.path.join(tmp, "import-floor.db")
                shutil.copy(floor_base, target)
                sql = (f"PRAGMA journal_mode = WAL;\nPRAGMA synchronous = FULL;\nPRAGMA wal_autocheckpoint = 0;\n"
                       f"PRAGMA cache_size = -16000;\nATTACH 'file:{db_path}?mode=ro' AS src;\nBEGIN;\n"
                       f"INSERT INTO main.results SELECT * FROM src.results ORDER BY rowid;\nCOMMIT;\n")
                floor_rates.append(a.count / timed(["sqlite3", target], stdin=open_sql(tmp, sql)))
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(target + suffix):
                        os.remove(target + suffix)
        os.remove(floor_base)
        record("import", "import (CLI)", rates, "results/s", "sqlite3 INSERT ... SELECT of the parsed rows",
               floor_rates, fmt="{:,.0f}")
        record("import", "import (CLI), peak RSS", peaks, "MB", fmt="{:,.0f}")

        # --- upload through the API, into a team of its own; server memory above idle
        if "upload" not in skip:
            say("upload via POST /v1/schemas/{id}/results (NDJSON)")
            up_key = new_team_key(data, env, "upload")
            idle = rss_mb(srv.proc.pid, "VmRSS")
            size = os.path.getsize(nd)
            up_rates = []
            for _ in runs:
                up_sid = call(srv.base, "POST", "/v1/schemas", schema, key=up_key)["id"]
                t = time.perf_counter()
                with open(nd, "rb") as body:
                    req = urllib.request.Request(f"{srv.base}/v1/schemas/{up_sid}/results", data=body, method="POST",
                                                 headers={"x-api-key": up_key, "content-type": "application/x-ndjson",
                                                          "content-length": str(size)})
                    with urllib.request.urlopen(req, timeout=3600) as r:
                        inserted = json.loads(r.read())["inserted"]
                up_rates.append(inserted / (time.perf_counter() - t))
            record("import", f"upload via API ({size / 1e6:.0f} MB NDJSON)", up_rates, "results/s", fmt="{:,.0f}")
            ROWS.append(("import", "upload: server peak RSS above idle",
                         f"{rss_mb(srv.proc.pid, 'VmHWM') - idle:,.0f} MB (idle {idle:,.0f} MB)", "", ""))
            say(f"  {ROWS[-1][1]}: {ROWS[-1][2]}")

        # --- export: CLI vs sqlite3 CLI vs raw scan
        if "export" not in skip:
            say("export (CLI) vs sqlite3")
            out = os.path.join(tmp, "out.csv")
            raw = [timed(["sqlite3", "-readonly", db_path],
                         stdin=open_sql(tmp, f".output /dev/null\nSELECT extraction FROM results "
                                             f"WHERE schema_id = {id_key(sid)} ORDER BY created_at, id;\n"))
                   for _ in runs] if "sqlite3" in have else None
            for expand in (None, "line_items"):
                label = "expand_array=line_items" if expand else "flat"
                cmd = [BIN, "export", "--schema", sid, "--start", "2000-01-01", "--end", "2100-01-01",
                       "--out", out, "--data-dir", data] + (["--expand-array", expand] if expand else [])
                ours, peaks = [], []
                for _ in runs:
                    dt, peak = measured(cmd, env)
                    ours.append(dt)
                    peaks.append(peak)
                size = os.path.getsize(out)
                anchor = None
                if "sqlite3" in have:
                    sql = sqlite_anchor_sql(sid, schema, os.path.join(tmp, "anchor.csv"), bool(expand))
                    anchor = [timed(["sqlite3", "-readonly", db_path], stdin=open_sql(tmp, sql)) for _ in runs]
                say(f"  {label}: {size / 1e6:.0f} MB of CSV")
                record("export", f"{label} export (CLI), s", ours, "s",
                       f"sqlite3 CLI {'json_each' if expand else 'json_extract'}", anchor)
                record("export", f"{label} export (CLI), peak RSS", peaks, "MB", fmt="{:,.0f}")
                if raw and not expand:
                    record("export", "flat export (CLI) vs raw scan, s", ours, "s", "raw SELECT extraction > /dev/null", raw)
                if not expand:
                    flat_csv, flat_csv_peaks = ours, peaks
            # issue 9: the other formats beside the flat CSV export (same data, same runs)
            for fmt, expand in (("jsonl", None), ("xlsx", None), ("xlsx", "line_items")):
                label = f"{fmt}{' expand_array=line_items' if expand else ''}"
                fout = os.path.join(tmp, f"out.{fmt}")
                cmd = [BIN, "export", "--schema", sid, "--start", "2000-01-01", "--end", "2100-01-01",
                       "--format", fmt, "--out", fout, "--data-dir", data] + (["--expand-array", expand] if expand else [])
                times, peaks = [], []
                for _ in runs:
                    dt, peak = measured(cmd, env)
                    times.append(dt)
                    peaks.append(peak)
                say(f"  {label}: {os.path.getsize(fout) / 1e6:.0f} MB")
                record("export", f"{label} export (CLI), s", times, "s",
                       "flat CSV export (CLI)" if not expand else None, flat_csv if not expand else None)
                record("export", f"{label} export (CLI), peak RSS", peaks, "MB",
                       "flat CSV export's peak RSS", flat_csv_peaks, fmt="{:,.0f}")
            if raw:
                record("export", "raw SELECT extraction > /dev/null, s", raw, "s")

        # --- download vs nginx on the same file
        if "download" not in skip:
            say("download of the signed URL vs nginx sendfile")
            e = export_via_api(srv, sid, "line_items")
            url = call(srv.base, "GET", f"/v1/exports/{e['id']}/download")["url"]
            www = os.path.join(tmp, "www")
            os.makedirs(www)
            name = f"{e['id']}.csv"
            src_file = os.path.join(data, "exports", name)
            os.link(src_file, os.path.join(www, name))
            say(f"  file: {e['file_size'] / 1e6:.0f} MB")
            ours = []
            for _ in runs:
                speed, n = curl_speed(url)
                assert n == e["file_size"], (n, e["file_size"])
                ours.append(speed)
            anchor = None
            if "nginx" in have:
                nginx, nbase = nginx_start(tmp, www)
                anchor = [curl_speed(f"{nbase}/{name}")[0] for _ in runs]
            record("download", "signed download", ours, "MB/s", "nginx sendfile", anchor, fmt="{:,.0f}")

        # --- HTTP under load: list vs floor, POST p99, while every worker exports
        if "http" not in skip and "wrk" in have:
            say("GET /v1/exports?limit=20 vs floor, and POST /v1/exports, while the workers export")
            floor_port = free_port()
            floor = subprocess.Popen([FLOOR_BIN, db_path, f"127.0.0.1:{floor_port}"])
            try:
                wait_http(f"http://127.0.0.1:{floor_port}/v1/exports?page=1&limit=20")
            except SystemExit:
                pass
            lua = os.path.join(tmp, "post.lua")
            with open(lua, "w") as f:
                body = json.dumps({"schema_id": sid, "start_date": "1990-01-01", "end_date": "1990-01-02"})
                f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                        f'wrk.headers["Content-Type"] = "application/json"\n')
            try:
                ours, theirs, posts = [], [], []
                with KeepBusy(srv, sid, workers):
                    for _ in runs:
                        ours.append(wrk(f"{srv.base}/v1/exports?limit=20", KEY))
                        theirs.append(wrk(f"http://127.0.0.1:{floor_port}/v1/exports?page=1&limit=20", KEY))
                    # last: every POST adds an export to the team the lists above read
                    for _ in runs:
                        posts.append(wrk(f"{srv.base}/v1/exports", KEY, conns=8, script=lua))
                record("http", "GET /v1/exports?limit=20, req/s", [r[0] for r in ours], "req/s", "floor",
                       [r[0] for r in theirs], fmt="{:,.0f}")
                record("http", "GET /v1/exports?limit=20, p99", [r[1] for r in ours], "ms", "floor p99",
                       [r[1] for r in theirs])
                record("http", "POST /v1/exports (wrk -c8), req/s", [r[0] for r in posts], "req/s", fmt="{:,.0f}")
                record("http", "POST /v1/exports (wrk -c8), p99", [r[1] for r in posts], "ms")
            finally:
                floor.terminate()
                floor.wait()

        # --- paging: 200 vs 100,000 exports, 200 vs COUNT results
        if "paging" not in skip and "wrk" in have:
            say("paging: first and 1,000th page")
            small_key = new_team_key(data, env, "paging-small")
            big_key = new_team_key(data, env, "paging-big")
            small_sid = call(srv.base, "POST", "/v1/schemas", schema, key=small_key)["id"]
            with open(nd, "rb") as f:
                head = b"".join(f.readline() for _ in range(200))
            req = urllib.request.Request(f"{srv.base}/v1/schemas/{small_sid}/results", data=head, method="POST",
                                         headers={"x-api-key": small_key, "content-type": "application/x-ndjson"})
            urllib.request.urlopen(req).read()
            export_via_api(srv, small_sid, key=small_key)  # a real row, whose options the seeded rows copy
            srv.stop()
            seed_exports(db_path, KEY_TEAMS[small_key], 200, sid)
            seed_exports(db_path, KEY_TEAMS[big_key], 100_000, sid)
            srv = Server(data, env, workers=workers)

            def lat(path, key):
                return [wrk(srv.base + path, key, threads=1, conns=1, secs=3)[2] for _ in runs]
            small1 = lat("/v1/exports?limit=20", small_key)
            small_last = lat("/v1/exports?limit=20&page=10", small_key)
            record("paging", "exports, 200: page 1 latency", small1, "ms")
            record("paging", "exports, 100,000: page 1 latency", lat("/v1/exports?limit=20", big_key), "ms",
                   "200 exports page 1", small1)
            record("paging", "exports, 100,000: page 1,000 latency", lat("/v1/exports?limit=20&page=1000", big_key),
                   "ms", "200 exports page 10", small_last)
            r_small = lat("/v1/results?limit=20", small_key)
            record("paging", "results, 200: page 1 latency", r_small, "ms")
            record("paging", f"results, {a.count:,}: page 1 latency", lat("/v1/results?limit=20", KEY), "ms",
                   "200 results page 1", r_small)
            record("paging", f"results, {a.count:,}: page 1,000 latency", lat("/v1/results?limit=20&page=1000", KEY),
                   "ms", "200 results page 1", r_small)
            record("paging", f"results of a schema, {a.count:,}: page 1,000 latency",
                   lat(f"/v1/results?limit=20&page=1000&schema_id={sid}", KEY), "ms", "200 results page 1", r_small)
    finally:
        srv.stop()
        if nginx:
            nginx.terminate()
            nginx.wait()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say("kept", tmp)

    say("")
    say(f"## Results: {a.count:,} results, median of {a.runs}, this machine ({os.cpu_count()} CPUs)")
    say("| step | figure | anchor (same run) | ratio |")
    say("| --- | --- | --- | --- |")
    for section, figure, value, anchor, ratio in ROWS:
        say(f"| {figure} | {value} | {anchor} | {ratio} |")


def open_sql(tmp, sql):
    path = os.path.join(tmp, f"q-{uuid.uuid4().hex}.sql")
    with open(path, "w") as f:
        f.write(sql)
    return open(path)


KEY_TEAMS = {}


def new_team_key(data, env, name):
    team = subprocess.run([BIN, "teams", "create", name, "--data-dir", data], env=env, check=True,
                          capture_output=True, text=True).stdout.strip().split()[-1]
    key = subprocess.run([BIN, "keys", "create", "--team", team, "--data-dir", data], env=env, check=True,
                         capture_output=True, text=True).stdout.strip().split()[-1]
    KEY_TEAMS[key] = team
    return key


def seed_exports(db_path, team, n, schema_id):
    """n COMPLETED export rows for a team, written straight into the database (server stopped)."""
    c = sqlite3.connect(db_path)
    options = c.execute("SELECT options FROM exports LIMIT 1").fetchone()[0]
    base = int(time.time() * 1000) - n
    rows = ((str(uuid.uuid4()), team, schema_id, "COMPLETED", 0, 86_400_000, None, options, 0, 0, None, 1, None,
             base + i, base + i, base + i) for i in range(n))
    with c:
        c.executemany("INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, expand_array, options, "
                      "row_count, file_size, error, attempts, claimed_by, created_at, updated_at, completed_at) "
                      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    c.close()


if __name__ == "__main__":
    main()
