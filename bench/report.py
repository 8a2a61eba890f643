#!/usr/bin/env python3
"""Turn the raw samples written by bench/run.sh into a Markdown table and a JSON file.

Inputs (in --raw DIR):
  samples.tsv  figure<TAB>server<TAB>round<TAB>value   one line per measurement
  meta.tsv     key<TAB>value                            machine, configuration, versions
  notes.txt    free text, one note per line             failures, upload modes, caveats

Each figure is reported as median (min-max) over the rounds, plus Berth/distribution
as a ratio of medians. The pagination samples (page_<kind>_<total>_<stat>, populate_<kind>_<total>)
make a separate curve table: page time against the number of tags or images. Standard library only.
"""

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict

SERVERS = ["berth", "distribution", "nginx"]

# (id, label, unit, which way is better). Labels may use {blob}, {chunk}, {range}, {small}, {conns}.
FIGURES = [
    ("push_mono", "Blob push, monolithic ({blob} MiB)", "MiB/s", "higher"),
    ("push_chunked", "Blob push, {chunk} MiB chunks ({blob} MiB)", "MiB/s", "higher"),
    ("pull", "Blob pull ({blob} MiB)", "MiB/s", "higher"),
    ("pull_range", "Range pull ({range} MiB, 5 in a row)", "MiB/s", "higher"),
    ("wrk_manifest_get_rps", "Manifest GET by tag, {conns} conns", "req/s", "higher"),
    ("wrk_manifest_get_p99", "Manifest GET by tag, p99", "ms", "lower"),
    ("hey_manifest_head_rps", "Manifest HEAD by digest, {conns} conns (hey)", "req/s", "higher"),
    ("hey_manifest_head_p99", "Manifest HEAD by digest, p99 (hey)", "ms", "lower"),
    ("wrk_tags_rps", "Tags list GET, {conns} conns", "req/s", "higher"),
    ("wrk_tags_p99", "Tags list GET, p99", "ms", "lower"),
    ("wrk_base_rps", "GET /v2/, {conns} conns", "req/s", "higher"),
    ("wrk_base_p99", "GET /v2/, p99", "ms", "lower"),
    ("tls_manifest_get_rps", "TLS: manifest GET by tag, {conns} conns", "req/s", "higher"),
    ("tls_manifest_get_p99", "TLS: manifest GET by tag, p99", "ms", "lower"),
    ("tls_base_rps", "TLS: GET /v2/, {conns} conns", "req/s", "higher"),
    ("tls_base_p99", "TLS: GET /v2/, p99", "ms", "lower"),
    ("tls_static_rps", "TLS: static small file (reference), {conns} conns", "req/s", "higher"),
    ("tls_static_p99", "TLS: static small file (reference), p99", "ms", "lower"),
    ("tls_manifest_vs_nginx", "TLS: manifest GET req/s / nginx TLS static req/s", "fraction", "higher"),
    ("tls_manifest_vs_plain", "TLS: manifest GET req/s over TLS / over plain HTTP", "fraction", "higher"),
    ("wrk_static_rps", "Static small file (reference), {conns} conns", "req/s", "higher"),
    ("wrk_static_p99", "Static small file (reference), p99", "ms", "lower"),
    ("hey_static_head_rps", "Static small file HEAD (reference), {conns} conns (hey)", "req/s", "higher"),
    ("hey_static_head_p99", "Static small file HEAD (reference), p99 (hey)", "ms", "lower"),
    ("small_push", "{small} x 4 KiB blob pushes, 16 workers", "ops/s", "higher"),
    ("cpu_push_mono", "Server CPU, monolithic push", "CPU s/GiB", "lower"),
    ("cpu_push_chunked", "Server CPU, chunked push", "CPU s/GiB", "lower"),
    ("cpu_pull", "Server CPU, pull", "CPU s/GiB", "lower"),
    ("cpu_small", "Server CPU, 4 KiB blob push", "CPU ms/op", "lower"),
    ("rss_push", "Peak RSS, blob pushes", "MiB", "lower"),
    ("rss_pull", "Peak RSS, blob pulls", "MiB", "lower"),
    ("rss_wrk", "Peak RSS, wrk phase", "MiB", "lower"),
    ("rss_small", "Peak RSS, small-blob pushes", "MiB", "lower"),
    ("rss_tls", "Peak RSS, TLS wrk phase", "MiB", "lower"),
    ("rss_slow", "Peak RSS, {slow_readers} pulls at --limit-rate {slow_rate} + {slow_writers} pushes, {slow_mib} MiB", "MiB", "lower"),
    ("rss_slow_start", "RSS before the slow-client scenario", "MiB", "lower"),
    ("slow_seconds", "Slow-client scenario, wall time (rate limit alone: {slow_ideal} s)", "s", "lower"),
    ("push_mono_vs_sha256", "Monolithic push / one-core sha256", "fraction", "higher"),
    ("dd_write", "Reference: dd writes the blob to a new file with fsync ({blob} MiB)", "MiB/s", "higher"),
    ("push_mono_vs_dd", "Monolithic push / dd write to a new file (same round)", "fraction", "higher"),
]


