#!/usr/bin/env python3
"""Turn the raw samples written by bench/run.sh into a Markdown table and a JSON file.

Inputs (in --raw DIR):
  samples.tsv  figure<TAB>server<TAB>round<TAB>value   one line per measurement
  meta.tsv     key<TAB>value                            machine, configuration, versions
  notes.txt    free text, one note per line             failures, upload modes, caveats

Each figure is reported as median (min-max) over the rounds, plus Berth/distribution
as a ratio of medians. Standard library only.
"""

import argparse
import json
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
    ("push_mono_vs_sha256", "Monolithic push / one-core sha256", "fraction", "higher"),
]


def read_inputs(raw):
    samples = defaultdict(lambda: defaultdict(list))
    with open(f"{raw}/samples.tsv") as f:
        for line in f:
            fig, server, rnd, value = line.rstrip("\n").split("\t")
            samples[fig][server].append(float(value))
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
    return samples, meta, notes


def add_derived(samples, meta):
    """Monolithic push throughput relative to what one core can hash (a server must hash every byte)."""
    sha = float(meta.get("sha256_mib_s") or 0)
    if sha > 0:
        for server, values in samples.get("push_mono", {}).items():
            samples["push_mono_vs_sha256"][server] = [v / sha for v in values]


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


def build(samples, meta, notes):
    labels = {
        "blob": meta.get("blob_mib", "?"),
        "chunk": meta.get("chunk_mib", "?"),
        "range": meta.get("range_mib", "?"),
        "small": meta.get("small_count", "?"),
        "conns": meta.get("wrk_connections", "?"),
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
        "config": {k: meta[k] for k in sorted(meta) if k.startswith(("rounds", "blob_", "chunk_", "range_", "wrk_", "small_", "quick"))},
        "versions": {k[len("version_"):]: v for k, v in meta.items() if k.startswith("version_")},
        "sha256_one_core_mib_s": float(meta["sha256_mib_s"]) if meta.get("sha256_mib_s") else None,
        "figures": figures,
        "notes": notes,
    }


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
    out += [
        "",
        "Cells: median (min–max) over rounds. Berth/dist is the ratio of medians; "
        "whether higher or lower is better is in the unit column.",
        "",
        "| Figure | Unit | Berth | distribution | Berth/dist | nginx |",
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
    if doc["notes"]:
        out += ["", "Notes:", ""] + [f"- {n}" for n in doc["notes"]]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--raw", required=True, help="directory with samples.tsv, meta.tsv, notes.txt")
    p.add_argument("--md", required=True)
    p.add_argument("--json", required=True)
    args = p.parse_args()

    samples, meta, notes = read_inputs(args.raw)
    add_derived(samples, meta)
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
