"""The `xlt` command line (typer). Readable rich tables by default, `--json` for machines.

Why the imports live inside the commands: `xlt languages` or `xlt rank` must answer within a few seconds of a cold
start, so nothing heavy (pandas, LightGBM, FastAPI, dask) is imported until a command needs it. Any bad input
(an `XltError`) or a missing/broken model ends as one line on stderr and exit code 2 — never a traceback.
"""
from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer



def _one_line_errors(run) -> None:
    """Run a click entry point with standalone_mode=False and exit like `xlt` does: usage errors (a non-integer --k, an
    unknown option) as one line on stderr + exit 2, like every other bad input, instead of a multi-line box; help
    screens are unchanged."""
    try:  # typer >= 0.2x vendors click as typer._click; older typer uses click itself
        from typer import _click as click
    except ImportError:  # pragma: no cover
        import click

    try:
        rv = run()
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()
        sys.exit(e.exit_code)
    except click.ClickException as e:
        typer.echo(f"xlt: error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("xlt: aborted", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


class _OneLineUsageErrors(typer.core.TyperGroup):
    """The `xlt` group with one-line usage errors (see `_one_line_errors`)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        _one_line_errors(lambda: super(_OneLineUsageErrors, self).main(args, prog_name, complete_var,
                                                                        standalone_mode=False, **extra))


app = typer.Typer(name="xlt", help="Predict cross-lingual transfer scores (mT5, XLM-R…): rank sources, few-shot "
                                   "curves, SHAP explanations, budget plans, CSV batch, REST API.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=_OneLineUsageErrors)
data_app = typer.Typer(help="The tidy training table.", no_args_is_help=True)
app.add_typer(data_app, name="data")

# ------------------------------------------------------------------------------------------------ helpers
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model id or alias (xlm-r-large, mT5-Base, XLMR…)")]
TaskOpt = Annotated[str, typer.Option("--task", "-t", help="Task id or alias (xnli, PAN-X, udpos…)")]
TargetOpt = Annotated[str, typer.Option("--target", help="Target language (sw, swh, Swahili, swh_Latn…)")]
TaskTypeOpt = Annotated[Optional[str], typer.Option("--task-type", help="Needed for a task xlt does not know")]
SourceOpt = Annotated[Optional[str], typer.Option("--source", "-s", help="Single source language")]
SizeOpt = Annotated[Optional[int], typer.Option("--source-size", help="Source examples (default: task's usual size)")]
ConfigOpt = Annotated[Optional[str], typer.Option("--train-config", help="Mixture 'lang:n;lang:n'")]
KOpt = Annotated[Optional[int], typer.Option("--k", "-k", help="Target-language examples added")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _fail(message: str) -> None:
    """One line on stderr, exit 2."""
    typer.echo(f"xlt: error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(2)


def friendly(fn):
    """Turn XltError / ModelNotReady / missing files into one line + exit 2 (typer's own usage errors also exit 2)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from features.errors import ModelNotReady, XltError
        try:
            return fn(*args, **kwargs)
        except (XltError, ModelNotReady) as e:
            _fail(str(e))
        except FileNotFoundError as e:
            _fail(f"file not found: {e.filename or e}")
        except KeyboardInterrupt:
            typer.echo("xlt: interrupted", err=True)
            raise typer.Exit(130)
    return wrapper


def _predictor():
    from predictor import TransferPredictor
    return TransferPredictor.load()


def _query(model, task, target, task_type=None, source=None, source_size=None, train_config=None, k=None) -> dict:
    q = {"model": model, "task": task, "task_type": task_type, "target": target, "source": source,
         "source_size": source_size, "train_config": train_config, "k": k}
    q = {key: v for key, v in q.items() if v is not None}
    if "source" not in q and "train_config" not in q:
        q["source"] = "en"
    if "source" in q and "train_config" in q:
        _fail("give either --source or --train-config, not both")
    return q


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _clean(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(_clean(obj), default=_json_default, ensure_ascii=False) + "\n")


def _table(title: str, columns: list[str], rows: list[list], caption: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, caption=caption, show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v)) for v in r])
    Console().print(t)


def _write_frame(rows: list[dict], path: Path) -> None:
    """Write records as CSV / Parquet / JSON by the file's extension."""
    import pandas as pd

    df = pd.DataFrame(rows)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    elif suffix == ".json":
        path.write_text(json.dumps(_clean(rows), default=_json_default, ensure_ascii=False, indent=1))
    elif suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        _fail(f"unknown output format {path.suffix!r}: use .csv, .parquet or .json")


