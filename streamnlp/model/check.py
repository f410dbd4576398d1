"""Is this model directory fit to serve these profiles? One check for start-up, hot reload and
``streamnlp model check``, so a model that passes before deployment passes in the worker too.

onnxruntime and tokenizers are imported only where a session is built (:func:`load_checked`): a worker
whose model runs in a process of its own imports this module too, and never needs them."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from streamnlp._errors import ModelError

if TYPE_CHECKING:
    from streamnlp.model.isolated import ProcessModel
    from streamnlp.model.runtime import LabelModel

# Any short text does: the smoke prediction proves the graph runs and its outputs decode, not quality.
SMOKE_TEXTS = ("where is my order?", "thank you, that was quick")


class _Headed(Protocol):
    """What :func:`require_heads` reads of a model, in this process or in a process of its own."""

    @property
    def version(self) -> str: ...

    @property
    def heads(self) -> Mapping[str, Sequence[str]]: ...


def require_heads(model: _Headed, profiles: Mapping[str, Sequence[str]]) -> None:
    """Every head of every profile must be one of the model's heads."""
    missing = {p: [h for h in heads if h not in model.heads] for p, heads in profiles.items()}
    missing = {p: heads for p, heads in missing.items() if heads}
    if missing:
        wanted = "; ".join(f"profile {p!r} needs {heads}" for p, heads in sorted(missing.items()))
        raise ModelError(f"model {model.version} lacks heads: {wanted}; it has {sorted(model.heads)}")


def smoke_test(model: LabelModel, heads: Sequence[str]) -> None:
    """One small batch through the model: each head answers one of its labels with a probability."""
    for result in model.predict(list(SMOKE_TEXTS), list(heads)):
        for head in heads:
            answer = result.heads.get(head)
            if answer is None or answer.label not in model.heads[head]:
                raise ModelError(f"smoke prediction: head {head!r} gave no label of its own")
            if not (math.isfinite(answer.score) and 0.0 <= answer.score <= 1.0):
                raise ModelError(f"smoke prediction: head {head!r} scored {answer.score}")


def load_serving(
    path: str | os.PathLike[str],
    profiles: Mapping[str, Sequence[str]],
    *,
    threads: int = 1,
    own_process: bool = False,
) -> LabelModel | ProcessModel:
    """What a worker serves: :func:`load_checked`, in a child process of its own when ``own_process``
    (STREAMNLP_MODEL_PROCESS; see ``streamnlp.model.isolated``). Blocking: call it off the event loop."""
    if own_process:
        from streamnlp.model.isolated import ProcessModel

        return ProcessModel.load(path, profiles, threads=threads)
    return load_checked(path, profiles, threads=threads)


def load_checked(
    path: str | os.PathLike[str], profiles: Mapping[str, Sequence[str]], *, threads: int = 1
) -> LabelModel:
    """Load ``path`` (files checked against the manifest), require the profiles' heads, run the smoke
    prediction; the model, or :class:`ModelError` saying what is wrong. Blocking: call it off the
    event loop."""
    from streamnlp.model.runtime import LabelModel  # onnxruntime: only where a session is built

    model = LabelModel.load(path, threads=threads)
    require_heads(model, profiles)
    smoke_test(model, sorted({h for heads in profiles.values() for h in heads}))
    return model
