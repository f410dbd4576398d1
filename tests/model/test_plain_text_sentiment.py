"""The shipped model reads plain requests as neutral, thanks as positive and complaints as negative.

Sentences written for this project (not taken from any training or evaluation set), in the register of
customer chats, support tickets and shop reviews. A wrong label here is what a user sees first.
"""

from __future__ import annotations

import pytest

from streamnlp.model.runtime import LabelModel

NEUTRAL = [
    "I am trying to edit the information on my account",
    "could you help me check the invoices from one month ago?",
    "I'd like to check the cancellation fees",
    "how do I leave a review for a product",
    "what payment methods do you accept",
    "can I talk to a real person please",
    "where can I change my delivery address",
    "I need to update the phone number on my profile",
    "what time does the store open on Saturday",
    "please send me a copy of the receipt for order 4411",
    "is there a way to pay in two instalments",
    "how long does shipping to Canada take",
]
POSITIVE = [
    "thank you so much, that solved it!",
    "Worked as advertised !",
    "great service, the parcel arrived a day early",
    "I love this jacket, fits perfectly",
    "thanks for the quick refund, really appreciated",
    "the support agent was friendly and very helpful",
    "excellent quality, I will definitely order again",
    "perfect, that is exactly what I needed",
]
NEGATIVE = [
    "my order is two weeks late and nobody answers my emails",
    "this is the third time my card was declined, I am furious",
    "the product broke after one day, total waste of money",
    "terrible service, I want my money back",
    "you charged me twice and I still have not received anything",
    "the app keeps crashing and I lost all my data",
    "worst customer support I have ever dealt with",
    "the shoes arrived damaged and dirty",
]


def _labels(model: LabelModel, texts: list[str]) -> list[str]:
    return [p.heads["sentiment"].label for p in model.predict(texts, ["sentiment"])]


@pytest.mark.parametrize(
    ("expected", "texts"),
    [
        ("neutral", NEUTRAL),
        ("positive", POSITIVE),
        ("negative", NEGATIVE),
    ],
)
def test_sentiment_of_plain_requests_thanks_and_complaints(
    shipped: LabelModel, expected: str, texts: list[str]
) -> None:
    got = _labels(shipped, texts)
    wrong = [(t, g) for t, g in zip(texts, got, strict=True) if g != expected]
    # at most one miss per group: a single borderline sentence must not decide the suite
    assert len(wrong) <= 1, f"expected {expected}, got: {wrong}"


def test_a_plain_request_is_not_scored_as_confidently_negative(shipped: LabelModel) -> None:
    """Users route on scores ("negative above 0.8 goes to a person"): no plain request may get there."""
    for text, pred in zip(NEUTRAL, shipped.predict(NEUTRAL, ["sentiment"]), strict=True):
        head = pred.heads["sentiment"]
        assert not (head.label == "negative" and head.score >= 0.8), (text, head)
