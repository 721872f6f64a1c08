"""A worker window in copy mode and in push-down mode on the same Elasticsearch documents.

Starts noida-db (Elasticsearch 8 API, tests/servers.py) and a SQLite store, indexes one hour of N
prediction documents (``--features`` columns: half numeric, half categorical, plus prediction and
score), uploads the same 5,000-row reference for two models that read that index, one per mode,
then per N runs each mode's worker window in its own process (so its peak RSS is its own):

* copy: the collector copies the window's documents into the store (``backfill`` of the hour),
  then the scheduler computes the window from the store (``load_window`` + ``evaluate``);
* push-down: the scheduler computes the window from one aggregation search.

Every byte between the worker and Elasticsearch goes through a counting TCP relay. A process that
only imports what a window needs gives the RSS floor; growth per document is (peak − floor) / N.

    .venv/bin/python bench/pushdown.py [--docs 100000 300000] [--features 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T0 = datetime(2026, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
REFERENCE_ROWS = 5000


def features(count: int) -> dict[str, str]:
    numeric = count // 2
    return {f"n{i}": "numeric" for i in range(numeric)} | {f"c{i}": "categorical" for i in range(count - numeric)}


def config(url: str, index: str, store: str, n_features: int, mode: str) -> Any:
    from monitor.config import parse_config

    model = {
        "task": "binary",
        "source": "es",
        "mode": mode,
        "fields": {"id": "request_id", "timestamp": "@timestamp", "prediction": "label", "score": "proba"},
        "features": features(n_features),
    }
    monitor = {"model": mode, "window": "1h", "start": T0.isoformat(), "reference": {"dataset": "reference.csv"}}
    return parse_config(
        {
            "store": store,
            "sources": {"es": {"kind": "elasticsearch", "url": url, "index": index, "page_size": 10_000}},
            "models": {mode: model},
            "monitors": {f"{mode}-hourly": monitor},
            "worker": {"metrics_port": None, "run_lease": "1h"},
        }
    )


def columns(rng: np.random.Generator, n: int, n_features: int, shift: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in features(n_features).items():
        if kind == "numeric":
            out[name] = np.round(rng.normal(shift, 1.0, n), 6)
        else:
            out[name] = rng.choice([f"v{k}" for k in range(8)], n)
    out["proba"] = np.round(1 / (1 + np.exp(-out["n0"])), 6)
    out["label"] = (out["proba"] > 0.5).astype(int)
    return out


# --------------------------------------------------------------------------------- the relay


class CountingRelay:
    """127.0.0.1:port → target, counting the bytes each way (what crosses the network in a real setup)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.bytes = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(1 << 16):
                sink.sendall(chunk)
                with self._lock:
                    self.bytes += len(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def take(self) -> int:
        with self._lock:
            value, self.bytes = self.bytes, 0
        return value


# ------------------------------------------------------------------------------ child phases


def child(args: argparse.Namespace) -> None:
    from collectors.elasticsearch import ElasticsearchCollector, build_window_aggregators
    from monitor.runs.scheduler import Scheduler
    from monitor.store.engine import make_engine

    settings = config(args.url, args.index, args.store, args.features, "copy" if args.phase == "floor" else args.phase)
    engine = make_engine(settings.store)
    out: dict[str, Any] = {}
    if args.phase == "copy":
        begun = time.perf_counter()
        collected = ElasticsearchCollector(engine, settings, "copy").backfill(T0, T0 + HOUR)
        out["collect_s"] = time.perf_counter() - begun
        out["stored"] = collected.stored
    if args.phase in ("copy", "pushdown"):
        aggregators = build_window_aggregators(settings, engine)
        begun = time.perf_counter()
        Scheduler(settings, engine, clock=lambda: T0 + 2 * HOUR, window_aggregators=aggregators).tick()
        out["window_s"] = time.perf_counter() - begun
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run_child(phase: str, url: str, index: str, store: str, n_features: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--phase", phase, "--url", url, "--index", index, "--store", store]
    done = subprocess.run([*argv, "--features", str(n_features)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--phase", choices=["copy", "pushdown", "floor"])
    parser.add_argument("--url")
    parser.add_argument("--index")
    parser.add_argument("--store")
    args = parser.parse_args()
    if args.phase:
        return child(args)

    import pandas as pd
    from elasticsearch import Elasticsearch, helpers
    from sqlalchemy import select

    from monitor.runs.references import upload_dataset
    from monitor.store.engine import make_engine, upgrade
    from monitor.store.tables import Score
    from tests.servers import start_elasticsearch

    server = start_elasticsearch()
    relay = CountingRelay(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    relayed = f"http://127.0.0.1:{relay.port}"
    es = Elasticsearch(server.url, request_timeout=3600)
    rows = []
    try:
        for n in args.docs:
            index = f"predictions-{n}"
            properties: dict[str, Any] = {"@timestamp": {"type": "date"}, "request_id": {"type": "keyword"}}
            properties |= {"label": {"type": "keyword"}, "proba": {"type": "double"}}
            for name, kind in features(args.features).items():
                properties[name] = {"type": "double" if kind == "numeric" else "keyword"}
            es.indices.create(index=index, mappings={"dynamic": False, "properties": properties})
            rng = np.random.default_rng(n)
            data = columns(rng, n, args.features, shift=0.3)
            names = list(data)
            begun = time.perf_counter()

            def documents(index: str = index, data: dict[str, Any] = data, names: list[str] = names, n: int = n) -> Any:
                for i in range(n):
                    source = {name: data[name][i].item() for name in names}
                    source["request_id"] = f"r{i}"
                    source["@timestamp"] = int((T0 + HOUR * i / n).timestamp() * 1000)
                    yield {"_index": index, "_id": f"r{i}", "_source": source}

            helpers.bulk(es, documents(), chunk_size=5000, refresh=True, request_timeout=3600)
            indexed = time.perf_counter() - begun
            directory = Path(tempfile.mkdtemp(prefix="pushdown-bench-"))
            store = f"sqlite:///{directory / 'store.db'}"
            engine = make_engine(store)
            upgrade(engine)
            reference = pd.DataFrame(columns(np.random.default_rng(0), REFERENCE_ROWS, args.features, shift=0.0))
            reference = reference.rename(columns={"label": "prediction", "proba": "score"})
            reference.to_csv(directory / "reference.csv", index=False)
            for mode in ("copy", "pushdown"):
                upload_dataset(
                    engine, config(relayed, index, store, args.features, mode), mode, directory / "reference.csv"
                )
            floor = run_child("floor", relayed, index, store, args.features)
            relay.take()
            copy = run_child("copy", relayed, index, store, args.features)
            copy["bytes"] = relay.take()
            pushed = run_child("pushdown", relayed, index, store, args.features)
            pushed["bytes"] = relay.take()
            with engine.connect() as connection:
                drift = {
                    (r.monitor, r.feature): r.value
                    for r in connection.execute(select(Score).where(Score.kind == "drift", Score.feature == "n0"))
                }
            rows.append((n, indexed, floor, copy, pushed, drift))
            es.indices.delete(index=index)
    finally:
        server.stop()

    print(f"\n{args.features} features (half numeric) + prediction + score; noida-db on this machine\n")
    print("| documents | mode | collect (s) | window (s) | total (s) | peak RSS (MB) | RSS over floor (MB) | bytes |")
    print("|---|---|---|---|---|---|---|---|")
    for n, _, floor, copy, pushed, _ in rows:
        for mode, r in (("copy", copy), ("pushdown", pushed)):
            total = r.get("collect_s", 0.0) + r["window_s"]
            print(
                f"| {n:,} | {mode} | {r.get('collect_s', 0.0):.1f} | {r['window_s']:.1f} | {total:.1f} | "
                f"{r['maxrss_mb']:.0f} | {r['maxrss_mb'] - floor['maxrss_mb']:.0f} | {r['bytes'] / 1e6:,.2f} MB |"
            )
    print()
    for n, indexed, floor, copy, pushed, drift in rows:
        copy_total = copy["collect_s"] + copy["window_s"]
        print(
            f"{n:,} docs (indexed in {indexed:.0f} s; RSS floor {floor['maxrss_mb']:.0f} MB): copy/pushdown "
            f"time {copy_total / pushed['window_s']:.2f}x, RSS over floor "
            f"{(copy['maxrss_mb'] - floor['maxrss_mb']) / max(pushed['maxrss_mb'] - floor['maxrss_mb'], 1):.1f}x, "
            f"bytes {copy['bytes'] / max(pushed['bytes'], 1):,.0f}x; n0 drift copy {drift.get(('copy-hourly', 'n0'))} "
            f"vs pushdown {drift.get(('pushdown-hourly', 'n0'))}"
        )
    if len(rows) >= 2:
        (n1, _, _, c1, p1, _), (n2, _, _, c2, p2, _) = rows[0], rows[-1]
        target = 10_000_000
        for mode, a, b in (("copy", c1, c2), ("pushdown", p1, p2)):
            per_doc_mb = (b["maxrss_mb"] - a["maxrss_mb"]) / (n2 - n1)
            per_doc_s = (b.get("collect_s", 0) + b["window_s"] - a.get("collect_s", 0) - a["window_s"]) / (n2 - n1)
            per_doc_bytes = (b["bytes"] - a["bytes"]) / (n2 - n1)
            rss = b["maxrss_mb"] + per_doc_mb * (target - n2)
            print(
                f"extrapolated to {target:,} docs, {mode}: peak RSS ≈ {rss:,.0f} MB, "
                f"time ≈ {b.get('collect_s', 0) + b['window_s'] + per_doc_s * (target - n2):,.0f} s, "
                f"bytes ≈ {(b['bytes'] + per_doc_bytes * (target - n2)) / 1e6:,.1f} MB "
                f"(growth {per_doc_mb * 1e6:,.0f} MB per million docs)"
            )
    return None


if __name__ == "__main__":
    main()
