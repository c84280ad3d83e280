#!/usr/bin/env python3
"""Time ONNX Runtime (the `onnxruntime` wheel, CPU provider) on one model and input.

`netml bench infer --compare-ort` runs this (embedded in the binary) for every case, on
the same input tensor it gave its own engine, with --serve: one batch each time it reads
a `run` line (printing its ms), so the two engines' batches alternate and share whatever
load the machine has; `save PATH` writes the last output. By hand:

    python3 scripts/models/ort_bench.py MODEL.onnx --input x.npy --threads 1 \
        --warmup 2 --runs 20 [--seconds 10] [--output y.npy]

The session is what a user gets from `onnxruntime.InferenceSession` with the thread count
set: intra-op threads = --threads, one inter-op thread, sequential execution, every graph
optimization. Prints one JSON line: {"version": ..., "ms": [time of each timed run]}
(--serve: {"version": ...} once loaded, then one line per command).
"""

import argparse
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--input", required=True, help="[N,C,H,W] float32 .npy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=None,
                    help="stop the timed runs after this long (at least one run)")
    ap.add_argument("--output", help="write the last run's output here (.npy)")
    ap.add_argument("--serve", action="store_true",
                    help="run one batch per `run` line on stdin, print its ms; `save PATH`")
    a = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(np.load(a.input), dtype=np.float32)
    feed = {sess.get_inputs()[0].name: x}
    if a.serve:
        serve(sess, feed)
        return

    for _ in range(a.warmup):
        sess.run(None, feed)
    ms = []
    start = time.perf_counter()
    out = None
    while len(ms) < max(a.runs, 1):
        t = time.perf_counter()
        out = sess.run(None, feed)[0]
        ms.append((time.perf_counter() - t) * 1e3)
        if a.seconds is not None and time.perf_counter() - start >= a.seconds:
            break
    if a.output:
        np.save(a.output, np.asarray(out, dtype=np.float32))
    json.dump({"version": ort.__version__, "ms": ms}, sys.stdout)
    print()


def serve(sess, feed):
    """The --serve loop: `run` times one batch, `save PATH` writes the last output."""
    print(json.dumps({"version": ort.__version__}), flush=True)
    out = None
    for line in sys.stdin:
        cmd = line.split(maxsplit=1)
        if cmd[:1] == ["run"]:
            t = time.perf_counter()
            out = sess.run(None, feed)[0]
            print((time.perf_counter() - t) * 1e3, flush=True)
        elif cmd[:1] == ["save"] and out is not None:
            np.save(cmd[1].strip(), np.asarray(out, dtype=np.float32))
            print("ok", flush=True)
        else:
            sys.exit(f"ort_bench: unknown command {line.strip()!r}")


if __name__ == "__main__":
    main()
