"""``streamnlp model ...``: build, evaluate and extend the label model.

``eval`` needs only the runtime; ``add-head`` adds onnx and tqdm (in the ``dev`` and ``train`` extras);
``build`` imports torch lazily. Each says how to get what it lacks.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
from pathlib import Path

import click

from streamnlp._cli import ErrorBoundary
from streamnlp.model.manifest import DEFAULT_MODEL_DIR, MANIFEST, read_json, resolve_model_dir

STOP_STAGES = ("teacher", "student", "export", "package", "report")


def _model_dir(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """--model: the shipped model is found from any working directory (see resolve_model_dir)."""
    path = resolve_model_dir(value)
    if not path.is_dir():
        raise click.BadParameter(f"directory {str(value)!r} does not exist", ctx, param)
    return path


def _require(modules: tuple[str, ...], what: str, extra: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(
            f"missing {what} dependencies ({', '.join(missing)}): pip install -e '.[{extra}]'"
        )


def _require_training_deps() -> None:
    _require(("torch", "onnx", "safetensors", "tqdm"), "training", "train")


def _require_add_head_deps() -> None:
    """add-head trains in numpy on features from onnxruntime: it needs onnx and tqdm, never torch."""
    _require(("onnx", "tqdm"), "add-head", "dev")


@click.group("model", cls=ErrorBoundary)
def model() -> None:
    """Build, evaluate and extend the sentiment/intent model."""


@model.command("build")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file overriding BuildConfig fields ([teacher_schedule], [student_schedule], [student]).",
)
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Labelled training data (default ../shared/data).",
)
@click.option(
    "--eval-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Public test splits, reported on only (default ../shared/eval).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Checkpoints and fp32/teacher ONNX (default build/model; stages found there are reused).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Shipped model directory (default {DEFAULT_MODEL_DIR}).",
)
@click.option(
    "--stop-after",
    type=click.Choice(STOP_STAGES),
    default="report",
    show_default=True,
    help="Last stage to run.",
)
@click.option("--max-steps", type=int, default=0, help="Cap training steps per stage (smoke builds).")
def build_cmd(
    config_path: Path | None,
    data_dir: Path | None,
    eval_dir: Path | None,
    work_dir: Path | None,
    out_dir: Path | None,
    stop_after: str,
    max_steps: int,
) -> None:
    """MiniLM -> multi-task teacher -> distilled grouped SqueezeBERT -> int8 ONNX -> report and model card.

    Runs on CPU with progress bars; the default schedule takes about an hour on 2 cores.
    """
    _require_training_deps()
    from streamnlp.model.build.config import BuildConfig
    from streamnlp.model.build.pipeline import build

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = BuildConfig()
    if config_path is not None:
        cfg = cfg.with_overrides(config_path)
    given = {"data_dir": data_dir, "eval_dir": eval_dir, "work_dir": work_dir, "out_dir": out_dir}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None})
    if max_steps:
        cfg = dataclasses.replace(
            cfg,
            teacher_schedule=dataclasses.replace(cfg.teacher_schedule, max_steps=max_steps),
            student_schedule=dataclasses.replace(cfg.student_schedule, max_steps=max_steps),
        )
    build(cfg, stop_after=stop_after)


@model.command("eval")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with 'text' and 'label' columns.",
)
@click.option("--head", required=True, help="Head to score, e.g. sentiment, intent_banking.")
@click.option(
    "--model",
    "model_dir",
    default=DEFAULT_MODEL_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory.",
    callback=_model_dir,
)
@click.option(
    "--restrict-to-gold",
    is_flag=True,
    help="Only choose among labels present in the CSV (e.g. binary sentiment sets without neutral).",
)
@click.option("--worst", default=10, show_default=True, help="How many confusions to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_cmd(
    data: Path, head: str, model_dir: Path, restrict_to_gold: bool, worst: int, as_json: bool
) -> None:
    """Accuracy, macro-F1, macro-recall and the worst confusions of one head on a labelled CSV."""
    from streamnlp.model.evaluate import evaluate_csv
    from streamnlp.model.runtime import LabelModel

    runtime = LabelModel.load(model_dir)
    result = evaluate_csv(runtime, data, head, restrict_to_gold=restrict_to_gold, worst=worst)
    report = result.report
    if as_json:
        payload = report.to_dict() | {"confusions": report.confusions, "model": runtime.version, "head": head}
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"model {runtime.name} {runtime.version}  head {head}  rows {report.n}")
    click.echo(f"accuracy      {report.accuracy:.4f}")
    click.echo(f"macro-F1      {report.macro_f1:.4f}")
    click.echo(f"macro-recall  {report.macro_recall:.4f}")
    if report.oos_recall is not None:
        click.echo(f"in-scope acc  {report.in_scope_accuracy:.4f}")
        click.echo(f"oos recall    {report.oos_recall:.4f}")
    if result.unknown_gold:
        click.echo(f"gold labels this head cannot produce (always wrong): {', '.join(result.unknown_gold)}")
    if report.confusions:
        click.echo("worst confusions (gold -> predicted: count):")
        for gold_label, pred_label, n in report.confusions:
            click.echo(f"  {gold_label} -> {pred_label}: {n}")


@model.command("add-head")
@click.option("--name", required=True, help="New head name (identifier), e.g. intent_medical.")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Training CSV with 'text' and 'label' columns.",
)
@click.option(
    "--model",
    "model_dir",
    default=DEFAULT_MODEL_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model to extend.",
    callback=_model_dir,
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the new model version (default: replace --model in place).",
)
@click.option(
    "--holdout", default=0.1, show_default=True, help="Fraction of rows held out to report accuracy."
)
def add_head_cmd(name: str, data: Path, model_dir: Path, out_dir: Path | None, holdout: float) -> None:
    """Train a new intent head on your CSV (frozen encoder features, minutes on CPU); write a new version."""
    _require_add_head_deps()
    from streamnlp.model.build.addhead import add_head

    report = add_head(model_dir, name, data, out_dir or model_dir, holdout=holdout)
    click.echo(
        f"head {report.name}: {len(report.labels)} labels, {report.n_train} training rows, "
        f"held-out accuracy {report.holdout_accuracy:.4f} on {report.n_holdout} rows; "
        f"wrote version {report.version} to {out_dir or model_dir}"
    )


@model.command("info")
@click.option(
    "--model",
    "model_dir",
    default=DEFAULT_MODEL_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory.",
    callback=_model_dir,
)
def info_cmd(model_dir: Path) -> None:
    """Verify a model directory against its manifest and print name, version and heads."""
    from streamnlp.model.runtime import LabelModel

    runtime = LabelModel.load(model_dir)
    manifest = read_json(model_dir / MANIFEST)
    click.echo(
        f"{runtime.name} {runtime.version} "
        f"(max_length {runtime.max_length}, created {manifest.get('created')})"
    )
    for head, labels in runtime.heads.items():
        click.echo(f"  {head}: {len(labels)} labels")


@model.command("check")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--profile-heads",
    help="Profiles to check besides the built-in ones, profile=head+head,... "
    "[default: STREAMNLP_PROFILE_HEADS, as the worker reads it].",
)
def check_cmd(model_dir: Path, profile_heads: str | None) -> None:
    """Check MODEL_DIR the way a worker does before it serves it: files against the manifest, a head
    for every profile, a smoke prediction. Exit code 0: a worker would load it (at start or at reload).
    """
    from streamnlp.config import WorkerSettings
    from streamnlp.model.check import load_checked

    overrides: dict[str, object] = {}
    if profile_heads is not None:
        overrides["profile_heads"] = tuple(p.strip() for p in profile_heads.split(",") if p.strip())
    profiles = WorkerSettings.from_env(**overrides).profiles()
    runtime = load_checked(model_dir, profiles)
    click.echo(f"ok: {runtime.name} {runtime.version} serves profiles {', '.join(sorted(profiles))}")
    for head, labels in runtime.heads.items():
        click.echo(f"  {head}: {len(labels)} labels")


def _add_build_commands() -> None:
    """Every command of the resumable model build (``train``, ``ship``, ``soup``, ...; torch imported
    lazily), taken from its group so that a new one needs no second list here."""
    from streamnlp.model.build.run import cli as build

    for command in build.commands.values():
        model.add_command(command)


_add_build_commands()
