"""Writes docs/results.md, and the results table between the markers in README.md, from the
files in results/ (results/index.json says where each came from), and every benchmark table
in docs/ from the benchmark report its marker names: every number in them is read from a
file, never typed.

    python -m experiments.results_doc            # rewrite both
    python -m experiments.results_doc --check    # exit 1 if either differs from what it would write
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from fvae import files
from fvae.errors import UserError
from fvae.files import read_json

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "results.md"
README = REPO / "README.md"
BEGIN, END = "<!-- results table: written by experiments/results_doc.py -->", "<!-- end of results table -->"
BENCH_BEGIN = re.compile(r"<!-- benchmark table: written by experiments/results_doc.py from (\S+) -->")
BENCH_END = "<!-- end of benchmark table -->"


def _read(path: str):
    return read_json(REPO / path)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _source(entry: dict) -> str:
    return f"Measured {entry['date']} on {entry['cpu']}" + (f" ({entry['software']})" if "software" in entry else "")


def headline_table(index: dict) -> str:
    """The three published models: one row each."""
    rows = []
    for run in index["headline"]["runs"]:
        m = _read(run["metrics"])
        history = [json.loads(line) for line in (REPO / run["history"]).read_text().splitlines() if line.strip()]
        minutes = f"{sum(r['seconds'] for r in history if r['epoch'] <= m['best_epoch']) / 60:.1f}"
        rows.append([f"`{run['config']}`", run["prior"], f"{m['best_epoch']} / {m['epochs_trained']:,}",
                     f"{minutes} ({m['train_seconds'] / 60:.1f})",
                     f"**{m['iwae_nll_k5000']:.2f}** +- {m['iwae_nll_k5000_stderr']:.2f}",
                     f"{m['iwae_bits_per_dim_k5000']:.4f}", f"{m['elbo_loss']:.2f}",
                     f"{m['active_units']}/{m['latents']}", f"{m['linear_probe_accuracy']:.3f}",
                     f"{m['frechet_distance']:.1f}", f"{run['published']:.2f}"])
    return _table(["config", "prior", "epochs (best / run)", "minutes to best (run)", "test -log p(x), K=5000",
                   "bits/dim", "test neg. ELBO", "active units", "probe acc.", "sample Frechet distance",
                   "published"], rows)


def top_down_table(section: dict) -> str:
    """The top-down hierarchical VAEs: one row each, with each group's KL and active units
    (bottom group first) and the goal and floor of issue #34 beside them."""
    rows = []
    for run in section["runs"]:
        m = _read(run["metrics"])
        history = [json.loads(line) for line in (REPO / run["history"]).read_text().splitlines() if line.strip()]
        minutes = f"{sum(r['seconds'] for r in history if r['epoch'] <= m['best_epoch']) / 60:.0f}"
        groups = " / ".join(f"{kl:.1f} ({units})" for kl, units in zip(m["kl_per_group"],
                                                                       m["active_units_per_group"]))
        best = min(m.get("samplers", {}).items(), key=lambda item: item[1]["frechet_distance"], default=None)
        rows.append([f"`{run['config']}`", f"{m['best_epoch']} / {m['epochs_trained']:,}", minutes,
                     f"**{m['iwae_nll_k5000']:.2f}** +- {m['iwae_nll_k5000_stderr']:.2f}", f"{m['elbo_loss']:.2f}",
                     groups, f"{m['frechet_distance']:.1f}",
                     f"{best[1]['frechet_distance']:.1f} ({best[0]})" if best else "n/a"])
    return _table(["config", "epochs (best / run)", "minutes to best", "test -log p(x), K=5000", "test neg. ELBO",
                   "KL per group, bottom first (active units)", "prior's Frechet distance",
                   "best sampler's"], rows)


