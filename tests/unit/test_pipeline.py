"""The labelling path without Kafka: one record per input, one model call per distinct text."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator, Sequence

import orjson
import pytest

from streamnlp import ModelError
from streamnlp.config import WorkerSettings
from streamnlp.envelope import Output, Source
from streamnlp.model.runtime import LabelModel
from streamnlp.pipeline import Pipeline
from tests.schemas import validate_deadletter, validate_output


class PoisonedModel:
    """The real model, except that it fails on any batch holding the word POISON."""

    def __init__(self, model: LabelModel) -> None:
        self._model = model
        self.name, self.version, self.heads = model.name, model.version, model.heads
        self.tokens_read = model.tokens_read
        self.calls: list[int] = []
        self.seen: list[str] = []
        self.gate: threading.Event | None = None  # when set by a test, predict waits for it

    def predict(self, texts: Sequence[str], heads: Sequence[str] | None = None):  # type: ignore[no-untyped-def]
        if self.gate is not None:
            self.gate.wait(timeout=10)
        self.calls.append(len(texts))
        self.seen.extend(texts)
        if any("POISON" in t for t in texts):
            raise ModelError("inference failed: RuntimeError: kernel failure")  # as the runtime maps it
        return self._model.predict(texts, heads)


@pytest.fixture
def gated_model(model: LabelModel) -> Iterator[PoisonedModel]:
    """The real model behind a closed gate: each call waits until the test opens it (``gate.set()``), so
    texts queue up while the model is busy; opened at the end whatever happened."""
    gated = PoisonedModel(model)
    gated.gate = gate = threading.Event()
    yield gated
    gate.set()


def pipeline_for(model, **env: str) -> Pipeline:  # type: ignore[no-untyped-def]
    settings = WorkerSettings.from_env({"STREAMNLP_INPUTS": "chats=ecommerce", **env})
    return Pipeline.from_settings(settings, model, use_redis=False)


class Batch:
    """The outputs of one processed batch, split into labelled records and dead letters."""

    def __init__(self, outputs: list[Output]) -> None:
        self.outputs = [o for o in outputs if not o.dead]
        self.dead_letters = [o for o in outputs if o.dead]


async def run(pipeline: Pipeline, values: list[bytes | None]) -> Batch:
    batch = [pipeline.envelope(Source("chats", 0, i, None), str(i).encode(), v) for i, v in enumerate(values)]
    processed = await pipeline.process(batch)
    assert all(e.output is not None for e in processed)
    return Batch([e.output for e in processed if e.output is not None])


async def test_every_input_yields_exactly_one_record(model: LabelModel) -> None:
    values = [orjson.dumps({"id": i, "text": f"where is order {i}"}) for i in range(10)] + [
        b"bad",
        b'{"text": ""}',
    ]
    result = await run(pipeline_for(model), values)
    assert len(result.outputs) == 10 and len(result.dead_letters) == 2
    for publish in result.outputs:
        validate_output(orjson.loads(publish.value))
        assert publish.topic == "streamnlp.labels"
    for publish in result.dead_letters:
        validate_deadletter(orjson.loads(publish.value))
        assert publish.topic == "streamnlp.dlq"


async def test_repeated_texts_in_a_batch_reach_the_model_once(model: LabelModel) -> None:
    poisoned = PoisonedModel(model)
    pipeline = pipeline_for(poisoned)
    values = [orjson.dumps({"text": "refund  please"}), orjson.dumps({"text": "refund please"})] * 3
    result = await run(pipeline, values)
    assert len(result.outputs) == 6
    assert poisoned.calls == [1]
    labels = {orjson.loads(p.value)["labels"]["intent_ecommerce"]["label"] for p in result.outputs}
    assert len(labels) == 1


async def test_a_text_another_batch_in_flight_is_labelling_reaches_the_model_once(model: LabelModel) -> None:
    counting = PoisonedModel(model)
    pipeline = pipeline_for(counting)
    first = [orjson.dumps({"id": "a", "text": "refund please"})]
    second = [orjson.dumps({"id": "b", "text": "refund please"}), orjson.dumps({"text": "hello"})]
    one, two = await asyncio.gather(run(pipeline, first), run(pipeline, second))
    assert sorted(counting.seen) == ["hello", "refund please"]
    a, b = orjson.loads(one.outputs[0].value), orjson.loads(two.outputs[0].value)
    assert a["labels"] == b["labels"]
    assert (a["cached"], b["cached"]) == (False, True)


async def test_a_batch_sharing_a_text_with_a_cancelled_batch_still_gets_its_label_from_the_one_call(
    gated_model: PoisonedModel,
) -> None:
    pipeline = pipeline_for(gated_model)
    owner = asyncio.create_task(run(pipeline, [orjson.dumps({"text": "refund please"})]))
    await asyncio.sleep(0.05)  # the owner's text is now inside the model, blocked on the gate
    waiter = asyncio.create_task(run(pipeline, [orjson.dumps({"text": "refund please"})]))
    await asyncio.sleep(0.05)
    owner.cancel()
    gated_model.gate.set()
    result = await asyncio.wait_for(waiter, timeout=10)
    assert len(result.outputs) == 1 and not result.dead_letters
    assert orjson.loads(result.outputs[0].value)["cached"] is True  # the owner's call answered it
    assert gated_model.seen == ["refund please"]
    with pytest.raises(asyncio.CancelledError):
        await owner


async def test_texts_queued_while_the_model_is_busy_go_to_it_together_when_it_is_free(
    gated_model: PoisonedModel,
) -> None:
    pipeline = pipeline_for(gated_model)
    first = asyncio.create_task(run(pipeline, [orjson.dumps({"text": "where is my parcel"})]))
    await asyncio.sleep(0.05)  # the model is busy with the first batch's text
    later = [
        asyncio.create_task(run(pipeline, [orjson.dumps({"text": f"refund order {i}"})])) for i in range(5)
    ]
    await asyncio.sleep(0.05)
    gated_model.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, *later), timeout=10)
    assert gated_model.calls == [1, 5], "one call for everything that queued up, not one per batch"
    records = [orjson.loads(r.outputs[0].value) for r in results]
    assert all(r["timings_ms"]["inference"] > 0 and not r["cached"] for r in records)
    assert records[1]["timings_ms"]["model_wait"] >= records[0]["timings_ms"]["inference"] / 2


async def test_the_model_takes_the_next_batch_itself_while_the_event_loop_is_busy(
    gated_model: PoisonedModel,
) -> None:
    pipeline = pipeline_for(gated_model)
    first = asyncio.create_task(run(pipeline, [orjson.dumps({"text": "where is my parcel"})]))
    await asyncio.sleep(0.05)  # the model is busy with the first text
    second = asyncio.create_task(run(pipeline, [orjson.dumps({"text": "cancel my order"})]))
    await asyncio.sleep(0.05)  # the second text is queued
    gated_model.gate.set()
    deadline = time.monotonic() + 5
    while len(gated_model.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # noqa: ASYNC251 - holds the event loop, as a busy Faust loop does
    assert gated_model.calls == [1, 1], "the second call waited for the event loop"
    await asyncio.wait_for(asyncio.gather(first, second), timeout=10)


async def test_a_model_call_never_holds_more_texts_than_the_batch_maximum(gated_model: PoisonedModel) -> None:
    pipeline = pipeline_for(gated_model, STREAMNLP_BATCH_MAX_SIZE="4")
    first = asyncio.create_task(run(pipeline, [orjson.dumps({"text": "hello"})]))
    await asyncio.sleep(0.05)
    later = asyncio.create_task(run(pipeline, [orjson.dumps({"text": f"text {i}"}) for i in range(10)]))
    await asyncio.sleep(0.05)
    gated_model.gate.set()
    await asyncio.wait_for(asyncio.gather(first, later), timeout=10)
    assert gated_model.calls == [1, 4, 4, 2]


async def test_a_text_the_model_fails_on_goes_to_the_dead_letter_topic_alone(model: LabelModel) -> None:
    poisoned = PoisonedModel(model)
    values = [
        orjson.dumps({"id": i, "text": t}) for i, t in enumerate(["fine one", "POISON here", "fine two"])
    ]
    result = await run(pipeline_for(poisoned), values)
    assert [orjson.loads(p.value)["id"] for p in result.outputs] == ["0", "2"]
    (dead,) = [orjson.loads(p.value) for p in result.dead_letters]
    assert dead["reason"] == "model_error" and dead["source"]["offset"] == 1
    validate_deadletter(dead)


async def test_a_megabyte_of_text_is_cut_to_the_window_and_flagged(model: LabelModel) -> None:
    values = [orjson.dumps({"text": "the parcel is late again " * 40000}), orjson.dumps({"text": "thanks"})]
    result = await run(pipeline_for(model), values)
    flags = [orjson.loads(p.value)["truncated"] for p in result.outputs]
    assert flags == [True, False]


async def test_a_long_note_in_the_medical_profile_gets_its_specialty_from_the_whole_note(
    model: LabelModel,
) -> None:
    """The labeller's pre-cut keeps what the whole-text head reads (thousands of tokens), not the
    encoder's window; the record is flagged because sentiment read only the opening."""
    from tests.model.test_whole_text import _KNEE, _OPENING

    note = _OPENING * 12 + _KNEE  # past 128 x 64 characters (a window-sized cut would drop the findings)
    pipeline = pipeline_for(model, STREAMNLP_INPUTS="chats=medical")
    result = await run(pipeline, [orjson.dumps({"text": note})])
    record = orjson.loads(result.outputs[0].value)
    validate_output(record)
    direct = model.predict([note], ["sentiment", "medical_specialty"])[0]
    assert record["labels"]["medical_specialty"]["label"] == direct.heads["medical_specialty"].label
    assert record["labels"]["medical_specialty"]["label"] == "Orthopedic"
    assert record["truncated"] is True


