#!/usr/bin/env python3
"""Fill a registry with many tags and many images, and time one page of a listing.

Standard library only; used by bench/run.sh for the pagination curve.

  populate  --base URL --prefix P --what tags|catalog --start A --stop B
      tags:    PUT one tiny manifest under the tags t<A>..t<B-1> of the image P + "pag/tags"
      catalog: create the images P + "pag/cat/i<A>".."i<B-1>", each by a cross-repository
               mount of the config blob (POST ?mount=&from=, 201) and a manifest PUT (tag v1)
      The config blob is first pushed once to P + "pag/seed" (POST, then PUT ?digest= with
      the body: works on every registry). A mount answered 202 (not mounted) is completed with a
      PUT of the body to the returned location, and counted.
      Prints {"requests": n, "seconds": s, "requests_per_s": x, "fallback_uploads": k}.

  probe  --url URL --key tags|repositories --count N --deadline S
      Untimed warm-up requests, then up to N sequential GETs on one keep-alive connection (or
      until S seconds have passed). Prints {"n": n, "median_ms": x, "p99_ms": y, "entries": k,
      "first": name, "last": name}: entries is the length of the list in the last response.

Threads each keep their own http.client connection; every request has a socket timeout and the
whole run a deadline. Exit status 1 on any failed request.
"""

import argparse
import hashlib
import json
import statistics
import sys
import threading
import time
import urllib.parse

import keepalive

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": OCI_MANIFEST,
    "config": {"mediaType": OCI_CONFIG, "digest": CONFIG_DIGEST, "size": len(CONFIG)},
    "layers": [],
}, separators=(",", ":")).encode()


class Connection(keepalive.Connection):
    """A keep-alive connection that can also finish an upload with the config blob."""

    def put_body_at(self, location, current):
        """Finish an upload session with the config blob as the whole body."""
        target = self.target_of(location, current)
        sep = "&" if "?" in target else "?"
        resp, data = self.request("PUT", f"{target}{sep}digest={CONFIG_DIGEST}", CONFIG,
                                  {"Content-Type": "application/octet-stream"})
        if resp.status != 201:
            raise RuntimeError(f"PUT {target}: HTTP {resp.status} {data[:200]!r}")


def push_seed(conn, seed):
    resp, _ = conn.request("HEAD", f"/v2/{seed}/blobs/{CONFIG_DIGEST}")
    if resp.status == 200:
        return
    uploads = f"/v2/{seed}/blobs/uploads/"
    resp, data = conn.request("POST", uploads, b"")
    location = resp.getheader("Location")
    if resp.status != 202 or not location:
        raise RuntimeError(f"POST {uploads}: HTTP {resp.status} {data[:200]!r}")
    conn.put_body_at(location, uploads)


def mount(conn, image, seed, counters, lock):
    uploads = f"/v2/{image}/blobs/uploads/"
    resp, data = conn.request("POST", f"{uploads}?mount={CONFIG_DIGEST}&from={urllib.parse.quote(seed, safe='/')}", b"")
    if resp.status == 201:
        return 1
    location = resp.getheader("Location")
    if resp.status != 202 or not location:
        raise RuntimeError(f"mount into {image}: HTTP {resp.status} {data[:200]!r}")
    conn.put_body_at(location, uploads)
    with lock:
        counters["fallback_uploads"] += 1
    return 2


def put_manifest(conn, image, tag):
    resp, data = conn.request("PUT", f"/v2/{image}/manifests/{tag}", MANIFEST, {"Content-Type": OCI_MANIFEST})
    if resp.status != 201:
        raise RuntimeError(f"PUT manifest {image}:{tag}: HTTP {resp.status} {data[:200]!r}")
    return 1