def _earlier_table(section: dict) -> str:
    rows = []
    for run in section["runs"]:
        m = _read(run["metrics"])
        rows.append([f"`{run['config']}`", run["prior"], f"{m['best_epoch']} / {m['epochs_trained']}",
                     f"{m['train_seconds'] / 60:.1f}", f"{m['elbo_loss']:.2f}", f"**{m['iwae_nll_k5000']:.2f}**",
                     f"{m['iwae_bits_per_dim_k5000']:.4f}", f"{m['active_units']}/{m['latents']}",
                     f"{m['linear_probe_accuracy']:.3f}", f"{run['published']:.2f}"])
    return _table(["config", "prior", "epochs (best / trained)", "training minutes", "test neg. ELBO",
                   "test -log p(x), K=5000", "bits/dim", "active units", "probe acc.", "published"], rows)


def _conv_table(section: dict) -> str:
    rows = []
    for run in section["runs"]:
        m, t = _read(run["metrics"]), _read(run["training"])
        rows.append([f"`{run['config']}`", f"{t['best_epoch']} / {t['epochs_trained']}",
                     f"{t['train_seconds'] / 60:.1f}", f"{m['elbo_loss']:.2f}",
                     f"{m['iwae_nll_k100']:.2f} +- {m['iwae_nll_k100_stderr']:.2f}",
                     f"{m['active_units']}/{m['latents']}", f"{m['linear_probe_accuracy']:.3f}",
                     f"{m['knn5_accuracy']:.3f}"])
    return _table(["config", "epochs (best / trained)", "training minutes", "test neg. ELBO", "test -log p(x), K=100",
                   "active units", "probe acc.", "5-NN acc."], rows)


def _iwae_k_table(section: dict) -> str:
    data = _read(section["file"])
    ks = sorted({int(k.split("_k")[1]) for m in data.values() for k in m
                 if k.startswith("iwae_nll_k") and k.count("_") == 2})
    largest = max(ks)
    rows = []
    for config, m in data.items():
        row = [f"`{config}`"]
        for k in ks:
            if k == largest:
                row.append(f"{m[f'iwae_nll_k{k}']:.2f}")
            else:
                gap = f"iwae_nll_k{k}_minus_k{largest}"
                row.append(f"+{m[gap]:.2f} +- {m[gap + '_stderr']:.2f}")
        rows.append(row)
    return _table(["model", *(f"K={k}" + (" (nats)" if k == largest else " excess") for k in ks)], rows)


def _sample_quality_table(section: dict) -> str:
    """Frechet distance, and precision and recall where the file has them (earlier files do not)."""
    entries = _read(section["file"])
    scored = any("precision" in e for e in entries)
    rows = []
    for entry in entries:
        if "frechet_distance" in entry:
            rows.append([entry["images"], f"{entry['frechet_distance']:.1f}"]
                        + ([f"{entry['precision']:.3f}", f"{entry['recall']:.3f}"] if scored else []))
        elif "accuracy" in entry:
            rows.append([entry["images"], f"accuracy {entry['accuracy']:.4f}"] + ["", ""] * scored)
    return _table(["images", "Frechet distance"] + ["precision", "recall"] * scored, rows)


def _fit_note(fit: dict) -> str:
    """How a sampler's fit ended: its validation log-likelihood of the codes (nats), and the
    mixture's count or the two-stage VAE's gamma."""
    if not fit:
        return ""
    extra = (f", {fit['components']} components" if "components" in fit else
             f", gamma {fit['gamma']:.3f}" if "gamma" in fit else f", best epoch {fit['best_epoch']}")
    return f"{fit['val_log_prob']:.2f}{extra}"


