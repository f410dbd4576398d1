"""``streamnlp model build``: MiniLM -> multi-task teacher -> distilled grouped SqueezeBERT -> int8 ONNX.

Each stage caches its result under ``work_dir`` so an interrupted build resumes where it stopped;
delete a stage's file to redo it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import random
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer

from streamnlp.model.build.config import BuildConfig, default_base_model
from streamnlp.model.build.data import Corpus, load_corpus
from streamnlp.model.build.network import EncoderConfig, MultiHeadClassifier
from streamnlp.model.build.select import oos_threshold, selection_metrics
from streamnlp.model.build.train import Encode, fit, predict_logits
from streamnlp.model.build.weights import grouped_from_teacher, load_minilm
from streamnlp.model.metrics import OOS

log = logging.getLogger(__name__)
BENCH_BATCHES = (1, 8, 32)


def make_encoder(tokenizer_path: Path, max_length: int) -> Encode:
    """Tokenize without padding, truncated to ``max_length`` tokens."""
    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.no_padding()
    tok.enable_truncation(max_length)

    def encode(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in tok.encode_batch(list(texts))]

    return encode


def write_tokenizer(base: Path, dest: Path, max_length: int) -> None:
    """The base WordPiece tokenizer, saved unpadded with truncation at the runtime ``max_length``."""
    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(dest))


def _train_selected(
    model: MultiHeadClassifier,
    corpus: Corpus,
    encode: Encode,
    run: Callable[[Callable[[int], None]], None],
    report_path: Path,
) -> MultiHeadClassifier:
    """Run ``run`` with a per-epoch hook that keeps the best checkpoint by selection score."""
    history: list[dict[str, float]] = []
    best: dict[str, object] = {"score": -1.0, "state": None}

    def on_epoch(epoch: int) -> None:
        metrics = selection_metrics(model, corpus, encode)
        metrics["epoch"] = epoch
        history.append(metrics)
        log.info("epoch %d selection %s", epoch, json.dumps({k: round(v, 4) for k, v in metrics.items()}))
        if metrics["score"] > float(best["score"]):  # type: ignore[arg-type]
            best.update(score=metrics["score"], state=copy.deepcopy(model.state_dict()))
            # an interrupted build can be finished from this by renaming it to the stage's .pt file
            torch.save(best["state"], report_path.with_suffix(".best-so-far.pt"))

    run(on_epoch)
    if best["state"] is not None:
        model.load_state_dict(best["state"])  # type: ignore[arg-type]
    report_path.write_text(json.dumps(history, indent=2))
    return model


def build_teacher(cfg: BuildConfig, corpus: Corpus, encode: Encode, base: Path) -> MultiHeadClassifier:
    path = cfg.work_dir / "teacher.pt"
    heads = {h: len(labels) for h, labels in corpus.heads.items()}
    teacher = MultiHeadClassifier(EncoderConfig(), heads)
    if path.exists():
        teacher.load_state_dict(torch.load(path))
        return teacher
    load_minilm(teacher, base / "model.safetensors")

    def run(hook: Callable[[int], None]) -> None:
        fit(teacher, corpus, encode, cfg.teacher_schedule, seed=cfg.seed, on_epoch=hook, desc="teacher")

    _train_selected(teacher, corpus, encode, run, cfg.work_dir / "teacher_selection.json")
    torch.save(teacher.state_dict(), path)
    return teacher


def build_student(
    cfg: BuildConfig, corpus: Corpus, encode: Encode, teacher: MultiHeadClassifier
) -> MultiHeadClassifier:
    path = cfg.work_dir / "student.pt"
    student = grouped_from_teacher(teacher, cfg.student)
    if path.exists():
        student.load_state_dict(torch.load(path))
        return student
    if cfg.student_init is not None:
        student.load_state_dict(torch.load(cfg.student_init))

    def run(hook: Callable[[int], None]) -> None:
        fit(
            student,
            corpus,
            encode,
            cfg.student_schedule,
            teacher=teacher,
            seed=cfg.seed,
            on_epoch=hook,
            desc="student",
        )

    _train_selected(student, corpus, encode, run, cfg.work_dir / "student_selection.json")
    torch.save(student.state_dict(), path)
    return student


def choose_thresholds(
    model: MultiHeadClassifier, corpus: Corpus, encode: Encode
) -> dict[str, dict[str, object]]:
    """Out-of-scope threshold for every head with an ``oos`` label, chosen on that head's selection split."""
    out: dict[str, dict[str, object]] = {}
    for split in corpus.select.values():
        labels = corpus.heads[split.head]
        if OOS not in labels:
            continue
        probs = torch.softmax(
            torch.from_numpy(predict_logits(model, split.texts, split.head, encode)), -1
        ).numpy()
        tau = oos_threshold(probs, [labels[i] for i in split.labels], labels)
        out[split.head] = {"label": OOS, "min_score": tau}
    return out


