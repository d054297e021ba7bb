#!/usr/bin/env python3
"""Benchmark: import, export (server and CLI) and download, on data from gen_results.py.

Usage: python3 bench/bench.py [--count 200000] [--keep]
Builds the release binary, generates COUNT results, and prints figures:
  import rate, export time/rate (flat and expand_array=line_items) through the server,
  CLI export time and peak memory (max RSS), download throughput of the signed URL.
Standard library only. Everything runs on 127.0.0.1 in a temporary folder.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "exports-api")
GEN = os.path.join(ROOT, "..", "shared", "bench", "gen_results.py")
KEY = "bench-key-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"x-api-key": KEY, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def run_measured(cmd, env):
    """Runs a command; returns (seconds, peak RSS in MB) of that process alone."""
    t = time.time()
    p = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[1]} failed with {p.returncode}")
    return time.time() - t, usage.ru_maxrss / 1024


def peak_rss_mb(pid):
    """VmHWM of a running process (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="exports-bench-")
    data = os.path.join(tmp, "data")
    ds = os.path.join(tmp, "ds")
    t = time.time()
    subprocess.run([sys.executable, GEN, "--count", str(a.count), "--out", ds], check=True)
    print(f"generated {a.count} results in {time.time() - t:.1f} s "
          f"({os.path.getsize(os.path.join(ds, 'results.ndjson')) / 1e6:.0f} MB NDJSON)")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, EXPORTS_API_KEY=KEY, EXPORTS_LISTEN=f"127.0.0.1:{port}", RUST_LOG="warn")
    server = subprocess.Popen([BIN, "serve", "--data-dir", data], env=env)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        schema = json.load(open(os.path.join(ds, "schema.json")))
        sid = call(base, "POST", "/v1/schemas", schema)["id"]

        dt, rss = run_measured([BIN, "import", "--schema", sid, os.path.join(ds, "results.ndjson"),
                                "--data-dir", data], env)
        print(f"import (CLI): {a.count} results in {dt:.2f} s = {a.count / dt:,.0f} results/s, peak RSS {rss:.0f} MB")

        sid2 = call(base, "POST", "/v1/schemas", schema)["id"]
        # streamed from the file: this script's own memory must stay small, because a child
        # process's peak RSS as the kernel reports it includes the parent's at fork time
        nd_path = os.path.join(ds, "results.ndjson")
        size = os.path.getsize(nd_path)
        t = time.time()
        with open(nd_path, "rb") as body:
            req = urllib.request.Request(f"{base}/v1/schemas/{sid2}/results", data=body, method="POST",
                                         headers={"x-api-key": KEY, "content-type": "application/x-ndjson",
                                                  "content-length": str(size)})
            with urllib.request.urlopen(req) as r:
                inserted = json.loads(r.read())["inserted"]
        dt = time.time() - t
        print(f"upload via API (NDJSON, {size / 1e6:.0f} MB): {inserted} results in {dt:.2f} s "
              f"= {inserted / dt:,.0f} results/s; server peak RSS so far {peak_rss_mb(server.pid):.0f} MB")

        for expand in (None, "line_items"):
            body = {"schema_id": sid, "start_date": "2000-01-01", "end_date": "2100-01-01", "expand_array": expand}
            t = time.time()
            e = call(base, "POST", "/v1/exports", body)
            while e["status"] in ("PENDING", "PROCESSING"):
                time.sleep(0.05)
                e = call(base, "GET", f"/v1/exports/{e['id']}")
            dt = time.time() - t
            assert e["status"] == "COMPLETED", e
            label = f"expand_array={expand}" if expand else "flat"
            print(f"export via API ({label}): {e['row_count']:,} rows, {e['file_size'] / 1e6:.1f} MB in {dt:.2f} s "
                  f"= {e['row_count'] / dt:,.0f} rows/s, {e['file_size'] / 1e6 / dt:.0f} MB/s")
            url = call(base, "GET", f"/v1/exports/{e['id']}/download")["url"]
            t = time.time()
            n = 0
            with urllib.request.urlopen(url) as r:
                while chunk := r.read(1 << 20):
                    n += len(chunk)
            dt = time.time() - t
            assert n == e["file_size"]
            print(f"download ({label}): {n / 1e6:.1f} MB in {dt:.2f} s = {n / 1e6 / dt:.0f} MB/s")

        out = os.path.join(tmp, "cli.csv")
        print(f"server peak RSS after exports and downloads: {peak_rss_mb(server.pid):.0f} MB")
        dt, rss = run_measured([BIN, "export", "--schema", sid, "--start", "2000-01-01", "--end", "2100-01-01",
                                "--expand-array", "line_items", "--out", out, "--data-dir", data], env)
        print(f"export (CLI, expand_array=line_items): {os.path.getsize(out) / 1e6:.1f} MB in {dt:.2f} s, "
              f"peak RSS {rss:.0f} MB")
    finally:
        server.terminate()
        server.wait()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)


if __name__ == "__main__":
    main()