def _stored_tables(section: dict, index: dict) -> str:
    """The stored models' evaluation beside the headline rows, then each one's prior and
    samplers, as scored in the sample-quality file."""
    headline = {r["config"]: _read(r["metrics"]) for r in index["headline"]["runs"]}
    scored = [row for row in _read(index["sample_quality"]["file"]) if "sampler" in row]
    rows, sample_rows = [], []
    for run in section["runs"]:
        m, config = _read(run["metrics"]), run["config"]
        reference = _read(f"results/models/{config}/reference.json")
        earlier = headline.get(config)
        rows.append([f"`{config}`", run["cpu"], f"{reference['step']:,}",
                     f"**{m['iwae_nll_k5000']:.2f}** +- {m['iwae_nll_k5000_stderr']:.2f}", f"{m['elbo_loss']:.2f}",
                     f"{earlier['iwae_nll_k5000']:.2f}" if earlier else "n/a"])
        own = [row for row in scored if row["model"] == config]
        prior = next(row for row in own if row["sampler"] == "prior")
        for row in own:
            sample_rows.append([f"`{config}`", row["sampler"], f"{row['frechet_distance']:.1f}",
                                f"{row['frechet_distance'] / prior['frechet_distance']:.2f}",
                                f"{row['precision']:.3f}", f"{row['recall']:.3f}", _fit_note(row.get("fit", {}))])
    likelihoods = _table(["stored model", "trained and evaluated on", "step", "test -log p(x), K=5000",
                          "test neg. ELBO", "headline row (its CPU)"], rows)
    samples = _table(["stored model", "samples from", "Frechet distance", "/ prior's", "precision", "recall",
                      "fit: validation log-likelihood of the codes"], sample_rows)
    return f"{likelihoods}\n\n{section['samplers_setting']}\n\n{samples}"


def _records_table(section: dict) -> str:
    records = _read(section["file"])
    header = list(records[0])
    header.remove("config")
    header.insert(0, "config")

    def cell(value) -> str:
        if value is None:
            return "n/a"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    return _table(header, [[cell(r.get(k)) for k in header] for r in records])


def _section(title: str, setting: str, source: str, table: str, extra: str = "") -> str:
    return f"## {title}\n\n{setting}\n\n{table}\n\n{source}.{extra}\n"


def results_doc(index: dict) -> str:
    h, e, c = index["headline"], index["earlier"], index["conv"]
    dates = ", ".join(f"`{r['config']}` {r['date']}" for r in h["runs"])
    parts = ["# Results\n\nWritten by `python -m experiments.results_doc` from the files in `results/` "
             "(`results/index.json` says when, where and how each was measured); do not edit by hand. Results are "
             "bit-identical for the same config and seed on the same CPU type, jax build and fvae code, and differ "
             "slightly on another CPU type (every run records its CPU in `versions.json`). The rows here were "
             "trained before the Bernoulli log-likelihood took its one-softplus form (2026-12-06, "
             "docs/performance.md), which changes training's rounding: retraining one now is "
             "no longer bit-identical to it. Evaluating a stored model (below) now moves its estimates by "
             "float32 rounding only (docs/performance.md).\n",
             _section(h["title"], h["setting"], f"Measured on {h['cpu']} ({h['software']}): {dates}. Files: "
                      + ", ".join(f"`{r['metrics']}`" for r in h["runs"]), headline_table(index),
                      "\n\nReproduce a row:\n\n```bash\n" + "\n".join(h["commands"]) + "\n```\n"),
             _section(e["title"], e["setting"], _source({**e, "date": e["runs"][0]["date"]}) + ". Files: "
                      + ", ".join(f"`{r['metrics']}`" for r in e["runs"]), _earlier_table(e)),
             _section(c["title"], c["setting"], _source({**c, "date": c["runs"][0]["date"]}) + ". Files: "
                      + ", ".join(f"`{r['metrics']}`, `{r['training']}`" for r in c["runs"]), _conv_table(c))]
    if "top_down" in index:
        t = index["top_down"]
        parts.append(_section(t["title"], t["setting"], f"Measured on {t['cpu']} ({t['software']}): "
                              + ", ".join(f"`{r['config']}` {r['date']}" for r in t["runs"]) + ". Files: "
                              + ", ".join(f"`{r['metrics']}`, `{r['history']}`" for r in t["runs"]),
                              top_down_table(t), "\n\nReproduce a row:\n\n```bash\n" + "\n".join(t["commands"])
                              + "\n```\n"))
    s = index["stored"]
    stored_dates = ", ".join(f"`{r['config']}` {r['date']}" for r in s["runs"])
    parts.append(_section(s["title"], s["setting"], f"Measured {stored_dates} ({s['software']}). Files: "
                          + ", ".join(f"`{r['metrics']}`" for r in s["runs"]) + f"; command: `{s['command']}`",
                          _stored_tables(s, index)))
    for key, make in (("iwae_k", _iwae_k_table), ("sample_quality", _sample_quality_table),
                      ("sample_quality_before_refit", _sample_quality_table),
                      ("sample_quality_earlier", _sample_quality_table)):
        s = index[key]
        parts.append(_section(s["title"], s["setting"], f"{_source(s)}. File: `{s['file']}`; command: `{s['command']}`",
                              make(s)))
    for s in index["tables"]:
        parts.append(_section(s["title"], s["setting"], f"{_source(s)}. File: `{s['file']}`; command: `{s['command']}`",
                              _records_table(s)))
    return "\n".join(parts)


