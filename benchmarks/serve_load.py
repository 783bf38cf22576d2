"""A hosted app under load: 20 concurrent API clients, then 30 zip uploads.

Starts ``app.py`` in a subprocess with its own temporary folder (the pose2id cache, Gradio's
cache and the app's upload and scratch folders all inside it), waits for SynthPed, then:

1. ``--clients`` gradio_client clients (default 20), each making ``--requests`` calls (default 10)
   mixing ``/retrieve`` with varied k1 / k2 / eta / re-ranking / query, ``/feature_space`` and
   ``/generate`` with the SynthPed oracle, 3 : 1 : 1, in that order (with ``--shuffle``, each
   client in an order of its own, so that /feature_space does not arrive in bursts);
2. ``--uploads`` zip uploads (default 30), good ones (tiny Market-style galleries, each
   different) and bad ones (no images; entries past the expansion limit; not a zip).

Prints the errors, p50 / p95 seconds per endpoint, the server's RSS and the temporary folder's
size before and after, against the targets: 0 errors, RSS growth < 300 MB, disk growth < 100 MB
once the uploads are gone, ``/retrieve`` p95 < 5 s (on a 2-core machine).

It takes about a minute on 2 cores. Run: ``python benchmarks/serve_load.py``.
"""

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
ORACLE_PID = 41
# every five requests of a client: three /retrieve, one /feature_space, one /generate
MIX = ("retrieve",) * 3 + ("feature_space", "generate")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid, part=None):
    """User + system CPU seconds process ``pid`` (its threads included) has used so far; only
    user or only system ones for ``part`` "user" / "system"."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user, system = int(fields[11]), int(fields[12])
    ticks = {"user": user, "system": system}.get(part, user + system)
    return ticks / os.sysconf("SC_CLK_TCK")


def _folder_mb(folder):
    total = 0
    for path, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(path, name)).st_size
            except OSError:
                pass
    return total / 2**20


def _fetch_files(http, value):
    """GET every file an API value names (gradio_client's FileData dicts, when it does not download
    them itself), as a client that uses them does; returns how many, and raises on a failed one."""
    if isinstance(value, dict):
        if value.get("url") and "path" in value:
            http.get(value["url"]).raise_for_status()
            return 1
        return sum(_fetch_files(http, item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_fetch_files(http, item) for item in value)
    return 0


def _percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _wait_for(url, process, timeout=600):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the app did not answer at {url} within {timeout} s")


def _zips(folder, count):
    """``count`` zips, good and bad, written into ``folder``."""
    from tiny_market import market_folder

    paths = []
    for k in range(count):
        path = folder / f"upload{k:02d}.zip"
        kind = k % 3
        if kind == 0:  # a good tiny gallery, different each time
            market = market_folder(folder / f"market{k}" / "market", pids=4 + k % 5, with_gen=False)
            with zipfile.ZipFile(path, "w") as archive:
                for file in sorted(market.rglob("*")):
                    if file.is_file():
                        archive.write(file, file.relative_to(market.parent))
        elif kind == 1:  # no images: 128 entries of 1 MiB of zeros (under the ratio limit, refused)
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
                for entry in range(128):
                    archive.writestr(f"junk/{entry:03d}.bin", os.urandom(1024) * 1024)
        else:  # not a zip at all
            path.write_bytes(b"this is not a zip archive" * 100)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10, help="requests per client")
    parser.add_argument("--uploads", type=int, default=30)
    parser.add_argument("--shuffle", action="store_true",
                        help="each client its own order of the request mix (default: all in the same order)")
    args = parser.parse_args(argv)
    import httpx
    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="pose2id-serve-load-"))
    env = dict(os.environ, POSE2ID_CACHE=str(work / "cache"), GRADIO_TEMP_DIR=str(work / "gradio"),
               TMPDIR=str(work / "tmp"), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    (work / "tmp").mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = open(work / "server.log", "w")
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        _wait_for(url, server)
        print(f"app at {url} (pid {server.pid}); preparing SynthPed…", flush=True)
        Client(url, verbose=False, httpx_kwargs={"timeout": 900}).predict("synthped", 0, 2, 2, 2.0, False, 8, api_name="/retrieve")
        rss0, disk0 = _rss_mb(server.pid), _folder_mb(work)
        times, errors, lock = {}, [], threading.Lock()

        def client_run(index):
            rng = random.Random(index)
            # the clients share the server's cores: gradio_client's own downloads cost more CPU than
            # the server spends on a request, so files are fetched with one plain keep-alive client
            client = Client(url, verbose=False, httpx_kwargs={"timeout": 900}, download_files=False)
            http = httpx.Client(timeout=900)
            # lockstep: every client runs MIX in order, so /feature_space arrives in bursts;
            # --shuffle: each client its own order of every five (a steadier mix)
            plan = [kind for _ in range(0, args.requests, len(MIX))
                    for kind in (rng.sample(MIX, len(MIX)) if args.shuffle else MIX)]
            for choice in plan[:args.requests]:
                start = time.perf_counter()
                try:
                    if choice == "retrieve":
                        name = "/retrieve"
                        client.predict("synthped", rng.randrange(0, 50), rng.randint(1, 10), rng.randint(1, 10),
                                       round(rng.uniform(0, 5), 1), rng.random() < 0.2, 8, api_name=name)
                    elif choice == "feature_space":
                        name = "/feature_space"
                        client.predict("synthped", "+NFC", rng.randint(1, 4), rng.randint(1, 4), 2.0, 100,
                                       api_name=name)
                    else:
                        name = "/generate"
                        outputs = client.predict(None, ["1", "3"], False, "", "oracle", ORACLE_PID, 20, 3.5,
                                                 rng.randrange(1000), False, 2.0, api_name=name)
                        if _fetch_files(http, outputs) < 4:  # the preview, two images and the zip
                            raise RuntimeError("the generated files did not all come back")
                except Exception as error:  # noqa: BLE001  (counted and printed)
                    with lock:
                        errors.append(f"{name}: {type(error).__name__}: {str(error)[:200]}")
                    continue
                with lock:
                    times.setdefault(name, []).append(time.perf_counter() - start)

        print(f"running {args.clients} clients x {args.requests} requests…", flush=True)
        started, server_cpu0, own_cpu0 = time.perf_counter(), _cpu_seconds(server.pid), time.process_time()
        server_system0 = _cpu_seconds(server.pid, "system")
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client_run, range(args.clients)))
        load_seconds = time.perf_counter() - started
        server_cpu, own_cpu = _cpu_seconds(server.pid) - server_cpu0, time.process_time() - own_cpu0
        server_system = _cpu_seconds(server.pid, "system") - server_system0
        requests = sum(len(values) for values in times.values())
        rss1, disk1 = _rss_mb(server.pid), _folder_mb(work)

        zips = _zips(work / "zips", args.uploads)
        disk_zips = _folder_mb(work / "zips")
        upload_results = {"accepted": 0, "refused": 0}
        uploader = Client(url, verbose=False, httpx_kwargs={"timeout": 900})
        for path in zips:
            start = time.perf_counter()
            try:
                outputs = uploader.predict(handle_file(str(path)), api_name="/upload_zip")
                message = next(str(output) for output in outputs if "p2-status" in str(output))
                upload_results["refused" if "p2-error" in message else "accepted"] += 1
            except Exception as error:  # noqa: BLE001
                errors.append(f"/upload_zip: {type(error).__name__}: {str(error)[:200]}")
                continue
            times.setdefault("/upload_zip", []).append(time.perf_counter() - start)
        uploader.close() if hasattr(uploader, "close") else None
        rss2, disk2 = _rss_mb(server.pid), _folder_mb(work) - disk_zips

        print(f"\n{args.clients} clients x {args.requests} requests in {load_seconds:.1f} s; "
              f"{args.uploads} uploads: {upload_results}")
        print(f"CPU seconds during the clients: server {server_cpu:.1f} ({server_cpu / max(requests, 1):.2f} per "
              f"request; {server_system:.1f} of them in the kernel), the clients {own_cpu:.1f}, of {load_seconds * (os.cpu_count() or 1):.0f} the "
              f"{os.cpu_count()} cores had. With every core busy, a request waits about its share: clients x "
              "CPU seconds per request / cores")
        print(f"errors: {len(errors)}")
        for line in errors[:20]:
            print("  ", line)
        print(f"{'endpoint':<16}{'calls':>6}{'p50 s':>9}{'p95 s':>9}")
        for name, values in sorted(times.items()):
            print(f"{name:<16}{len(values):>6}{_percentile(values, 0.5):>9.2f}{_percentile(values, 0.95):>9.2f}")
        print(f"RSS MB: {rss0:.0f} before, {rss1:.0f} after the clients, {rss2:.0f} after the uploads "
              f"(growth {rss2 - rss0:+.0f}; target < 300)")
        print(f"disk MB (cache, Gradio cache, uploads, scratch): {disk0:.1f} before, {disk1:.1f} after the clients, "
              f"{disk2:.1f} after the uploads (growth {disk2 - disk0:+.1f}; target < 100)")
        p95 = _percentile(times.get("/retrieve", []), 0.95)
        print(f"/retrieve p95 {p95:.2f} s (target < 5 on 2 cores); errors {len(errors)} (target 0)")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        print(f"server log: {work / 'server.log'}")


if __name__ == "__main__":
    main()
