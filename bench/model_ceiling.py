"""How fast can one CPU core label text? Shipped int8 SqueezeBERT vs int8 BERT teacher vs fp32 SqueezeBERT.

Run from the repo root: ``python -m bench.model_ceiling`` (or ``python bench/model_ceiling.py``).
The teacher and fp32 models are build artefacts (``build/model/``, git-ignored); produce them with
``streamnlp model build`` (it reuses cached checkpoints, so with them present only export reruns).
This is a benchmark, not a test: it prints a table and writes JSON, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # allow `python bench/model_ceiling.py` as well as `python -m`
    sys.path.insert(0, str(ROOT))

import onnxruntime  # noqa: E402

from streamnlp.model.manifest import DEFAULT_MODEL_DIR  # noqa: E402
from streamnlp.model.throughput import (  # noqa: E402
    compare_seq_per_s,
    mean_tokens,
    predict_seq_per_s,
    sample_texts,
)

BATCHES = (1, 8, 32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / DEFAULT_MODEL_DIR)
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "model")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per model per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each model's best counts")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per session")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "model_ceiling.json")
    args = parser.parse_args(argv)

    models = {
        "squeezebert_int8": args.model,
        "bert_teacher_int8": args.build_dir / "teacher_int8",
        "squeezebert_fp32": args.build_dir / "fp32",
    }
    missing = [f"{name}: {path}" for name, path in models.items() if not (path / "manifest.json").is_file()]
    if missing:
        print("missing model directories:\n  " + "\n  ".join(missing), file=sys.stderr)
        print(
            "produce them with: pip install -e '.[train]' && streamnlp model build "
            "(checkpoints under build/model are reused)",
            file=sys.stderr,
        )
        return 2

    texts = sample_texts(args.data_dir)
    tokens = mean_tokens(args.model, texts)
    print(
        f"onnxruntime {onnxruntime.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), {len(texts)} texts, mean {tokens:.1f} tokens, padded per batch"
    )
    header = (
        f"{'batch':>5} | {'int8 squeeze':>12} | {'int8 BERT':>10} | {'fp32 squeeze':>12} | "
        f"{'sq8/bert8':>9} | {'sq8/fp32':>8} | {'predict() sq8':>13}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for batch in BATCHES:
        row: dict[str, float] = {"batch": batch}
        row.update(
            compare_seq_per_s(
                models, texts, batch, seconds=args.seconds, rounds=args.rounds, threads=args.threads
            )
        )
        row["ratio_vs_bert_int8"] = round(row["squeezebert_int8"] / row["bert_teacher_int8"], 2)
        row["ratio_vs_fp32"] = round(row["squeezebert_int8"] / row["squeezebert_fp32"], 2)
        row["predict_end_to_end"] = round(
            predict_seq_per_s(args.model, texts, batch, seconds=args.seconds), 1
        )
        rows.append(row)
        print(
            f"{batch:>5} | {row['squeezebert_int8']:>12.0f} | {row['bert_teacher_int8']:>10.0f} | "
            f"{row['squeezebert_fp32']:>12.0f} | {row['ratio_vs_bert_int8']:>8.2f}x | "
            f"{row['ratio_vs_fp32']:>7.2f}x | {row['predict_end_to_end']:>13.0f}"
        )
    print(
        "seq/s = sequences per second through onnxruntime (tokenization excluded), except predict(), "
        "which is LabelModel.predict end to end."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "onnxruntime": onnxruntime.__version__,
        "threads": args.threads,
        "n_texts": len(texts),
        "mean_tokens": round(tokens, 1),
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
