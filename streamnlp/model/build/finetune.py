"""Model v2: multi-task fine-tuning of the grouped student, resumable across sessions.

A build session here lasts three hours on two CPU cores and the next one starts on a fresh work tree, so
the run is a sequence of steps fixed in advance: epoch ``e``'s examples and batches come from a generator
seeded with ``(seed, e)``, and the state needed to continue is the model's weights, the step reached and
the selection history. Two kinds of checkpoint:

- ``work_dir/checkpoint.pt`` (not committed): weights, optimizer and step, written every few minutes,
  so an interrupted process resumes exactly;
- the *compact state* in ``state_dir`` (committed, named in the README): fp16 trainable weights of the
  latest and of the best-so-far model plus ``progress.json``. A new session resumes from it with a fresh
  optimizer (a short warmup re-estimates Adam's moments).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import torch
from torch.nn import functional as F

from streamnlp.model.build.corpus import BINARY_COLUMNS, Corpus, Source, draw
from streamnlp.model.build.network import MultiHeadClassifier
from streamnlp.model.build.selection import selection_summary
from streamnlp.model.build.state import BEST, LATEST, PROGRESS
from streamnlp.model.runtime import length_sorted_batches, pad

log = logging.getLogger(__name__)
Encode = Callable[[Sequence[str]], list[list[int]]]
# What a run trains: the student (``network.MultiHeadClassifier``) or the teacher (``mpnet.MPNetClassifier``);
# both have ``heads`` (a ModuleDict of Linear) and ``forward(ids, mask) -> (logits per head, states)``.
Classifier = torch.nn.Module


@dataclass(frozen=True)
class FinetuneSchedule:
    """The whole run, decided up front so that every session continues the same one."""

    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 2e-3
    warmup_steps: int = 300
    resume_warmup_steps: int = 100  # after a resume from the compact state (fresh optimizer)
    label_smoothing: float = 0.1
    augment: float = 0.3  # share of intent utterances that get a word dropped or two words swapped
    weight_decay: float = 0.01
    seed: int = 13
    checkpoint_minutes: float = 10.0
    temperature: float = 2.0  # distillation only
    soft_weight: float = 0.5  # share of the loss from teacher soft labels, on rows that have them
    bf16: bool = False  # bf16 autocast: twice the speed of the large teacher on CPUs with bf16 units


@dataclass
class Progress:
    """Where the run stands; committed as ``progress.json`` with the compact state."""

    step: int = 0
    total_steps: int = 0
    epoch_steps: list[int] = field(default_factory=list)
    history: list[dict[str, object]] = field(default_factory=list)  # selection after each epoch
    best_score: float = -1.0
    best_epoch: int = -1
    train_seconds: float = 0.0
    samples: int = 0
    # The command-line choices the run started with (start weights, overrides, mix, trainable table):
    # a resumed run must be given the same ones, and the model card says what each run did.
    recipe: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Progress:
        return cls(**json.loads(text))


NO_LABEL = -1


@dataclass(frozen=True)
class Example:
    ids: list[int]
    head: str
    label: int  # NO_LABEL: the row trains on its soft labels alone (a ``soft_only`` source)
    binary: bool
    soft: np.ndarray | None = None  # the teacher's probabilities for this row (over the binary columns
    # for binary sources), when the source has soft labels


def _augment(text: str, rng: random.Random) -> str:
    """Drop one word or swap two neighbours: cheap rephrasing noise for templated intent data."""
    words = text.split()
    if len(words) < 4:
        return text
    i = rng.randrange(len(words) - 1)
    if rng.random() < 0.5:
        del words[i]
    else:
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def _windows(ids: list[int], width: int, rng: random.Random) -> list[int]:
    """A random ``width``-token window of a long text's ids, [CLS]/[SEP] kept at the ends."""
    body = ids[1:-1]
    if len(body) <= width - 2:
        return ids
    start = 0 if rng.random() < 0.5 else rng.randrange(len(body) - (width - 2) + 1)
    return [ids[0], *body[start : start + width - 2], ids[-1]]


def epoch_examples(
    corpus: Corpus, encode: Encode, encode_long: Encode, epoch: int, sched: FinetuneSchedule
) -> list[Example]:
    """Epoch ``epoch``'s examples; the same for the same (seed, epoch), whichever session computes them."""
    rng = random.Random(f"{sched.seed}:{epoch}")
    out: list[Example] = []
    for name in sorted(corpus.sources):
        src: Source = corpus.sources[name]
        idx = draw(len(src), src.per_epoch, rng)
        texts = [src.texts[i] for i in idx]
        if src.head.startswith("intent_"):
            texts = [_augment(t, rng) if rng.random() < sched.augment else t for t in texts]
        if src.window:
            seqs = [_windows(ids, src.window, rng) for ids in encode_long(texts)]
        else:
            seqs = encode(texts)
        out += [
            Example(
                s,
                src.head,
                NO_LABEL if src.soft_only else src.labels[i],
                src.binary,
                None if src.soft is None else src.soft[i],
            )
            for s, i in zip(seqs, idx, strict=True)
        ]
    return out


