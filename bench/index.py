"""FAISS index choice: latency, recall and build cost at 10k / 100k / 1M vectors.

For each size, in a fresh process (so peak RSS is per size): clustered 512-d unit
vectors (1,000 Gaussian clusters), 200 queries near data points; the exact index (Flat)
and vsslzoo's automatic choice (``vsslzoo.index.vectors.auto_factory``) side by side:
build seconds, single-query latency p50/p99 (ms), recall@10 of the automatic choice
against exact search, peak RSS.

    python bench/index.py                   # 10k, 100k, 1M (about 10 minutes on 2 cores)
    python bench/index.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np


def clustered(n: int, dim: int = 512, clusters: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    data = centres[rng.integers(0, clusters, n)]
    data += 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data


def run_size(n: int) -> dict:
    from vsslzoo.index import vectors as vx

    data = clustered(n)
    rng = np.random.default_rng(1)
    queries = data[rng.choice(n, 200, replace=False)].copy()
    queries += 0.05 * rng.normal(size=queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = np.arange(n, dtype=np.int64)
    out = {"vectors": n, "dim": data.shape[1]}
    results = {}
    for name, factory in (("exact", "Flat"), ("auto", vx.auto_factory(n))):
        start = time.perf_counter()
        index = vx.build_index(data.shape[1], factory, [(ids, data)])
        build_s = time.perf_counter() - start
        index.search(queries[:1], 10)  # warm-up
        latencies, found = [], []
        for q in queries:
            start = time.perf_counter()
            _, got = index.search(q[None, :], 10)
            latencies.append((time.perf_counter() - start) * 1000)
            found.append(got[0])
        results[name] = found
        out[name] = {
            "factory": factory,
            "build_s": round(build_s, 2),
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 3),
            "latency_ms_p99": round(float(np.percentile(latencies, 99)), 3),
        }
        del index
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(results["auto"],
                                                                 results["exact"])])
    out["auto"]["recall_at_10_vs_exact"] = round(float(recall), 4)
    with open("/proc/self/status") as status:  # VmHWM: this process's own peak RSS
        hwm_kb = int(next(line for line in status if line.startswith("VmHWM")).split()[1])
    out["peak_rss_mb"] = round(hwm_kb / 1024, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_size(args.one)))
        return
    import faiss

    print(f"faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}", flush=True)
    for n in args.sizes:
        result = subprocess.run([sys.executable, __file__, "--one", str(n)],
                                capture_output=True, text=True, check=True)
        print(result.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
