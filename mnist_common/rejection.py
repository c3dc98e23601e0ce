"""Saying "I don't know": a rule for refusing what does not look like a digit.

A network trained on digits answers every input with a digit, and softmax makes the answer look
confident: softmax only compares the ten scores with each other, so a picture of a horse whose
"3" score is merely the least small still gets a high probability. The *energy score* keeps what
softmax throws away, how strong the evidence is overall:

    energy(x) = log(e^z0 + e^z1 + ... + e^z9)      (z: the ten scores, the logits)

It is large when some digit's score is large, and small when no digit fits. The rule is fitted
on the validation digits alone: the thresholds that keep 95% and 99% of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .training import predict_logits

KEEP_CONFIDENT = 0.95  # above the score that 95% of validation digits reach: an answer
KEEP_ANY = 0.99  # below the score that 99% of validation digits reach: not a digit


def energy(logits: torch.Tensor) -> torch.Tensor:
    """(N, 10) scores -> (N,) energy: large when the network sees strong evidence for some digit."""
    return torch.logsumexp(logits.float(), 1)


def auroc(positives: torch.Tensor, negatives: torch.Tensor) -> float:
    """Area under the ROC curve: the chance that a random digit scores higher than a random non-digit."""
    pos, neg = positives.double().flatten(), negatives.double().flatten()
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = torch.cat([pos, neg]).argsort()
    ranks = torch.empty(len(order), dtype=torch.float64)
    ranks[order] = torch.arange(1, len(order) + 1, dtype=torch.float64)
    return ((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))).item()


@dataclass
class Verdict:
    """What the network says about one picture, in words a learner can act on."""

    kind: str  # "digit", "not sure" or "not a digit"
    digit: int
    probs: torch.Tensor  # (10,)
    score: float

    @property
    def text(self) -> str:
        top = self.probs.topk(2)
        (first, second), (p1, p2) = top.indices.tolist(), top.values.tolist()
        if self.kind == "digit":
            return f"{first} ({p1:.0%})"
        if self.kind == "not sure":
            return f"not sure: {first} ({p1:.0%}) or {second} ({p2:.0%})"
        return "this does not look like a digit"


@dataclass
class RejectionRule:
    """Two energy thresholds fitted on validation digits (see the module's docstring)."""

    confident: float  # 95% of validation digits score at least this
    anything: float  # 99% of validation digits score at least this

    def verdicts(self, logits: torch.Tensor) -> list[Verdict]:
        scores, probs = energy(logits), logits.float().softmax(1)
        out = []
        for score, p in zip(scores.tolist(), probs):
            if score < self.anything:
                kind = "not a digit"
            elif score < self.confident or p.max() < 0.5:
                kind = "not sure"
            else:
                kind = "digit"
            out.append(Verdict(kind, int(p.argmax()), p, score))
        return out


def fit_rejection_rule(model, val_images: torch.Tensor) -> RejectionRule:
    """Thresholds from the validation digits alone: the test set and the non-digits are never used."""
    scores = energy(predict_logits(model, val_images))
    return RejectionRule(confident=scores.quantile(1 - KEEP_CONFIDENT).item(),
                         anything=scores.quantile(1 - KEEP_ANY).item())