def read_inputs(raw):
    samples = defaultdict(lambda: defaultdict(list))
    by_round = defaultdict(lambda: defaultdict(dict))
    with open(f"{raw}/samples.tsv") as f:
        for line in f:
            fig, server, rnd, value = line.rstrip("\n").split("\t")
            samples[fig][server].append(float(value))
            by_round[fig][server][rnd] = float(value)
    meta = {}
    with open(f"{raw}/meta.tsv") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            meta[key] = value
    try:
        with open(f"{raw}/notes.txt") as f:
            notes = [n.strip() for n in f if n.strip()]
    except FileNotFoundError:
        notes = []
    return samples, by_round, meta, notes


def per_round_ratio(by_round, num, num_server, den, den_server):
    """num/den for every round in which both were measured."""
    a, b = by_round.get(num, {}).get(num_server, {}), by_round.get(den, {}).get(den_server, {})
    return [a[r] / b[r] for r in sorted(a) if r in b and b[r]]


def add_derived(samples, by_round, meta):
    """Monolithic push throughput relative to what one core can hash (a server must hash every byte) and to
    dd writing the same bytes to a new file in the same round (a server must store every byte); manifest GET over TLS relative to nginx's static file over TLS, and to the same GET without TLS."""
    sha = float(meta.get("sha256_mib_s") or 0)
    if sha > 0:
        for server, values in samples.get("push_mono", {}).items():
            samples["push_mono_vs_sha256"][server] = [v / sha for v in values]
    for server in ("berth", "distribution"):
        vs_dd = per_round_ratio(by_round, "push_mono", server, "dd_write", "nginx")
        if vs_dd:
            samples["push_mono_vs_dd"][server] = vs_dd
        vs_nginx = per_round_ratio(by_round, "tls_manifest_get_rps", server, "tls_static_rps", "nginx")
        if vs_nginx:
            samples["tls_manifest_vs_nginx"][server] = vs_nginx
        vs_plain = per_round_ratio(by_round, "tls_manifest_get_rps", server, "wrk_manifest_get_rps", server)
        if vs_plain:
            samples["tls_manifest_vs_plain"][server] = vs_plain


def summarize(values):
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "samples": values,
    }