def _percent(gflops: float | None, peak: float) -> str:
    return "n/a" if gflops is None else f"{100 * gflops / peak:.0f}%"


def size_study_table(report: dict) -> str:
    """The top-down VAE's size study (benchmarks/top_down_sizes.py): one row per size."""
    rows = report["rows"]
    header = ["size", "parameters", "train img/s", "val neg. ELBO after each epoch",
              f"projected hours, {rows[0]['recipe_epochs']:,} epochs", "projected hours, IWAE K=5000 on 10,000"]
    return _table(header, [[r["size"], f"{r['parameters'] / 1e6:.2f}M", f"{r['train_images_per_second']:,.0f}",
                            " / ".join(f"{v:.1f}" for v in r["val_loss"]), f"{r['projected_hours_for_recipe']:.1f}",
                            f"{r['projected_hours_iwae_k5000_test']:.2f}"] for r in rows])


def ablation_table(report: dict) -> str:
    """The top-down VAE's short-run ablation (benchmarks/top_down_ablation.py): one row per run."""
    rows = []
    for r in report["rows"]:
        if "failed" in r:
            rows.append([r["row"], f"stopped in epoch {r['epochs'] + 1}: {r['failed']}", "", "", "", ""])
            continue
        rows.append([r["row"], f"{r['test_neg_elbo']:.2f}", f"{r['test_kl']:.2f}",
                     " / ".join(f"{v:.1f}" for v in r["kl_per_group"]),
                     " / ".join(f"{a}/{n}" for a, n in zip(r["active_units_per_group"], r["latents_per_group"])),
                     f"{100 * r['skipped_fraction']:.2f}%"])
    return _table(["run", "test neg. ELBO", "KL", "KL per group (bottom first)", "active units per group",
                   "steps skipped"], rows)


def _study_markdown(report: dict) -> str:
    table = size_study_table(report) if report["study"] == "top_down_sizes" else ablation_table(report)
    return f"{table}\n\nMeasured {report['date']} on {report['cpu']}, jax {report['versions'].get('jax', '?')}.\n"