def populate(args):
    seed = f"{args.prefix}pag/seed"
    tags_image = f"{args.prefix}pag/tags"
    lock = threading.Lock()
    counters = {"requests": 0, "fallback_uploads": 0, "errors": 0, "first_error": None}
    start = time.monotonic()
    deadline = start + args.deadline

    first = Connection(args.base, args.timeout)
    push_seed(first, seed)
    if args.what == "tags":
        mount(first, tags_image, seed, counters, lock)
    first.close()

    todo = list(range(args.start, args.stop))
    next_index = [0]

    def take():
        with lock:
            if next_index[0] >= len(todo) or counters["errors"] or time.monotonic() > deadline:
                return None
            i = todo[next_index[0]]
            next_index[0] += 1
            return i

    def run():
        conn = Connection(args.base, args.timeout)
        while (i := take()) is not None:
            try:
                if args.what == "tags":
                    n = put_manifest(conn, tags_image, f"t{i:05d}")
                else:
                    image = f"{args.prefix}pag/cat/i{i:05d}"
                    n = mount(conn, image, seed, counters, lock) + put_manifest(conn, image, "v1")
                with lock:
                    counters["requests"] += n
            except Exception as e:  # stop everyone at the first failure: the curve would be wrong anyway
                with lock:
                    counters["errors"] += 1
                    counters["first_error"] = counters["first_error"] or repr(e)
                conn.close()
        conn.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + args.timeout * 2)
    seconds = time.monotonic() - start
    done = next_index[0]
    out = {
        "what": args.what,
        "items": args.stop - args.start,
        "requests": counters["requests"],
        "seconds": round(seconds, 3),
        "requests_per_s": round(counters["requests"] / seconds, 1) if seconds > 0 else 0,
        "fallback_uploads": counters["fallback_uploads"],
        "errors": counters["errors"],
        "first_error": counters["first_error"],
    }
    if not counters["errors"] and done < len(todo):
        out["first_error"] = f"deadline of {args.deadline} s reached after {done} of {len(todo)} items"
    print(json.dumps(out))
    return 0 if counters["errors"] == 0 and done == len(todo) and not any(t.is_alive() for t in threads) else 1


def probe(args):
    u = urllib.parse.urlsplit(args.url)
    target = u.path + ("?" + u.query if u.query else "")
    conn = Connection(args.url, args.timeout)

    def get():
        t0 = time.perf_counter()
        resp, data = conn.request("GET", target)
        ms = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            raise RuntimeError(f"GET {target}: HTTP {resp.status} {data[:200]!r}")
        return ms, data

    for _ in range(args.warmup):
        _, data = get()
    times = []
    start = time.monotonic()
    while len(times) < args.count and (not times or time.monotonic() - start < args.deadline):
        ms, data = get()
        times.append(ms)
    conn.close()
    entries = json.loads(data).get(args.key) or []
    times.sort()
    out = {
        "n": len(times),
        "median_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[max(0, -(-len(times) * 99 // 100) - 1)], 3),
        "entries": len(entries),
        "first": entries[0] if entries else None,
        "last": entries[-1] if entries else None,
        "bytes": len(data),
    }
    print(json.dumps(out))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pop = sub.add_parser("populate")
    pop.add_argument("--base", required=True, help="server base URL, e.g. http://127.0.0.1:5000")
    pop.add_argument("--prefix", default="", help="prepended to every image name, e.g. docker-hosted/")
    pop.add_argument("--what", choices=["tags", "catalog"], required=True)
    pop.add_argument("--start", type=int, required=True)
    pop.add_argument("--stop", type=int, required=True)
    pop.add_argument("--workers", type=int, default=8)
    pop.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout, seconds")
    pop.add_argument("--deadline", type=float, default=600.0, help="give up after this many seconds")
    pr = sub.add_parser("probe")
    pr.add_argument("--url", required=True)
    pr.add_argument("--key", choices=["tags", "repositories"], required=True)
    pr.add_argument("--count", type=int, default=200)
    pr.add_argument("--warmup", type=int, default=3)
    pr.add_argument("--deadline", type=float, default=5.0, help="stop timing after this many seconds")
    pr.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    try:
        return populate(args) if args.command == "populate" else probe(args)
    except Exception as e:
        print(json.dumps({"error": repr(e)}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