def build(cfg: BuildConfig, *, stop_after: str = "package") -> None:
    """Run the pipeline up to and including ``stop_after``."""
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    base = cfg.base_model or default_base_model()
    tokenizer_path = cfg.work_dir / "tokenizer.json"
    write_tokenizer(base, tokenizer_path, cfg.max_length)
    encode = make_encoder(tokenizer_path, cfg.train_max_length)
    corpus = load_corpus(cfg.data_dir, cfg.seed)
    teacher = build_teacher(cfg, corpus, encode, base)
    if stop_after == "teacher":
        return
    student = build_student(cfg, corpus, encode, teacher)
    if stop_after == "student":
        return
    from streamnlp.model.build.export import export_all

    thresholds = choose_thresholds(student, corpus, encode)
    export_all(cfg, teacher, student, list(corpus.heads))
    if stop_after == "export":
        return
    from streamnlp.model.build.package import package

    package(cfg, cfg.work_dir / "student_int8.onnx", cfg.out_dir, corpus.heads, thresholds)
    package(cfg, cfg.work_dir / "student_fp32.onnx", cfg.work_dir / "fp32", corpus.heads, thresholds)
    package(cfg, cfg.work_dir / "teacher_int8.onnx", cfg.work_dir / "teacher_int8", corpus.heads, thresholds)
    if stop_after == "package":
        return
    report(cfg, teacher, student)


def measure_throughput(cfg: BuildConfig, seconds: float = 1.0) -> dict[str, object]:
    """Model-only seq/s of the three ONNX variants at the benchmark batch sizes (1 thread each)."""
    import onnxruntime

    from streamnlp.model.throughput import compare_seq_per_s, mean_tokens, sample_texts

    texts = sample_texts(cfg.data_dir)
    dirs = {
        "squeezebert_int8": cfg.out_dir,
        "bert_teacher_int8": cfg.work_dir / "teacher_int8",
        "squeezebert_fp32": cfg.work_dir / "fp32",
    }
    rows = []
    for batch in BENCH_BATCHES:
        row: dict[str, float] = {"batch": batch, **compare_seq_per_s(dirs, texts, batch, seconds=seconds)}
        row["ratio"] = round(row["squeezebert_int8"] / row["bert_teacher_int8"], 2)
        rows.append(row)
    return {
        "onnxruntime": onnxruntime.__version__,
        "n_texts": len(texts),
        "mean_tokens": round(mean_tokens(cfg.out_dir, texts), 1),
        "rows": rows,
        "ratio_b32": rows[-1]["ratio"],
    }


def report(cfg: BuildConfig, teacher: MultiHeadClassifier, student: MultiHeadClassifier) -> None:
    """Evaluate on the public test splits (report only), measure throughput, write the model card."""
    from streamnlp.model.build.card import write_card
    from streamnlp.model.build.report import evaluate_models

    results = evaluate_models(
        {
            "squeezebert_fp32": cfg.work_dir / "fp32",
            "squeezebert_int8": cfg.out_dir,
            "bert_teacher_int8": cfg.work_dir / "teacher_int8",
        },
        cfg.eval_dir,
    )
    (cfg.work_dir / "eval.json").write_text(json.dumps(results, indent=2))
    throughput = measure_throughput(cfg)
    (cfg.work_dir / "throughput.json").write_text(json.dumps(throughput, indent=2))
    info = {
        "teacher_params": sum(p.numel() for p in teacher.parameters()),
        "student_params": sum(p.numel() for p in student.parameters()),
        "student_fp32_mb": (cfg.work_dir / "student_fp32.onnx").stat().st_size / 1e6,
        "student_init": str(cfg.student_init) if cfg.student_init else None,
        "schedules": {
            "teacher": dataclasses.asdict(cfg.teacher_schedule),
            "student": dataclasses.asdict(cfg.student_schedule),
        },
        "selection": {
            stage: json.loads(path.read_text())
            for stage in ("teacher", "student")
            if (path := cfg.work_dir / f"{stage}_selection.json").exists()
        },
    }
    write_card(cfg.out_dir, eval_results=results, throughput=throughput, build_info=info)