def run_command(name: str, args: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run one `xlt` command on its own, e.g. `python -m predictor.evaluate --all` = `xlt evaluate --all`: the same
    typer command, options and one-line errors; exits the process."""
    cmd = typer.main.get_command(app).commands[name]
    _one_line_errors(lambda: cmd.main(args, prog_name or f"xlt {name}", standalone_mode=False))


# ------------------------------------------------------------------------------------------------ pipeline commands
@data_app.command("build")
@friendly
def data_build(raw_dir: Annotated[Optional[Path], typer.Option(help="Raw copies (default: training_data/raw)")] = None,
               out_dir: Annotated[Optional[Path], typer.Option(help="Where to write (default: training_data/)")] = None,
               quiet: Annotated[bool, typer.Option(help="Print only the summary line")] = False):
    """Build training_data/observations.csv from the raw published results (byte-identical on a rebuild)."""
    from training_data import build as b

    raise typer.Exit(b.run(raw_dir or b.RAW_DIR, out_dir or b.OUT_DIR, quiet))


@app.command()
@friendly
def train(observations: Annotated[Optional[Path], typer.Option(help="Observations table (default: "
                                                                      "training_data/observations.csv)")] = None,
          models_dir: Annotated[Optional[Path], typer.Option(help="Where model versions live (default: models/)")] = None,
          folds: Annotated[int, typer.Option(help="Folds per calibration regime (seen / unseen targets)")] = 3):
    """Fit the model on observations.csv, calibrate its intervals per regime, save a verified artifact."""
    from predictor import train as t

    if folds < 2:
        _fail("--folds must be at least 2")
    t.train(observations or t.OBSERVATIONS, models_dir, n_folds=folds)


PROTOCOLS_HELP = ("seen, xpos, langrankplus, langrankplus_strict, sumeval, leave_task_out, langrank, unseen_dataset, "
                  "unseen_family")  # predictor.protocols.ALL_PROTOCOLS (not imported here: it pulls pandas; tested)


@app.command()
@friendly
def evaluate(
        all_: Annotated[bool, typer.Option("--all", help="Run every protocol (the default when no --protocol is "
                                                        "named)")] = False,
        protocol: Annotated[Optional[list[str]], typer.Option(
            "--protocol", help=f"Run this protocol (repeatable): {PROTOCOLS_HELP}. Other protocols' results are kept "
                               "from <out>/accuracy.json")] = None,
        groups: Annotated[Optional[int], typer.Option(
            help="Language groups per fold (default 5; 0 = exact leave-one-target-out)", show_default=False)] = None,
        no_model: Annotated[bool, typer.Option("--no-model", help="Baselines only (leave the product model out)")] = False,
        no_neural: Annotated[bool, typer.Option("--no-neural", help="Leave the torch model out")] = False,
        method: Annotated[Optional[list[str]], typer.Option(
            help="Run only methods whose name contains this text (repeatable, case-insensitive); the others are kept "
                 "from <out>/accuracy.json")] = None,
        jobs: Annotated[Optional[int], typer.Option(
            help="Worker processes for the fits (default: the cores available, at most 2)", show_default=False)] = None,
        observations: Annotated[Optional[Path], typer.Option(
            help="Observations table (default: training_data/observations.csv)")] = None,
        out: Annotated[Optional[Path], typer.Option(help="Report folder (default: reports/)")] = None,
        readme: Annotated[bool, typer.Option("--readme", help="Only rewrite the README's accuracy table from "
                                                             "<out>/accuracy.json (no evaluation)")] = False,
        rerender: Annotated[bool, typer.Option("--rerender", help="Only recompute the headline and rewrite "
                                                                 "accuracy.md/json from the stored results (no "
                                                                 "evaluation)")] = False):
    """Evaluate the predictor and every baseline with grouped cross-validation → <out>/accuracy.md and accuracy.json."""
    if all_ and protocol:
        _fail("give --all or --protocol, not both")
    if readme and rerender:
        _fail("give --readme or --rerender, not both")
    if (readme or rerender) and (protocol or method or all_ or no_model or no_neural or observations
                                 or groups is not None or jobs is not None):
        _fail("--readme and --rerender only read <out>/accuracy.json: they take no other option than --out")
    from predictor import evaluate as E

    out = out or E.REPORTS
    if rerender:
        E.rerender(out)
        return
    if readme:
        E.rewrite_readme(out)
        return
    kw = {} if groups is None else {"groups": groups}
    E.run_evaluation(protocol or (), include_model=not no_model, include_neural=not no_neural, methods=method or (),
                     jobs=jobs, observations=observations, out=out, **kw)


@app.command()
@friendly
def interpret(observations: Annotated[Optional[Path], typer.Option(
                  help="Observations table (default: training_data/observations.csv)")] = None,
              out: Annotated[Optional[Path], typer.Option(help="Report folder (default: reports/)")] = None):
    """Interpretable (OLS) view of which factors drive transfer → <out>/interpretation.md and .json."""
    from predictor import interpret as I

    I.write_interpretation(observations=observations, out=out or I.REPORTS)


@app.command()
def serve(host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port")] = 8000,
          workers: Annotated[Optional[int], typer.Option(help="Worker processes, each with its own copy of the model "
                                                              "(default: the cores but one, at least 1)")] = None,
          max_upload_mb: Annotated[float, typer.Option(help="Largest accepted request body (MB)")] = 50,
          cors: Annotated[Optional[list[str]], typer.Option(help="Allowed CORS origin (repeatable); off by default")] = None,
          keep_alive: Annotated[float, typer.Option(help="Seconds an idle keep-alive connection is kept open")] = 5,
          read_timeout: Annotated[float, typer.Option(help="Seconds a request body may stall before a 408")] = 30,
          log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning"):
    """Start the REST API and web page (uvicorn; N worker processes, each loading the model once at start-up)."""
    import os

    import uvicorn

    from api.dependencies import default_workers

    n = default_workers() if workers is None else workers
    if n < 1:
        _fail("--workers must be >= 1")
    if max_upload_mb <= 0 or keep_alive <= 0 or read_timeout <= 0:
        _fail("--max-upload-mb, --keep-alive and --read-timeout must be > 0")
    # each worker process builds its own app from the import string; the settings reach it through the environment
    os.environ["XLT_MAX_UPLOAD_MB"] = str(max_upload_mb)
    os.environ["XLT_CORS_ORIGINS"] = ",".join(cors or [])
    os.environ["XLT_READ_TIMEOUT_S"] = str(read_timeout)
    typer.echo(f"xlt: serving on http://{host}:{port} with {n} worker{'s' if n > 1 else ''} (docs at /docs)", err=True)
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=n, log_level=log_level,
                access_log=False, timeout_keep_alive=keep_alive, server_header=False, http="httptools")


@app.command()
@friendly
def batch(input: Annotated[Path, typer.Argument(help="Input CSV or Parquet")],
          output: Annotated[Path, typer.Option("--output", "-o", help="Output file: .csv or .parquet (.pq); other "
                                                                       "extensions are refused")],
          engine: Annotated[str, typer.Option(help="local (in-process) or dask")] = "local",
          scheduler: Annotated[Optional[str], typer.Option(help="dask scheduler address (default: in-process "
                                                                "LocalCluster)")] = None,
          partitions: Annotated[int, typer.Option(help="dask partitions per chunk")] = 4,
          chunk_rows: Annotated[int, typer.Option(help="Rows per chunk (bounds memory)")] = 1_000_000,
          progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress",
                                                           help="Progress bar (default: on a terminal or big file)")] = None,
          json_out: JsonOpt = False):
    """Score a CSV/Parquet of queries: adds predicted_score and error ('line N: reason'); good rows always scored."""
    import batch as engine_mod

    if engine not in ("local", "dask"):
        _fail(f"--engine must be 'local' or 'dask', got {engine!r}")
    if chunk_rows < 1:
        _fail("--chunk-rows must be >= 1")
    if engine == "dask":
        stats = engine_mod.run_batch_dask(input, output, scheduler=scheduler, partitions=max(1, partitions),
                                          chunk_rows=chunk_rows, progress=progress)
    else:
        stats = engine_mod.run_batch(input, output, chunk_rows=chunk_rows, progress=progress)
    summary = {"output": str(output), "rows": stats.rows, "scored": stats.scored, "errors": stats.errors,
               "distinct_queries": stats.distinct_queries, "first_errors": stats.first_errors}
    if json_out:
        _print_json(summary)
    else:
        typer.echo(f"xlt batch: {stats.rows:,} rows → {output} ({stats.scored:,} scored, {stats.errors:,} with an "
                   f"error)", err=True)
        for e in stats.first_errors[:3]:
            typer.echo(f"  {e}", err=True)


# ------------------------------------------------------------------------------------------------ questions
@app.command()
@friendly
def predict(model: ModelOpt, task: TaskOpt, target: TargetOpt, source: SourceOpt = None, source_size: SizeOpt = None,
            train_config: ConfigOpt = None, k: KOpt = None, task_type: TaskTypeOpt = None, json_out: JsonOpt = False):
    """Predicted score for one (model, task, training mix, target), with intervals and yardsticks."""
    ans = _predictor().predict_one(_query(model, task, target, task_type, source, source_size, train_config, k))
    if json_out:
        return _print_json(ans)
    q = ans["query"]
    rows = [["this query", q["train_config"], ans["predicted_score"], f"{ans['lower80']:.1f}–{ans['upper80']:.1f}",
             f"{ans['lower90']:.1f}–{ans['upper90']:.1f}"]]
    for name, y in (ans.get("yardsticks") or {}).items():
        if y:
            rows.append([name.replace("_", " "), y["source"], y["predicted_score"], "", ""])
    _table(f"{q['model']} · {q['task']} · target {q['target']} · k={q['k']}",
           ["", "training", "score", "80% interval", "90% interval"], rows)


@app.command()
@friendly
def rank(model: ModelOpt, task: TaskOpt, target: TargetOpt,
         candidates: Annotated[Optional[str], typer.Option(help="Comma-separated sources (default: the model's "
                                                                "pretraining languages)")] = None,
         top: Annotated[Optional[int], typer.Option(help="Show only the best N")] = None,
         source_size: SizeOpt = None, k: KOpt = None, task_type: TaskTypeOpt = None,
         candidate_sizes: Annotated[str, typer.Option(help="assumed: every candidate at --source-size (compares "
                                                           "languages); published: each at its own training-set size "
                                                           "for the task where xlt holds one")] = "assumed",
         output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write CSV/Parquet/JSON")] = None,
         json_out: JsonOpt = False):
    """Rank candidate source languages for a target (score, interval, P(best), top SHAP reasons)."""
    from api.answers import rank_answer

    q = {key: v for key, v in {"model": model, "task": task, "task_type": task_type, "target": target,
                               "source_size": source_size, "k": k, "candidate_sizes": candidate_sizes}.items()
         if v is not None}
    cands = [c.strip() for c in candidates.split(",") if c.strip()] if candidates is not None else None
    ans = rank_answer(_predictor(), q, cands, top)
    if output:
        _write_frame([{**{kk: v for kk, v in s.items() if kk != "reasons"},
                       "reasons": "; ".join(r["text"] for r in s["reasons"] or [])} for s in ans["sources"]], output)
    if json_out:
        return _print_json(ans)
    sized = ans.get("candidate_sizes") == "published"  # the examples column only where they differ per candidate

    def examples(s: dict) -> list[str]:
        return [f"{s['source_size']:,}" + ("" if s["size_published"] else " (assumed)")] if sized else []
    _table(f"Sources for {target} · {task} · {model}",
           ["#", "source", *(["examples"] if sized else []), "score", "80% interval", "P(best)", "why"],
           [[s["rank"], f"{s['name']} ({s['source']})", *examples(s), s["score"],
             f"{s['lower80']:.1f}–{s['upper80']:.1f}", f"{100 * s['p_best']:.0f}%",
             "; ".join(r["text"] for r in s["reasons"] or [])] for s in ans["sources"]])


@app.command()
@friendly
def curve(model: ModelOpt, task: TaskOpt, target: TargetOpt, source: SourceOpt = None, source_size: SizeOpt = None,
          train_config: ConfigOpt = None, task_type: TaskTypeOpt = None,
          ks: Annotated[Optional[str], typer.Option(help="Comma-separated k values")] = None,
          target_score: Annotated[Optional[float], typer.Option(help="Score to reach → k needed")] = None,
          plot: Annotated[Optional[Path], typer.Option(help="Save the curve as PNG/SVG")] = None,
          json_out: JsonOpt = False):
    """Few-shot curve: predicted score as k target-language examples are added, with a + b·ln(1+k) fit."""
    kv = None
    if ks is not None:
        try:
            kv = [int(x) for x in ks.split(",") if x.strip()]
        except ValueError:
            _fail(f"--ks must be comma-separated whole numbers, got {ks!r}")
    if target_score is not None and not (math.isfinite(target_score) and 0 <= target_score <= 100):
        _fail("--target-score must be between 0 and 100")
    ans = _predictor().curve(_query(model, task, target, task_type, source, source_size, train_config), kv, target_score)
    if plot:
        from api import plots
        plot.write_bytes(plots.curve(ans, _fmt(plot)))
    if json_out:
        return _print_json(ans)
    _table(f"Few-shot curve · {ans['query']['train_config']} → {target}", ["k", "score", "80% interval"],
           [[p["k"], p["score"], f"{p.get('lower80', 0):.1f}–{p.get('upper80', 0):.1f}"] for p in ans["points"]],
           caption=f"score ≈ {ans['a']:.2f} + {ans['b']:.2f}·ln(1+k)  (R² {ans['r2']:.3f})"
                   + (f"; k to reach {target_score:g}: {ans['k_to_reach']}" if target_score is not None else ""))


def _fmt(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "svg"):
        _fail(f"--plot must end in .png or .svg, got {path.name!r}")
    return suffix


@app.command()
@friendly
def explain(model: ModelOpt, task: TaskOpt, target: TargetOpt, source: SourceOpt = None, source_size: SizeOpt = None,
            train_config: ConfigOpt = None, k: KOpt = None, task_type: TaskTypeOpt = None,
            plot: Annotated[Optional[Path], typer.Option(help="Save the SHAP waterfall as PNG/SVG")] = None,
            json_out: JsonOpt = False):
    """SHAP explanation of one prediction: base value + one contribution per feature = prediction."""
    from api.answers import explain_answer

    fmt = _fmt(plot) if plot else None
    ans = explain_answer(_predictor(), _query(model, task, target, task_type, source, source_size, train_config, k))
    if plot:
        from api import plots
        plot.write_bytes(plots.waterfall(ans, fmt))
    if json_out:
        return _print_json(ans)
    from rich.markup import escape

    from api.labels import feature_label, model_description, value_text

    q = ans["query"]  # values in natural units (task type = qa, 87,599 examples), never the encoded numbers
    _table(escape(f"Why {q.get('train_config', '')} → {q.get('target', target)} on {q.get('task', task)} "
                  f"({model_description(q.get('model'))}): {ans['predicted_score']:.1f}"),
           ["feature", "value", "SHAP"],
           [[escape(feature_label(c["feature"], c.get("label"))), escape(value_text(c["feature"], c["value"], q)),
             f"{c['shap']:+.3f}"] for c in ans["contributions"] if abs(c["shap"]) > 1e-9],
           caption=f"base value {ans['base_value']:.2f} + contributions = {ans['prediction']:.2f}")


@app.command()
@friendly
def plan(model: ModelOpt, task: TaskOpt,
         target: Annotated[list[str], typer.Option("--target", help="Target language (repeat for several)")],
         candidates: Annotated[str, typer.Option(help="Comma-separated languages you could annotate")],
         budget: Annotated[int, typer.Option(help="Total examples you can afford")],
         steps: Annotated[int, typer.Option(help="Budget is spent in this many parts")] = 20,
         train_config: Annotated[Optional[str], typer.Option(help="The mix you already own, e.g. en:5000")] = None,
         cost: Annotated[Optional[str], typer.Option(help="Cost per example per language, e.g. sw=3,hi=2 "
                                                          "(default 1; the budget is in these units)")] = None,
         task_type: TaskTypeOpt = None, json_out: JsonOpt = False):
    """Data budget planner: how many examples per language maximise the predicted score (vs English-only)."""
    if not 1 <= steps <= 100:
        _fail("--steps must be between 1 and 100")
    cands = [c.strip() for c in candidates.split(",") if c.strip()]
    costs = {}
    for part in (cost or "").split(","):
        if part.strip():
            lang, _, value = part.partition("=")
            try:
                costs[lang.strip()] = float(value)
            except ValueError:
                _fail(f"--cost entry {part.strip()!r} is not lang=number")
    q = {"model": model, "task": task, "task_type": task_type, "target": target if len(target) > 1 else target[0],
         "train_config": train_config}
    from api.answers import with_task_type

    ans = _predictor().plan(with_task_type(q), cands, budget, steps=steps, costs=costs or None)
    if json_out:
        return _print_json(ans)
    _table(f"Plan for {budget:,} examples → {', '.join(ans['targets'])}", ["language", "examples"],
           [[f"{r['name']} ({r['language']})", f"{r['examples']:,}"] for r in ans["plan"]],
           caption=f"predicted {ans['predicted_score']:.1f} vs English-only {ans['english_only_score']:.1f} "
                   f"(gain {ans['gain_over_english']:+.1f}); 100 more examples buy: "
                   + ", ".join(f"{r['language']} {r['gain']:+.2f}" for r in ans["next_100"][:5]))


# ------------------------------------------------------------------------------------------------ registries
@app.command()
@friendly
def languages(search: Annotated[Optional[str], typer.Option("--search", "-s", help="Code, name or part of one")] = None,
              limit: Annotated[int, typer.Option(help="At most this many")] = 30, json_out: JsonOpt = False):
    """Languages xlt resolves (ISO 639-1/2/3, BCP-47, Flores-200, English names)."""
    from features.languages import all_languages, search as find

    found = find(search, limit=limit) if search else all_languages()[:limit]
    rows = [{"code": l.code, "name": l.name, "script": l.script, "iso1": l.iso1} for l in found]
    if json_out:
        return _print_json(rows)
    if not rows:
        _fail(f"no language matches {search!r}")
    _table(f"Languages{f' matching {search!r}' if search else ''}", ["code", "name", "script", "iso1"],
           [[r["code"], r["name"], r["script"], r["iso1"]] for r in rows])


@app.command()
@friendly
def models(json_out: JsonOpt = False):
    """Models xlt knows, with aliases, parameter counts and pretraining corpus."""
    from features import registry

    rows = [{"id": m.id, "family": m.family, "n_params": m.n_params, "corpus": m.corpus, "aliases": list(m.aliases)}
            for m in registry.models()]
    if json_out:
        return _print_json(rows)
    _table("Models", ["id", "family", "parameters", "corpus", "aliases"],
           [[r["id"], r["family"], f"{r['n_params'] / 1e6:,.0f}M" if r["n_params"] else "unknown", r["corpus"],
             ", ".join(r["aliases"])] for r in rows])


@app.command()
@friendly
def tasks(json_out: JsonOpt = False):
    """Tasks xlt knows, with type, metric and usual English training-set size."""
    from features import registry

    rows = [{"id": t.id, "task_type": t.task_type, "metric": t.metric, "train_size": t.train_size,
             "aliases": list(t.aliases)} for t in registry.tasks()]
    if json_out:
        return _print_json(rows)
    _table("Tasks", ["id", "type", "metric", "train size", "aliases"],
           [[r["id"], r["task_type"], r["metric"], f"{r['train_size']:,}" if r["train_size"] else "", ", ".join(r["aliases"])]
            for r in rows], caption=f"task types: {', '.join(registry.TASK_TYPES)}")


# ------------------------------------------------------------------------------------------------ scale
@app.command("all-pairs")
@friendly
def all_pairs(model: ModelOpt, task: TaskOpt,
              output: Annotated[Path, typer.Option("--output", "-o", help="Output .parquet (or .csv)")],
              task_type: TaskTypeOpt = None, source_size: SizeOpt = None, k: KOpt = None,
              languages_: Annotated[Optional[str], typer.Option("--languages", help="Comma-separated subset "
                                                                "(default: every language the features cover)")] = None,
              chunk_rows: Annotated[int, typer.Option(help="Pairs per chunk (bounds memory)")] = 500_000,
              engine: Annotated[str, typer.Option(help="local or dask")] = "local",
              scheduler: Annotated[Optional[str], typer.Option(help="dask scheduler address")] = None,
              workers: Annotated[Optional[int], typer.Option(help="Worker processes for the local engine "
                                                                  "(default: the number of cores)")] = None,
              progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress")] = None,
              json_out: JsonOpt = False):
    """Predicted score for every ordered (source, target) pair of languages, chunked with bounded memory."""
    from api import allpairs
    from api.dependencies import cores

    if workers is not None and workers < 1:
        _fail("--workers must be >= 1")
    if engine not in ("local", "dask"):
        _fail(f"--engine must be 'local' or 'dask', got {engine!r}")
    langs = [c.strip() for c in languages_.split(",") if c.strip()] if languages_ else None
    stats = allpairs.run_all_pairs(model, task, output, task_type=task_type, source_size=source_size, k=k,
                                   languages=langs, chunk_rows=chunk_rows, engine=engine, scheduler=scheduler,
                                   progress=progress, workers=cores() if workers is None else workers)
    if json_out:
        return _print_json(stats)
    typer.echo(f"xlt all-pairs: {stats['pairs']:,} pairs over {stats['languages']} languages → {output} "
               f"in {stats['seconds']:.1f}s", err=True)


if __name__ == "__main__":
    app()
