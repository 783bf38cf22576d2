"""How long the demo makes a visitor wait: app start-up and one slider move on Retrieve.

Measures, in one run on this machine:
  * start-up: seconds from launching ``python app.py`` (the tiny test pipeline, offline) to its
    first HTTP 200, against a minimal Gradio app (one button) launched the same way: the ratio
    is the app's own start-up cost on top of Gradio's,
  * one ranking update: the +NFC+IPG distances the app recomputes on a slider move (default
    SynthPed size: 320 queries, 720 gallery images, 952-d features, 8 generated images each),
    against the straightforward computation (full distance matrix NFC with a Python loop over
    rows, as the reference code does), and checks both give the same distances.

    python benchmarks/app_latency.py [--repeats 3]
"""

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

MINIMAL_APP = """
import sys
import gradio as gr
with gr.Blocks() as demo:
    gr.Button("Go")
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seconds_to_serve(args, env, limit=300):
    """Seconds from starting ``python *args`` ({port} filled in) to its first HTTP 200."""
    port = _free_port()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *(a.replace("{port}", str(port)) for a in args)], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{args} exited with code {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            if time.perf_counter() - start > limit:
                raise SystemExit(f"{args} did not serve within {limit} s")
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(30)


def startup(repeats):
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", POSE2ID_TEST_PIPELINE="1")
    app, minimal = [], []
    for _ in range(repeats):  # interleaved, so a change in load hits both
        minimal.append(seconds_to_serve(["-c", MINIMAL_APP, "{port}"], env))
        app.append(seconds_to_serve(["app.py", "--port", "{port}"], env))
    a, m = float(np.median(app)), float(np.median(minimal))
    print(f"start-up to HTTP 200 (median of {repeats}): app.py {a:.2f} s, minimal Gradio app {m:.2f} s, "
          f"ratio {a / m:.2f}")


def ranking_update(repeats):
    import pose2id as p2
    from nfc_speed import straightforward_nfc, timed
    from pose2id.data import ReIDImage
    from pose2id.experiments import Benchmark

    rng = np.random.default_rng(0)
    nq, ng, d, poses = 320, 720, 952, 8
    n_ids = 80
    centres = rng.normal(size=(n_ids, d)).astype(np.float32)

    def images(n, prefix):
        pids = rng.integers(0, n_ids, n)
        return [ReIDImage(path=None, pid=int(p), camid=int(c), name=f"{prefix}{i}")
                for i, (p, c) in enumerate(zip(pids, rng.integers(0, 6, n)))], pids

    query, q_pids = images(nq, "q")
    gallery, g_pids = images(ng, "g")
    noisy = lambda pids, *shape: (centres[pids].reshape(len(pids), *([1] * len(shape)), d)  # noqa: E731
                                  + 1.5 * rng.normal(size=(len(pids), *shape, d))).astype(np.float32)
    bench = Benchmark(query=query, gallery=gallery, qf=noisy(q_pids), gf=noisy(g_pids),
                      q_gen=noisy(q_pids, poses), g_gen=noisy(g_pids, poses))

    def ours():
        bench._cache.clear()
        return bench.distances("+NFC+IPG", k1=3, k2=2, eta=1.0)

    def straightforward():
        q = straightforward_nfc(p2.ipg_fuse(bench.qf, bench.q_gen, eta=1.0), 3, 2)
        g = straightforward_nfc(p2.ipg_fuse(bench.gf, bench.g_gen, eta=1.0), 3, 2)
        sq_q, sq_g = (q * q).sum(1), (g * g).sum(1)
        return np.maximum(sq_q[:, None] + sq_g[None, :] - 2 * q @ g.T, 0)

    t_ours, d_ours = timed(ours, repeat=repeats)
    t_plain, d_plain = timed(straightforward, repeat=repeats)
    diff = float(np.abs(d_ours - d_plain).max())
    print(f"one ranking update (+NFC+IPG distances, {nq} x {ng}, best of {repeats}): ours {t_ours * 1e3:.0f} ms, "
          f"straightforward {t_plain * 1e3:.0f} ms, ratio {t_ours / t_plain:.2f}; max |difference| {diff:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-startup", action="store_true", help="only the ranking update")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    ranking_update(args.repeats)
    if not args.skip_startup:
        startup(args.repeats)


if __name__ == "__main__":
    main()
