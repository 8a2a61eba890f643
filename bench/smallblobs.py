#!/usr/bin/env python3
"""Push many small random blobs to an OCI registry from concurrent workers.

Standard library only. Each worker is one thread with its own keep-alive
http.client connection, like a real client pushing many small layers. Blobs are
generated and hashed before the clock starts, so only the HTTP work is timed.

Modes:
  monolithic  POST /v2/<name>/blobs/uploads/?digest=...  with the body (expect 201)
  postput     POST (expect 202 + Location), then PUT <location>?digest=... with the body
              (for servers that do not accept a monolithic POST, e.g. distribution 2.x)

Prints one JSON object: {"ops": n, "errors": n, "seconds": s, "ops_per_s": x, ...}.
Exit status 1 if any push failed, so the caller does not record a bogus figure.
"""

import argparse
import hashlib
import json
import os
import sys
import threading
import time

import keepalive


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="server base URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--name", required=True, help="repository name, e.g. bench/small")
    p.add_argument("--mode", choices=["monolithic", "postput"], required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout, seconds")
    p.add_argument("--deadline", type=float, default=300.0, help="give up after this many seconds overall")
    return p.parse_args()


class Worker(keepalive.Connection):
    """One keep-alive connection pushing blobs."""

    def push(self, name, mode, body, digest):
        uploads = f"/v2/{name}/blobs/uploads/"
        octet = {"Content-Type": "application/octet-stream"}
        if mode == "monolithic":
            resp, _ = self.request("POST", f"{uploads}?digest={digest}", body, octet)
            if resp.status != 201:
                raise RuntimeError(f"monolithic POST: HTTP {resp.status}")
            return
        resp, _ = self.request("POST", uploads, b"")
        location = resp.getheader("Location")
        if resp.status != 202 or not location:
            raise RuntimeError(f"POST: HTTP {resp.status}")
        target = self.target_of(location, uploads)
        sep = "&" if "?" in target else "?"
        resp, _ = self.request("PUT", f"{target}{sep}digest={digest}", body, octet)
        if resp.status != 201:
            raise RuntimeError(f"PUT: HTTP {resp.status}")


def main():
    args = parse_args()
    # Prepare every blob before timing: random bytes are unique per run, so no
    # server can short-circuit on an existing digest.
    blobs = []
    for _ in range(args.count):
        body = os.urandom(args.size)
        blobs.append((body, "sha256:" + hashlib.sha256(body).hexdigest()))

    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "errors": 0, "first_error": None}
    deadline = time.monotonic() + args.deadline

    def take():
        with lock:
            i = state["next"]
            if i >= len(blobs) or time.monotonic() > deadline:
                return None
            state["next"] = i + 1
            return blobs[i]

    def run():
        w = Worker(args.base, args.timeout)
        while (item := take()) is not None:
            try:
                w.push(args.name, args.mode, *item)
                with lock:
                    state["ok"] += 1
            except Exception as e:  # record and keep going: one failure must not hang the run
                with lock:
                    state["errors"] += 1
                    state["first_error"] = state["first_error"] or repr(e)
                w.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(args.workers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + args.timeout * 2)
    seconds = time.monotonic() - start

    out = {
        "ops": state["ok"],
        "errors": state["errors"],
        "seconds": round(seconds, 4),
        "ops_per_s": round(state["ok"] / seconds, 1) if seconds > 0 else 0,
        "mode": args.mode,
        "first_error": state["first_error"],
    }
    print(json.dumps(out))
    return 0 if state["ok"] == args.count and state["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
