"""The Celery peer's one task: fetch a URL (the bench's 20 ms page)."""
import urllib.request

from celery import Celery

app = Celery(
    "tasks",
    broker="redis://127.0.0.1:6379/14",
    backend="redis://127.0.0.1:6379/15",
)
app.conf.worker_prefetch_multiplier = 4
app.conf.broker_connection_retry_on_startup = True


@app.task
def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()
