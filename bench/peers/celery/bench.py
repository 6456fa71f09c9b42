"""Celery with a Redis broker running the cluster bench's tasks: starts N
worker processes (threads pool, the given concurrency each), enqueues the
jobs, waits for every result, prints {"jobs_per_s": …}."""
import argparse
import json
import subprocess
import sys
import time

from tasks import app, fetch

ap = argparse.ArgumentParser()
ap.add_argument("--workers", type=int, required=True)
ap.add_argument("--jobs", type=int, required=True)
ap.add_argument("--concurrency", type=int, required=True)
ap.add_argument("--url", required=True)
a = ap.parse_args()

procs = [
    subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "threads",
         "--concurrency", str(a.concurrency), "--loglevel", "WARNING", "-n", f"w{i}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for i in range(a.workers)
]
try:
    deadline = time.time() + 60
    while True:
        replies = app.control.ping(timeout=0.5) or []
        if len(replies) >= a.workers:
            break
        if time.time() > deadline:
            sys.exit(f"only {len(replies)} of {a.workers} Celery workers came up")
    app.control.purge()
    start = time.time()
    results = [fetch.delay(f"{a.url}-{i}") for i in range(a.jobs)]
    for r in results:
        r.get(timeout=600)
    elapsed = time.time() - start
    print(json.dumps({"jobs_per_s": a.jobs / elapsed}))
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)
