#!/usr/bin/env python3
"""Scale-out figures (issue 11): export throughput with 1 and 2 worker processes on one
PostgreSQL database, beside one SQLite process on the same machine, and the job queue's rate.

Usage: python3 bench/scale_out.py [--count 200000] [--exports 12] [--tiny 300] [--runs 3]

Builds the release binary, starts a throwaway PostgreSQL 15 cluster (initdb/pg_ctl; as root
they run as user `postgres`), generates COUNT results with ../shared/bench/gen_results.py and
uploads them through an API process (`serve --role api`). Export files go to one shared local
folder (`--storage-url file://…`), so the figures are the database's and the workers', not an
object store's. Then, for each setup, EXPORTS exports of every result are created at once
through the API and timed from the first POST until the last is COMPLETED (median of RUNS):

  sqlite     one `serve` process on SQLite (the default deployment), the anchor
  pg x1      one `serve --role worker` process on PostgreSQL
  pg x2      two `serve --role worker` processes on PostgreSQL

and TINY exports that match no result (the queue's cost alone: claim, lease, complete) with
one and two worker processes. Each worker process runs --workers = the machine's CPU count.
Standard library only.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "exports-api")
GEN = os.path.join(ROOT, "..", "shared", "bench", "gen_results.py")
KEY = "scale-out-bench-key-0123456789"
SIGNING = "scale-out-bench-signing-key-0123456789abcdef"


def say(*a):
    print("[scale-out]", *a, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(base, method, path, body=None, data=None, ctype="application/json"):
    if body is not None:
        data = json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"x-api-key": KEY, "content-type": ctype})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"null")


def as_pg(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


def pg_bin(name):
    for d in os.environ.get("PATH", "").split(":") + ["/usr/lib/postgresql/15/bin"]:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    sys.exit(f"{name} not found: install postgresql-15")


class Proc:
    def __init__(self, args, env, name, tmp):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        log = open(os.path.join(tmp, name + ".log"), "w")
        self.p = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{self.port}"] + args, env=env,
                                  stdout=log, stderr=log)
        for _ in range(600):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=2)
                return
            except OSError:
                if self.p.poll() is not None:
                    sys.exit(f"{name} exited; see {log.name}")
                time.sleep(0.05)
        sys.exit(f"{name} did not start")

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=60)


def run_exports(api, sid, n, start, end):
    t = time.time()
    ids = [call(api, "POST", "/v1/exports", {"schema_id": sid, "start_date": start, "end_date": end})["id"]
           for _ in range(n)]
    pending = set(ids)
    while pending:
        for i in list(pending):
            e = call(api, "GET", f"/v1/exports/{i}")
            if e["status"] == "FAILED":
                sys.exit(f"export failed: {e}")
            if e["status"] == "COMPLETED":
                pending.discard(i)
        if pending:
            time.sleep(0.02)
    return time.time() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--exports", type=int, default=12)
    ap.add_argument("--tiny", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    say("building the release binary")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="exports-scale-")
    os.chmod(tmp, 0o755)
    pgdata = os.path.join(tmp, "pg")
    os.mkdir(pgdata)
    if os.geteuid() == 0:
        shutil.chown(pgdata, "postgres")
    procs = []
    pg_started = False
    try:
        subprocess.run(as_pg([pg_bin("initdb"), "-D", pgdata, "-A", "trust", "-U", "exports", "--no-sync",
                              "-E", "UTF8", "--locale=C"]), check=True, stdout=subprocess.DEVNULL)
        pgport = free_port()
        # the server's defaults (fsync on): what a deployment runs
        subprocess.run(as_pg([pg_bin("pg_ctl"), "-D", pgdata, "-o",
                              f"-p {pgport} -k {pgdata} -c listen_addresses=127.0.0.1 -c max_connections=200",
                              "-l", os.path.join(pgdata, "log"), "-w", "start"]), check=True,
                       stdout=subprocess.DEVNULL)
        pg_started = True
        url = f"postgres://exports@127.0.0.1:{pgport}/postgres"
        ds = os.path.join(tmp, "ds")
        subprocess.run([sys.executable, GEN, "--count", str(a.count), "--out", ds], check=True)
        nd = open(os.path.join(ds, "results.ndjson"), "rb").read()
        schema = json.load(open(os.path.join(ds, "schema.json")))
        cpus = os.cpu_count() or 2
        files = os.path.join(tmp, "files")
        os.mkdir(files)
        env = dict(os.environ, EXPORTS_API_KEY=KEY, EXPORTS_SIGNING_KEY=SIGNING, RUST_LOG="warn")
        common = ["--rate-limit", "0", "--max-queued-exports", "0", "--max-body", "4GB", "--workers", str(cpus)]
        say(f"{a.count:,} results, {a.exports} exports of all of them per run, {a.tiny} empty exports; "
            f"{cpus} CPUs, --workers {cpus} per process; runs: {a.runs}")

        figures = {}

        # the anchor: SQLite, one process running everything
        lite = Proc(common + ["--data-dir", os.path.join(tmp, "lite")], env, "sqlite", tmp)
        procs.append(lite)
        sid = call(lite.base, "POST", "/v1/schemas", schema)["id"]
        call(lite.base, "POST", f"/v1/schemas/{sid}/results", data=nd, ctype="application/x-ndjson")
        figures["sqlite"] = [run_exports(lite.base, sid, a.exports, "2000-01-01", "2100-01-01") for _ in range(a.runs)]
        figures["sqlite tiny"] = [run_exports(lite.base, sid, a.tiny, "1990-01-01", "1990-01-02") for _ in range(a.runs)]
        lite.stop()
        procs.remove(lite)

        pg = common + ["--database-url", url, "--storage-url", "file://" + files]
        api = Proc(pg + ["--role", "api", "--data-dir", os.path.join(tmp, "api")], env, "api", tmp)
        procs.append(api)
        sid = call(api.base, "POST", "/v1/schemas", schema)["id"]
        t = time.time()
        call(api.base, "POST", f"/v1/schemas/{sid}/results", data=nd, ctype="application/x-ndjson")
        say(f"upload to PostgreSQL: {a.count / (time.time() - t):,.0f} results/s")
        for n in (1, 2):
            workers = [Proc(pg + ["--role", "worker", "--data-dir", os.path.join(tmp, f"w{n}-{i}")], env,
                            f"worker{n}-{i}", tmp) for i in range(n)]
            procs.extend(workers)
            figures[f"pg x{n}"] = [run_exports(api.base, sid, a.exports, "2000-01-01", "2100-01-01")
                                   for _ in range(a.runs)]
            figures[f"pg x{n} tiny"] = [run_exports(api.base, sid, a.tiny, "1990-01-01", "1990-01-02")
                                        for _ in range(a.runs)]
            for w in workers:
                w.stop()
                procs.remove(w)

        rows = a.exports * a.count
        print()
        print(f"| setup | {a.exports} exports of {a.count:,} results | results/s | vs SQLite "
              f"| {a.tiny} empty exports | jobs/s |")
        print("| --- | --- | --- | --- | --- | --- |")
        base = statistics.median(figures["sqlite"])
        for name in ("sqlite", "pg x1", "pg x2"):
            big, tiny = statistics.median(figures[name]), statistics.median(figures[name + " tiny"])
            runs = "/".join(f"{v:.2f}" for v in figures[name])
            print(f"| {name} | {big:.2f} s ({runs}) | {rows / big:,.0f} | {base / big:.2f}x "
                  f"| {tiny:.2f} s | {a.tiny / tiny:,.0f} |")
    finally:
        for p in procs:
            p.p.kill()
        if pg_started:
            subprocess.run(as_pg([pg_bin("pg_ctl"), "-D", pgdata, "-m", "immediate", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
