"""Through the front of two replicas (.ci/replicas.sh): 20 exports of 20,000 results, created
through either replica, all COMPLETED, each run exactly once (the replicas' COMPLETED counters add
up to 20), by both replicas between them, and every file downloaded (presigned S3 URL) with the
same bytes. Usage: replicas_check.py FRONT_URL API_KEY REPLICA1_URL REPLICA2_URL"""

import json
import sys
import time
import urllib.request

front, key, replicas = sys.argv[1], sys.argv[2], sys.argv[3:]


def call(method, url, body=None, headers=None, data=None):
    h = {"x-api-key": key, **(headers or {})}
    if body is not None:
        data = json.dumps(body).encode()
        h["content-type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def completed(replica):
    _, text = call("GET", replica + "/metrics")
    for line in text.decode().splitlines():
        if line.startswith('exports_jobs_total{status="COMPLETED"}'):
            return int(float(line.split()[-1]))
    return 0


# a schema of this run and 20,000 results, through the front
_, body = call("POST", front + "/v1/schemas", {"name": "replicas", "schema": {"fields": [
    {"key": "vendor", "label": "Vendor", "type": "string"}, {"key": "total", "label": "Total", "type": "number"}]}})
schema = json.loads(body)["id"]
lines = "".join(
    json.dumps({"extraction": {"vendor": f"Vendor \"{i}\", Inc.", "total": i / 100},
                "file_name": f"invoice-{i}.pdf", "createdAt": f"2024-02-{1 + i % 28:02d}T12:00:00Z"}) + "\n"
    for i in range(20_000))
call("POST", f"{front}/v1/schemas/{schema}/results", data=lines.encode(),
     headers={"content-type": "application/x-ndjson"})

before = [completed(r) for r in replicas]
ids = []
for i in range(20):
    status, body = call(
        "POST",
        front + "/v1/exports",
        {"schema_id": schema, "start_date": "2024-01-01", "end_date": "2024-03-31"},
    )
    assert status == 201, (status, body)
    ids.append(json.loads(body)["id"])

deadline = time.time() + 180
pending = set(ids)
while pending:
    assert time.time() < deadline, f"exports not finished: {sorted(pending)}"
    for i in list(pending):
        _, body = call("GET", f"{front}/v1/exports/{i}")
        e = json.loads(body)
        assert e["status"] != "FAILED", e
        if e["status"] == "COMPLETED":
            pending.discard(i)
    time.sleep(0.2)

ran = [completed(r) - b for r, b in zip(replicas, before)]
print(f"exports run per replica: {ran}")
assert sum(ran) == len(ids), f"{sum(ran)} runs for {len(ids)} exports: some ran twice or were lost"
assert all(n > 0 for n in ran), f"one replica ran every export: {ran}"

files = set()
for i in ids:
    _, body = call("GET", f"{front}/v1/exports/{i}/download")
    url = json.loads(body)["url"]
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200
        files.add(r.read())
assert len(files) == 1, f"{len(files)} different files for one export request"
(data,) = files
assert len(data) > 100_000, len(data)
print(f"replicas: {len(ids)} exports COMPLETED once each, {len(data)} bytes each, downloads presigned")