def fmt(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(summary):
    if summary is None:
        return "–"
    if summary["n"] == 1:
        return fmt(summary["median"])
    return f"{fmt(summary['median'])} ({fmt(summary['min'])}–{fmt(summary['max'])})"


def slow_ideal(meta):
    """Seconds one rate-limited reader needs for the blob (curl's K/M/G suffixes are powers of 1024)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)", meta.get("slow_rate", ""))
    if not m or not meta.get("slow_mib"):
        return "?"
    rate = float(m.group(1)) * 1024 ** " kmg".index(m.group(2).lower() or " ")
    return f"{int(meta['slow_mib']) * 1048576 / rate:.1f}"


def pagination(samples, meta):
    """The curve: for each total, the page time of tags/list and _catalog on each registry."""
    pattern = re.compile(r"page_(tags|catalog)_(\d+)_(median|p99|entries)$")
    found = defaultdict(dict)
    for fig in samples:
        m = pattern.match(fig)
        if m:
            found[int(m.group(2))][(m.group(1), m.group(3))] = samples[fig]
    if not found:
        return None
    rows = []
    for total in sorted(found):
        row = {"total": total}
        for kind in ("tags", "catalog"):
            for server in ("berth", "distribution"):
                cell = {}
                for stat in ("median", "p99", "entries"):
                    values = found[total].get((kind, stat), {}).get(server)
                    if values:
                        cell[stat if stat == "entries" else f"{stat}_ms"] = summarize(values)
                row[f"{server}_{kind}"] = cell or None
        rows.append(row)
    growth = {}
    first, last = rows[0], rows[-1]
    for key in ("berth_tags", "distribution_tags", "berth_catalog", "distribution_catalog"):
        a, b = first.get(key), last.get(key)
        if a and b and len(rows) > 1 and a["median_ms"]["median"]:
            growth[key] = b["median_ms"]["median"] / a["median_ms"]["median"]
    populate = defaultdict(dict)
    for fig, per_server in samples.items():
        m = re.match(r"populate_(tags|catalog)_(\d+)$", fig)
        if m:
            for server, values in per_server.items():
                populate[server].setdefault(m.group(1), {})[int(m.group(2))] = sum(values)
    populate_total = {
        server: {kind: {"total": max(steps), "seconds": round(sum(steps.values()), 2)} for kind, steps in kinds.items()}
        for server, kinds in populate.items()
    }
    return {
        "page_size": int(meta.get("page_n", 100)),
        "requests_per_probe": int(meta.get("page_requests", 0)),
        "probe_deadline_s": float(meta.get("page_deadline", 0)),
        "rows": rows,
        "growth_first_to_last_total": growth,
        "populate": populate_total,
    }


def build(samples, meta, notes):
    labels = {
        "blob": meta.get("blob_mib", "?"),
        "chunk": meta.get("chunk_mib", "?"),
        "range": meta.get("range_mib", "?"),
        "small": meta.get("small_count", "?"),
        "conns": meta.get("wrk_connections", "?"),
        "slow_readers": meta.get("slow_readers", "?"),
        "slow_writers": meta.get("slow_writers", "?"),
        "slow_rate": meta.get("slow_rate", "?"),
        "slow_mib": meta.get("slow_mib", "?"),
        "slow_ideal": slow_ideal(meta),
    }
    figures = []
    for fid, label, unit, better in FIGURES:
        if fid not in samples:
            continue
        results = {s: summarize(samples[fid][s]) for s in SERVERS if samples[fid].get(s)}
        ratio = None
        if "berth" in results and "distribution" in results and results["distribution"]["median"]:
            ratio = results["berth"]["median"] / results["distribution"]["median"]
        figures.append({
            "id": fid,
            "label": label.format(**labels),
            "unit": unit,
            "better": better,
            "results": results,
            "berth_over_distribution": ratio,
        })
    return {
        "date": meta.get("date"),
        "machine": {
            "nproc": int(meta.get("nproc", 0)),
            "cpu_model": meta.get("cpu_model"),
            "kernel": meta.get("kernel"),
            "mem_total_mib": int(meta.get("mem_total_mib", 0)),
            "busy_percent_at_start": int(meta["busy_percent_at_start"]) if meta.get("busy_percent_at_start") else None,
        },
        "config": {k: meta[k] for k in sorted(meta)
                   if k.startswith(("rounds", "blob_", "chunk_", "range_", "wrk_", "small_", "quick", "parts",
                                    "tls_seconds", "slow_", "page_", "warm_pages"))},
        "tls": {k[len("tls_"):]: v for k, v in meta.items() if k.startswith("tls_") and k != "tls_seconds"},
        "seconds": {k[len("seconds_"):]: int(v) for k, v in meta.items() if k.startswith("seconds_")},
        "versions": {k[len("version_"):]: v for k, v in meta.items() if k.startswith("version_")},
        "sha256_one_core_mib_s": float(meta["sha256_mib_s"]) if meta.get("sha256_mib_s") else None,
        "figures": figures,
        "pagination": pagination(samples, meta),
        "notes": notes,
    }


def curve_cell(cell):
    """Page time: median of the rounds' medians (min–max), then the median of the rounds' p99s."""
    if not cell or "median_ms" not in cell:
        return "–"
    text = cell_ms(cell["median_ms"])
    if "p99_ms" in cell:
        text += f"; p99 {fmt(cell['p99_ms']['median'])}"
    return text


def cell_ms(summary):
    return cell(summary) + " ms"


def pagination_markdown(p, c):
    n = p["page_size"]
    out = [
        "",
        f"## Pagination: one page (n={n}) from the middle",
        "",
        f"`GET /v2/<image>/tags/list?n={n}&last=<tag>` on one image with that many tags, and "
        f"`GET /v2/_catalog?n={n}&last=<image>` with that many images (plus the bench's few others); `last` is "
        f"entry number total/2 − {n // 2} (the first entry at a total of {n}), so the page is full and centred on the middle. "
        f"Cells: page time, median of the rounds' medians (min–max), then the median p99; each round times up to "
        f"{p['requests_per_probe']} sequential requests on one keep-alive connection (at most {p['probe_deadline_s']:g} s).",
        "",
        "| Total | Berth tags | distribution tags | Berth catalog | distribution catalog |",
        "|---|---|---|---|---|",
    ]
    for row in p["rows"]:
        out.append(f"| {row['total']:,} | " + " | ".join(
            curve_cell(row.get(k)) for k in ("berth_tags", "distribution_tags", "berth_catalog", "distribution_catalog")) + " |")
    if p["growth_first_to_last_total"]:
        first, last = p["rows"][0]["total"], p["rows"][-1]["total"]
        g = p["growth_first_to_last_total"]
        out.append(f"| {last:,} ÷ {first:,} | " + " | ".join(
            f"{g[k]:.2f}×" if k in g else "–" for k in ("berth_tags", "distribution_tags", "berth_catalog", "distribution_catalog")) + " |")
    short = []
    for row in p["rows"]:
        for key in ("berth_tags", "distribution_tags", "berth_catalog", "distribution_catalog"):
            entries = (row.get(key) or {}).get("entries")
            if entries and entries["max"] > n:
                short.append(f"{key.replace('_', ' ')} at {row['total']:,}: {entries['max']:.0f} entries")
    if short:
        out += ["", f"Pages longer than n={n} (the server ignores `n`/`last`): " + "; ".join(short) + "."]
    if p["populate"]:
        parts = []
        for server in ("berth", "distribution"):
            kinds = p["populate"].get(server)
            if kinds:
                parts.append(f"{server} " + ", ".join(
                    f"{v['total']:,} {'tags' if k == 'tags' else 'images'} in {fmt(v['seconds'])} s" for k, v in sorted(kinds.items(), reverse=True)))
        out += ["", f"Populating through the registry API ({c.get('page_workers', '?')} threads, keep-alive; one manifest PUT "
                "per tag, a cross-repository mount and a manifest PUT per image): " + "; ".join(parts) + "."]
    return out


def markdown(doc):
    m, c = doc["machine"], doc["config"]
    out = [
        "# Berth vs distribution benchmark",
        "",
        f"- Date: {doc['date']}",
        f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['mem_total_mib']} MiB RAM, kernel {m['kernel']}",
        f"- Rounds: {c.get('rounds')}, blob {c.get('blob_mib')} MiB, chunks {c.get('chunk_mib')} MiB, "
        f"wrk {c.get('wrk_threads')} threads x {c.get('wrk_connections')} conns x {c.get('wrk_seconds')} s"
        + (" (QUICK smoke run: not representative)" if c.get("quick") == "1" else ""),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(doc["versions"].items())),
    ]
    if doc["sha256_one_core_mib_s"]:
        out.append(f"- One-core sha256 (openssl speed -evp sha256, 16 KiB): {fmt(doc['sha256_one_core_mib_s'])} MiB/s")
    if c.get("warm_pages") == "1":
        out.append("- Page cache recycled before each timed blob write (BENCH_WARM_PAGES=1, see bench/run.sh)")
    elif c.get("warm_pages") == "0":
        out.append("- Blob writes land in cold memory (BENCH_WARM_PAGES=0)")
    if c.get("parts") and c["parts"] != "core,tls,slow,pagination":
        out.append(f"- Parts run: {c['parts']}")
    if doc["tls"]:
        out.append(f"- TLS (self-signed ECDSA P-256, wrk {c.get('tls_seconds')} s per figure): "
                   + ", ".join(f"{k} {v}" for k, v in sorted(doc["tls"].items())))
    if doc["seconds"]:
        out.append("- Duration: " + ", ".join(f"{k} {v} s" for k, v in sorted(doc["seconds"].items())))
    out += [
        "",
        "Cells: median (min–max) over rounds. Berth/dist is the ratio of medians; "
        "whether higher or lower is better is in the unit column.",
        "",
        "| Figure | Unit | Berth | distribution | Berth/dist | nginx or reference |",
        "|---|---|---|---|---|---|",
    ]
    for f in doc["figures"]:
        r = f["results"]
        arrow = "↑" if f["better"] == "higher" else "↓"
        ratio = f"{f['berth_over_distribution']:.2f}×" if f["berth_over_distribution"] is not None else "–"
        out.append(
            f"| {f['label']} | {f['unit']} {arrow} | {cell(r.get('berth'))} | {cell(r.get('distribution'))} "
            f"| {ratio} | {cell(r.get('nginx'))} |"
        )
    if doc["pagination"]:
        out += pagination_markdown(doc["pagination"], c)
    if doc["notes"]:
        out += ["", "Notes:", ""] + [f"- {n}" for n in doc["notes"]]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--raw", required=True, help="directory with samples.tsv, meta.tsv, notes.txt")
    p.add_argument("--md", required=True)
    p.add_argument("--json", required=True)
    args = p.parse_args()

    samples, by_round, meta, notes = read_inputs(args.raw)
    add_derived(samples, by_round, meta)
    doc = build(samples, meta, notes)
    md = markdown(doc)
    with open(args.md, "w") as f:
        f.write(md)
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