def test_a_profile_asking_for_a_head_the_model_lacks_is_refused_at_start(model: LabelModel) -> None:
    with pytest.raises(ModelError, match="intent_clinic"):
        pipeline_for(model, STREAMNLP_PROFILE_HEADS="medical=sentiment+intent_clinic")


def test_a_texts_labels_do_not_depend_on_its_batch_neighbours(model: LabelModel) -> None:
    """The cache stores one label per text, so the model must give it whatever batch it is in."""
    pairs = [
        (o, a) for o in ("hi", "urgent:", "thanks,") for a in ("is late", "came broken", "great", "refund?")
    ]
    texts = [f"{opening} order {n} {ask}" for n, (opening, ask) in enumerate(pairs * 6)]
    alone = [model.predict([t])[0] for t in texts]
    shuffled = texts[::-1]
    together = dict(zip(shuffled, model.predict(shuffled), strict=True))
    for text, single in zip(texts, alone, strict=True):
        for head, result in single.heads.items():
            assert together[text].heads[head].label == result.label, (text, head)
            assert abs(together[text].heads[head].score - result.score) < 1e-5


async def test_dead_letters_are_logged_once_per_reason_and_interval_without_their_text(
    model: LabelModel, caplog: pytest.LogCaptureFixture
) -> None:
    values: list[bytes | None] = [b"secret diagnosis, not json"] * 50 + [b'{"text": 5}'] * 50
    with caplog.at_level(logging.WARNING, logger="streamnlp.pipeline"):
        result = await run(pipeline_for(model), values)
    assert len(result.dead_letters) == 100
    lines = [r.getMessage() for r in caplog.records if r.name == "streamnlp.pipeline"]
    assert len(lines) == 2, lines
    assert {line.split()[2] for line in lines} == {"(invalid_json):", "(wrong_type):"}
    assert all("chats:0@" in line and "secret" not in line for line in lines)