def benchmark_markdown(report: dict) -> str:
    """The tables of one `experiments.benchmark` report (benchmark.json), or of a study
    (a report with "study": the top-down VAE's size study or ablation)."""
    if "study" in report:
        return _study_markdown(report)
    peak = report["matmul_peak_gflops"]
    lines = [
        f"Backend {report['backend']} ({report['device']}), {report['date']}, jax {report['jax']}, "
        f"matmul peak {peak:.0f} GFLOP/s ({report.get('matmul_size', 2048)}^3 float32)"
        + (f", CPU {report['cpu']}." if report.get("cpu") else "."),
        "",
        "| config | batch | compile s | MFLOP/img | fast img/s | fast s/epoch | % of peak | "
        "matmuls at model shapes, % of peak | per-step img/s | per-step s/epoch | eval img/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['config']} | {r['batch_size']} | {r['compile_seconds']:.2f} | {r['flops_per_image'] / 1e6:.2f} "
            f"| {r['fast_images_per_second']:,.0f} | {r['fast_seconds_per_epoch']:.2f} | "
            f"{100 * r['fraction_of_peak']:.0f}% | {_percent(r['model_shape_matmul_gflops'], peak)} | "
            f"{r['step_images_per_second']:,.0f} | {r['step_seconds_per_epoch']:.2f} | "
            f"{r['eval_images_per_second']:,.0f} |")
    if report.get("iwae"):
        lines += ["", "IWAE evaluation (as experiments.evaluate runs it):", "",
                  "| config | K | images timed | img/s | seconds per 1,000 images | GFLOP/img | % of peak |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in report["iwae"]:
            lines.append(f"| {r['config']} | {r['iwae_samples']} | {r['images']:,} | {r['images_per_second']:,.1f} | "
                         f"{1000 / r['images_per_second']:.2f} | {r['flops_per_image'] / 1e9:.2f} | "
                         f"{100 * r['fraction_of_peak']:.0f}% |")
    if report.get("peers"):
        lines += ["", "The same models in PyTorch (eager) and Keras 3 on JAX (benchmarks/peers/), trained in "
                  "the same run on the same data and epochs:", "", _peers_table(report["peers"])]
    return "\n".join(lines) + "\n"


def _peers_table(peers: list[dict]) -> str:
    """fvae's training images/s beside each peer's, and over the best peer's, one row per config."""
    names = {"pytorch_eager": "PyTorch eager", "keras_jax": "Keras 3 + JAX"}
    rows: dict[str, dict] = {}
    for p in peers:
        rows.setdefault(p["config"], {"fvae": p["fvae_images_per_second"]})[p["peer"]] = p
    lines = ["| config | fvae img/s | " + " | ".join(f"{v} img/s" for v in names.values()) + " | fvae / best peer |",
             "| --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]
    for config, row in rows.items():
        cells = [f"{row[p]['images_per_second']:,.0f}" if p in row else "" for p in names]
        best = max(row[p]["images_per_second"] for p in names if p in row)
        lines.append(f"| {config} | {row['fvae']:,.0f} | {' | '.join(cells)} | {row['fvae'] / best:.2f} |")
    versions = sorted({f"PyTorch {p['torch']}" if "torch" in p else f"Keras {p['keras']}" for p in peers})
    return "\n".join(lines) + f"\n\nPeers: {', '.join(versions)}."


def with_benchmark_tables(doc: str) -> str:
    """`doc` with each marked benchmark block replaced by the tables of the report it names."""
    out, rest = [], doc
    while (match := BENCH_BEGIN.search(rest)):
        end = rest.index(BENCH_END, match.end())
        out += [rest[:match.end()], "\n" + benchmark_markdown(_read(match.group(1))) + "\n"]
        rest = rest[end:]
    return "".join(out) + rest


def readme_with_table(readme: str, index: dict) -> str:
    """README.md with the headline table (and its source line) between the markers replaced."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    h = index["headline"]
    block = (f"\n{headline_table(index)}\n\n{h['cpu']}, {h['software']}; "
             "details in [docs/results.md](docs/results.md).\n")
    return readme[:start] + block + readme[end:]


def main(argv: list[str]) -> int:
    if {"--help", "-h"} & set(argv):
        print(__doc__)
        return 0
    if unknown := [a for a in argv if a != "--check"]:
        print(f"error: unexpected arguments {unknown}: the only flag is --check", file=sys.stderr)
        return 2
    try:
        return _write_or_check("--check" in argv)
    except (UserError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _write_or_check(check: bool) -> int:
    index = _read("results/index.json")
    wanted = {DOC: results_doc(index), README: readme_with_table(README.read_text(), index)}
    for path in sorted((REPO / "docs").glob("*.md")):
        if path != DOC and BENCH_BEGIN.search(text := path.read_text()):
            wanted[path] = with_benchmark_tables(text)
    if check:
        stale = [p.name for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
        if stale:
            print(f"error: {', '.join(stale)} differ from results/: run python -m experiments.results_doc",
                  file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(exist_ok=True)
    for path, text in wanted.items():
        files.write_text(path, text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