class _Tokens(Protocol):
    @property
    def ids(self) -> list[int]: ...


_E = TypeVar("_E", bound=_Tokens)


def length_batches(examples: list[_E], batch_size: int, rng: random.Random) -> Iterator[list[_E]]:
    """Shuffled batches of similar length (sorted within 50-batch pools) so padding stays small."""
    order = examples[:]
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[_E]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda e: len(e.ids))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    yield from batches


def batches(examples: list[Example], batch_size: int, epoch: int, seed: int) -> list[list[Example]]:
    """Epoch ``epoch``'s length-pooled batches (``length_batches``), fixed by ``(seed, epoch)``."""
    return list(length_batches(examples, batch_size, random.Random(f"{seed}:{epoch}:batches")))


def collate(seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask as tensors, padded as the runtime pads (``runtime.pad``)."""
    ids, mask = pad(seqs)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def batch_loss(
    logits: dict[str, torch.Tensor], batch: Sequence[Example], smoothing: float, soft_weight: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of every example on its own head; binary sentiment sources score only the
    negative and positive logits, so they say nothing about neutral. A row with teacher soft labels
    mixes in their cross-entropy at ``soft_weight`` (the teacher's view of which wrong classes are
    near, which a one-hot label cannot say); a row without a label (``NO_LABEL``) learns from them alone."""
    groups: dict[tuple[str, bool, bool, bool], list[int]] = {}
    for i, e in enumerate(batch):
        groups.setdefault((e.head, e.binary, e.soft is not None, e.label == NO_LABEL), []).append(i)
    total = torch.zeros(())
    for (head, binary, has_soft, unlabelled), rows in groups.items():
        x = logits[head][rows]
        if binary:
            x = x[:, BINARY_COLUMNS]
        if unlabelled:
            if not has_soft:
                raise ValueError(f"rows of head {head!r} have neither a label nor soft labels")
            total = total + _soft_cross_entropy(x, [batch[i] for i in rows])
            continue
        target = torch.tensor([batch[i].label for i in rows])
        hard = F.cross_entropy(x, target, reduction="sum", label_smoothing=smoothing)
        if has_soft and soft_weight > 0:
            soft_ce = _soft_cross_entropy(x, [batch[i] for i in rows])
            total = total + (1 - soft_weight) * hard + soft_weight * soft_ce
        else:
            total = total + hard
    return total / len(batch)


def _soft_cross_entropy(x: torch.Tensor, examples: Sequence[Example]) -> torch.Tensor:
    """Summed cross-entropy of logits ``x`` against the examples' teacher probabilities."""
    soft = torch.from_numpy(np.stack([e.soft for e in examples]))  # type: ignore[misc]
    return -(soft * F.log_softmax(x, dim=-1)).sum()


def distill_loss(
    logits: dict[str, torch.Tensor],
    t_logits: dict[str, torch.Tensor],
    states: list[torch.Tensor],
    t_states: list[torch.Tensor],
    batch: Sequence[Example],
    mask: torch.Tensor,
    temp: float,
) -> torch.Tensor:
    """KL to the teacher's softened logits on each example's head, plus MSE between matching hidden
    states over real tokens (student and teacher share the hidden size and depth)."""
    soft = torch.zeros(())
    heads: dict[str, list[int]] = {}
    for i, e in enumerate(batch):
        heads.setdefault(e.head, []).append(i)
    for head, rows in heads.items():
        s = F.log_softmax(logits[head][rows] / temp, dim=-1)
        t = F.softmax(t_logits[head][rows] / temp, dim=-1)
        soft = soft + F.kl_div(s, t, reduction="sum") * temp * temp
    m = mask.unsqueeze(-1).to(states[0].dtype)
    hidden = sum(((a - b) ** 2 * m).sum() for a, b in zip(states, t_states, strict=True))
    hidden = hidden / (m.sum() * states[0].shape[-1] * len(states))
    return soft / len(batch) + hidden


def autocast(bf16: bool) -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


@torch.no_grad()
def head_logits(
    model: Classifier, seqs: Sequence[list[int]], head: str, batch_size: int = 64, bf16: bool = False
) -> np.ndarray:
    model.eval()
    out = np.zeros((len(seqs), model.heads[head].out_features), dtype=np.float32)
    for rows in length_sorted_batches([len(s) for s in seqs], batch_size):
        ids, mask = collate([seqs[i] for i in rows])
        with autocast(bf16):
            logits, _ = model(ids, mask)
        out[rows] = logits[head].float().numpy()
    return out


def selection_logits(
    model: Classifier, corpus: Corpus, encode: Encode, bf16: bool = False
) -> dict[str, np.ndarray]:
    """Each selection split's head logits: computed once, so splits can be scored (and resampled) apart."""
    return {
        name: head_logits(model, encode(sel.texts), sel.head, bf16=bf16)
        for name, sel in corpus.selections.items()
    }


def evaluate_selection(
    model: Classifier, corpus: Corpus, encode: Encode, bf16: bool = False
) -> dict[str, object]:
    """``selection_summary`` of the model's logits. ``encode`` should cut at the runtime's max length,
    so that selection sees what the worker will."""
    return selection_summary(corpus, selection_logits(model, corpus, encode, bf16))


# --- state -------------------------------------------------------------------------------------------


def save_compact(model: Classifier, path: Path) -> None:
    """fp16 copy of the trainable parameters (the compact, committed form); frozen ones (the word table)
    come back from the model the run started from."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().to(torch.float16).contiguous() for k, v in model.named_parameters() if v.requires_grad
    }
    save_file(tensors, str(path))


def load_compact(model: Classifier, path: Path) -> None:
    from safetensors.torch import load_file

    tensors = {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    trainable = {k for k, v in model.named_parameters() if v.requires_grad}
    if unexpected or set(missing) & trainable:
        raise ValueError(f"{path} does not fit the model: missing {missing}, unexpected {unexpected}")


def _optimizer(model: Classifier, sched: FinetuneSchedule) -> torch.optim.Optimizer:
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    heads = [p for n, p in params if n.startswith("heads.")]
    body = [p for n, p in params if not n.startswith("heads.")]
    return torch.optim.AdamW(
        [{"params": body, "lr": sched.lr}, {"params": heads, "lr": sched.head_lr}],
        weight_decay=sched.weight_decay,
    )


def _lr_factor(step: int, total: int, warm_from: int, warm_steps: int) -> float:
    """Linear decay to zero over the whole run, times a linear warmup after each (re)start."""
    decay = max(0.0, (total - step) / max(1, total))
    since = step - warm_from
    return decay * min(1.0, (since + 1) / max(1, warm_steps))


class Run:
    """One resumable fine-tuning run over ``corpus``: call :meth:`train` until it returns True."""

    def __init__(
        self,
        model: Classifier,
        corpus: Corpus,
        encode: Encode,
        encode_long: Encode,
        encode_eval: Encode,
        sched: FinetuneSchedule,
        work_dir: Path,
        state_dir: Path,
    ) -> None:
        self.model, self.corpus, self.sched = model, corpus, sched
        self.encode, self.encode_long, self.encode_eval = encode, encode_long, encode_eval
        self.work_dir, self.state_dir = work_dir, state_dir
        self.progress = Progress()
        self.optimizer = _optimizer(model, sched)
        self.warm_from, self.warm_steps = 0, sched.warmup_steps
        self._epoch_cache: tuple[int, list[list[Example]]] | None = None
        self.teacher: MultiHeadClassifier | None = None  # set to distil (soft labels + hidden states)

    def _loss(self, batch: list[Example], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with autocast(self.sched.bf16):
            logits, states = self.model(ids, mask)
        hard = batch_loss(logits, batch, self.sched.label_smoothing, self.sched.soft_weight)
        if self.teacher is None:
            return hard
        with torch.no_grad():
            t_logits, t_states = self.teacher(ids, mask)
        return hard + distill_loss(logits, t_logits, states, t_states, batch, mask, self.sched.temperature)

    # where a run comes back from, best first: this machine's full checkpoint, then the committed state
    def resume(self) -> str:
        ckpt = self.work_dir / "checkpoint.pt"
        progress = self.state_dir / PROGRESS
        if ckpt.exists():
            state = torch.load(ckpt, weights_only=False)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.progress = Progress(**state["progress"])
            self.warm_from, self.warm_steps = state["warm_from"], state["warm_steps"]
            return f"checkpoint {ckpt} at step {self.progress.step}"
        if progress.exists():
            self.progress = Progress.from_json(progress.read_text())
            weights = self.state_dir / LATEST
            if not weights.exists() and 0 < self.progress.total_steps <= self.progress.step:
                weights = self.state_dir / BEST  # a finished run may keep its best weights only
            load_compact(self.model, weights)
            self.warm_from, self.warm_steps = self.progress.step, self.sched.resume_warmup_steps
            return f"compact state {self.state_dir} at step {self.progress.step}"
        return "start"

    def _plan(self) -> None:
        """Steps per epoch (fixed by the corpus weights and batch size) and the run's total."""
        if self.progress.epoch_steps:
            return
        per_epoch = sum(s.per_epoch for s in self.corpus.sources.values())
        steps = -(-per_epoch // self.sched.batch_size)
        self.progress.epoch_steps = [steps] * self.sched.epochs
        self.progress.total_steps = steps * self.sched.epochs

    def _locate(self, step: int) -> tuple[int, int]:
        """(epoch, batch index within it) of global ``step``."""
        for epoch, n in enumerate(self.progress.epoch_steps):
            if step < n:
                return epoch, step
            step -= n
        return len(self.progress.epoch_steps), 0

    def _epoch_batches(self, epoch: int) -> list[list[Example]]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            examples = epoch_examples(self.corpus, self.encode, self.encode_long, epoch, self.sched)
            self._epoch_cache = (epoch, batches(examples, self.sched.batch_size, epoch, self.sched.seed))
        return self._epoch_cache[1]

    def save_checkpoint(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.work_dir / "checkpoint.pt.tmp"
        torch.save(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "progress": asdict(self.progress),
                "warm_from": self.warm_from,
                "warm_steps": self.warm_steps,
            },
            tmp,
        )
        tmp.replace(self.work_dir / "checkpoint.pt")

    def save_compact_state(self) -> None:
        """The committed state: latest weights and progress (the best weights are written when chosen)."""
        save_compact(self.model, self.state_dir / LATEST)
        (self.state_dir / PROGRESS).write_text(self.progress.to_json())

    def _end_of_epoch(self, epoch: int) -> None:
        result = evaluate_selection(self.model, self.corpus, self.encode_eval, self.sched.bf16)
        result.update(epoch=epoch, step=self.progress.step)
        self.progress.history.append(result)
        log.info("selection after epoch %d: %s", epoch, json.dumps(result))
        if float(result["score"]) > self.progress.best_score:  # type: ignore[arg-type]
            self.progress.best_score = float(result["score"])  # type: ignore[arg-type]
            self.progress.best_epoch = epoch
            save_compact(self.model, self.state_dir / BEST)
        self.save_compact_state()
        self.save_checkpoint()

    def train(self, *, deadline: float | None = None, max_steps: int = 0) -> bool:
        """Train until the run ends (True), ``deadline`` (a ``time.time()``) passes or ``max_steps`` more
        steps are done (False); the compact state is written before returning either way, except for a
        run that had already finished: its committed state (the best weights only) stays as it is."""
        self._plan()
        p = self.progress
        if p.total_steps and p.step >= p.total_steps:
            return True
        last_ckpt = time.monotonic()
        started, done_here = time.monotonic(), 0
        self.model.train()
        while p.step < p.total_steps:
            if (deadline is not None and time.time() >= deadline) or (max_steps and done_here >= max_steps):
                break
            epoch, index = self._locate(p.step)
            batch = self._epoch_batches(epoch)[index]
            factor = _lr_factor(p.step, p.total_steps, self.warm_from, self.warm_steps)
            for group, base in zip(
                self.optimizer.param_groups, (self.sched.lr, self.sched.head_lr), strict=True
            ):
                group["lr"] = base * factor
            ids, mask = collate([e.ids for e in batch])
            loss = self._loss(batch, ids, mask)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([q for q in self.model.parameters() if q.requires_grad], 1.0)
            self.optimizer.step()
            p.step += 1
            p.samples += len(batch)
            done_here += 1
            if p.step % 50 == 0:
                rate = done_here * self.sched.batch_size / max(1e-9, time.monotonic() - started)
                log.info(
                    "step %d/%d epoch %d loss %.4f lr %.2e %.0f samples/s",
                    p.step,
                    p.total_steps,
                    epoch,
                    loss.item(),
                    self.optimizer.param_groups[0]["lr"],
                    rate,
                )
            if index == len(self._epoch_batches(epoch)) - 1:
                p.train_seconds += time.monotonic() - started
                started, done_here = time.monotonic(), 0
                self._end_of_epoch(epoch)
                self.model.train()
                last_ckpt = time.monotonic()
            elif time.monotonic() - last_ckpt > self.sched.checkpoint_minutes * 60:
                p.train_seconds += time.monotonic() - started
                started, done_here = time.monotonic(), 0
                self.save_checkpoint()
                self.save_compact_state()
                last_ckpt = time.monotonic()
        p.train_seconds += time.monotonic() - started
        self.save_checkpoint()
        self.save_compact_state()
        return p.step >= p.total_steps


def iter_selection_rows(corpus: Corpus) -> Iterator[tuple[str, int, int]]:
    """(split, rows, in/out-of-source) for the card's table of selection splits."""
    for name, sel in corpus.selections.items():
        yield name, len(sel.texts), int(sel.out_of_source)
