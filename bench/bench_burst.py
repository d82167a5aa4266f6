"""A burst of concurrent clients against the server `make run` starts (Django's threaded development server).

Each client is browser-like: several requests over one kept-alive HTTP/1.1 connection, so its server thread
lives for the whole visit. Before the connection pool, each such thread kept a PostgreSQL connection of its
own, and a few hundred clients exhausted the server's max_connections.

    .venv/bin/python bench/bench_burst.py                       # this checkout, the demo data of `make run`
    .venv/bin/python bench/bench_burst.py --root /tmp/old       # another checkout, same data, for a side-by-side

Needs `make run` (or `manage.py migrate && manage.py loaddemo`) to have filled var/ once.
"""

import argparse
import concurrent.futures
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402

QUERIES = ["a red circle", "a high beeping tone", "blue square", "a low chord", "green star", "noise"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _client(port: int, n: int, requests: int) -> list[tuple[int, float]]:
    out = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for i in range(requests):
        query = QUERIES[(n + i) % len(QUERIES)].replace(" ", "+")
        path = f"/api/search/?q={query}&k=10" if i % 3 else "/api/items/"
        started = time.perf_counter()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            out.append((response.status, time.perf_counter() - started))
        except OSError:
            out.append((-1, time.perf_counter() - started))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.close()
    return out


def _burst(port: int, clients: int, requests: int) -> dict:
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        results = [r for rs in pool.map(lambda n: _client(port, n, requests), range(clients)) for r in rs]
    wall = time.perf_counter() - started
    latencies = sorted(t for _, t in results)
    codes: dict[int, int] = {}
    for code, _ in results:
        codes[code] = codes.get(code, 0) + 1
    return {
        "requests": len(results), "errors": sum(n for code, n in codes.items() if code != 200), "codes": codes,
        "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "rps": len(results) / wall,
    }


def _after(port: int, seconds: float = 5.0) -> str:
    """Plain single requests right after the bursts: does the server still answer?"""
    codes = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        codes.append(_client(port, 0, 1)[0][0])
        time.sleep(0.25)
    return f"{codes.count(200)}/{len(codes)} answered 200"


def run(root: Path, var: Path, clients: int, requests: int, bursts: int) -> list[str]:
    port = _free_port()
    # Throttling would answer most of a burst from one address with 429: this measures the server, not the limit.
    env = {**os.environ, "SEARCH_VAR_DIR": str(var), "DJANGO_LOG_LEVEL": "CRITICAL",
           "SEARCH_THROTTLE_SEARCH": "1000000/min"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=root, env=env, check=True,
                   capture_output=True)
    # What `make run` starts, less the autoreloader (a second process that would only watch files).
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                              cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                if _client(port, 0, 1)[0][0] == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        lines = []
        for n in range(1, bursts + 1):
            figures = _burst(port, clients, requests)
            lines.append(f"| {root.name} | {n} | {figures['requests']} | {figures['errors']} | "
                         f"{', '.join(f'{c}: {k}' for c, k in sorted(figures['codes'].items()))} | "
                         f"{figures['p50_ms']:.0f} | {figures['p99_ms']:.0f} | {figures['rps']:.0f} |")
            print(lines[-1], flush=True)
        lines.append(f"| {root.name} | after | {_after(port)} | | | | | |")
        print(lines[-1], flush=True)
        return lines
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", action="append", type=Path, help="checkout(s) to serve (default: this one)")
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--requests", type=int, default=3, help="requests per client, over one kept-alive connection")
    parser.add_argument("--bursts", type=int, default=2)
    parser.add_argument("--var", type=Path, default=_django.ROOT / "var", help="the data folder to serve")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 clients, one burst")
    parser.add_argument("--out", help="write the report here instead of docs/benchmarks/burst.md")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests, args.bursts = 20, 2, 1
    roots = args.root or [_django.ROOT]
    report = [
        "# A burst of concurrent clients against `make run`'s server", "",
        f"{args.clients} concurrent keep-alive clients x {args.requests} requests (2 of 3 searches with the demo "
        f"model, 1 of 3 item lists), {args.bursts} bursts back to back, then single requests for 5 s. "
        f"Machine: {_django.machine()}.", "",
        "| checkout | burst | requests | errors | status codes | p50 ms | p99 ms | req/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for root in roots:
        report += run(root.resolve(), args.var.resolve(), args.clients, args.requests, args.bursts)
    text = "\n".join(report) + "\n"
    if args.out or not args.quick:
        print(f"wrote {_django.write_fragment('burst.md', text, args.out)}")


if __name__ == "__main__":
    main()
