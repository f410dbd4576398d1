"""Training loops: multi-task fine-tuning of the teacher and distillation into the grouped student."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from streamnlp.model.build.data import Corpus, Example, epoch_examples
from streamnlp.model.build.finetune import collate as pad_ids
from streamnlp.model.build.finetune import head_logits, length_batches
from streamnlp.model.build.network import MultiHeadClassifier

Encode = Callable[[Sequence[str]], list[list[int]]]


@dataclass(frozen=True)
class Schedule:
    """How long and how hard to train one stage."""

    epochs: int
    per_epoch: dict[str, int]
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 2e-3
    warmup: float = 0.06
    max_steps: int = 0  # 0 = no cap; a cap gives quick smoke builds
    temperature: float = 2.0
    hidden_weight: float = 1.0
    soft_weight: float = 1.0
    hard_weight: float = 0.5


def collate(batch: Sequence[Example] | Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence in the batch."""
    return pad_ids([e.ids if isinstance(e, Example) else e for e in batch])


def _optimizer(
    model: MultiHeadClassifier, sched: Schedule, total: int
) -> tuple[torch.optim.Optimizer, object]:
    head_params = [p for n, p in model.named_parameters() if n.startswith("heads.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("heads.")]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": sched.lr}, {"params": head_params, "lr": sched.head_lr}], weight_decay=0.01
    )
    warm = max(1, int(total * sched.warmup))

    def factor(step: int) -> float:
        return step / warm if step < warm else max(0.0, (total - step) / max(1, total - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _hard_loss(logits: dict[str, torch.Tensor], batch: Sequence[Example]) -> torch.Tensor:
    losses = []
    for head in {e.head for e in batch}:
        rows = [i for i, e in enumerate(batch) if e.head == head]
        target = torch.tensor([batch[i].label for i in rows])
        losses.append(F.cross_entropy(logits[head][rows], target, reduction="sum"))
    return torch.stack(losses).sum() / len(batch)


def _soft_loss(
    student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], batch: Sequence[Example], temp: float
) -> torch.Tensor:
    """KL(teacher || student) at temperature ``temp`` on each example's own head."""
    losses = []
    for head in {e.head for e in batch}:
        rows = [i for i, e in enumerate(batch) if e.head == head]
        s = F.log_softmax(student[head][rows] / temp, dim=-1)
        t = F.softmax(teacher[head][rows] / temp, dim=-1)
        losses.append(F.kl_div(s, t, reduction="sum") * temp * temp)
    return torch.stack(losses).sum() / len(batch)


def _hidden_loss(
    student: list[torch.Tensor], teacher: list[torch.Tensor], mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared error between matching hidden states over real (unpadded) tokens."""
    m = mask.unsqueeze(-1).to(student[0].dtype)
    total = sum(((s - t) ** 2 * m).sum() for s, t in zip(student[1:], teacher[1:], strict=True))
    return total / (m.sum() * student[0].shape[-1] * (len(student) - 1))


def fit(
    model: MultiHeadClassifier,
    corpus: Corpus,
    encode: Encode,
    sched: Schedule,
    *,
    teacher: MultiHeadClassifier | None = None,
    seed: int = 0,
    on_epoch: Callable[[int], None] | None = None,
    desc: str = "train",
) -> None:
    """Train ``model`` on mixed-task batches; with ``teacher`` the loss is distillation plus hard labels."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    steps_per_epoch = -(
        -sum(sched.per_epoch.get(n, len(s)) for n, s in corpus.train.items()) // sched.batch_size
    )
    total = steps_per_epoch * sched.epochs
    if sched.max_steps:
        total = min(total, sched.max_steps)
    opt, lr_sched = _optimizer(model, sched, total)
    if teacher is not None:
        teacher.eval()
    step = 0
    with tqdm(total=total, desc=desc, unit="step", mininterval=10) as bar:
        for epoch in range(sched.epochs):
            model.train()
            examples = epoch_examples(corpus, sched.per_epoch, encode, rng)
            for batch in length_batches(examples, sched.batch_size, rng):
                if step >= total:
                    break
                ids, mask = collate(batch)
                logits, states = model(ids, mask)
                if teacher is None:
                    loss = _hard_loss(logits, batch)
                else:
                    with torch.no_grad():
                        t_logits, t_states = teacher(ids, mask)
                    loss = (
                        sched.soft_weight * _soft_loss(logits, t_logits, batch, sched.temperature)
                        + sched.hard_weight * _hard_loss(logits, batch)
                        + sched.hidden_weight * _hidden_loss(states, t_states, mask)
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                lr_sched.step()
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", epoch=epoch, refresh=False)
            if on_epoch is not None:
                on_epoch(epoch)
            if step >= total:
                break


def predict_logits(
    model: MultiHeadClassifier, texts: Sequence[str], head: str, encode: Encode, batch_size: int = 64
) -> np.ndarray:
    """Logits of one head for ``texts`` (length-sorted batches, original order restored)."""
    return head_logits(model, encode(texts), head, batch_size)
