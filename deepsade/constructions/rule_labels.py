"""Training labels that a rule contradicts, replaced by what the rule says (for constructions that clamp scores).

A score-clamp network's output on a row inside a premise is the clamps' verdict, whatever its base scores;
a training label that contradicts the rule there can never be met. Left as it is, such a label still pulls
the base (through the convex refit of its last layer, and through validation's choice of epoch) towards the
answer the rule forbids, and the base learns nothing of the rule's region, which the clamps alone decide. So
the labels are passed through the same clamps, as scores: label ``c`` as the scores ``LABEL_SCORE`` on ``c`` and 0
elsewhere (multiclass), or ``+-LABEL_SCORE`` per logit (binary, multi-label). A label the rule allows comes out
as it went in; one it forbids comes out as the rule's answer, the label the network will predict there. A
multiclass label the rule only excludes ("never class B") has no single answer (the other classes tie): it is
left as it is and counted as ambiguous.

This changes what the base is trained towards, never the network's function or its certificate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# the size of a label's score; only the signs (binary, multi-label) or the top class (multiclass) of the clamped
# scores are read, so any positive value serves
LABEL_SCORE = 1.0


@dataclass(frozen=True)
class RuleLabels:
    """Targets with the labels a rule contradicts replaced, and how many rows changed or were ambiguous."""

    targets: torch.Tensor
    changed: int
    ambiguous: int
    beside: int = 0  # of the changed, labels the rule allows: rows next to a premise, where the layer decides too
    ambiguous_beside: int = 0  # of the ambiguous, labels the rule allows (next to a premise that excludes them)

    def summary(self) -> dict[str, int]:
        return {"changed": self.changed, "ambiguous": self.ambiguous, "beside_premise": self.beside,
                "ambiguous_beside_premise": self.ambiguous_beside}


def rule_labels(model: torch.nn.Module, task: str, inputs: torch.Tensor, targets: torch.Tensor,
                allowed: torch.Tensor | None = None) -> RuleLabels:
    """``targets`` (class indices, or 0/1 per output) passed through ``model.clamp`` as scores at ``inputs``.

    ``allowed``: per row, whether the rule allows its label (``Spec.evaluate_raw``). A changed label the rule
    allows lies next to a premise, not in it: on a strict bound's edge (``calls = 3`` for ``calls < 3``) every
    continuous network gives the rule's answer, since it gives it arbitrarily close; or in the premise gate's
    band beyond. Those are counted apart (``beside``), so the note does not call them contradictions."""
    if task == "regression":
        raise ValueError("rule labels are for classifiers; a regression target is not a score")
    with torch.no_grad():
        if task == "multiclass":
            labels = targets.long().reshape(-1)
            scores = torch.zeros(len(labels), model.n_outputs, dtype=inputs.dtype)
            scores[torch.arange(len(labels)), labels] = LABEL_SCORE
            clamped = model.clamp(scores, inputs)
            top = clamped.max(dim=1, keepdim=True).values
            unique = (clamped == top).sum(dim=1) == 1
            answer = torch.where(unique, clamped.argmax(dim=1), labels)
            changed = answer != labels
            return RuleLabels(answer.to(targets.dtype).reshape(targets.shape), int(changed.sum()), int((~unique).sum()),
                              _beside(changed, allowed), _beside(~unique, allowed))
        labels = targets.reshape(len(inputs), -1).to(inputs.dtype)
        clamped = model.clamp((2 * labels - 1) * LABEL_SCORE, inputs)
        answer = (clamped > 0).to(inputs.dtype)
        changed = (answer != labels).any(dim=1)
        return RuleLabels(answer.to(targets.dtype).reshape(targets.shape), int(changed.sum()), 0,
                          _beside(changed, allowed))


def _beside(changed: torch.Tensor, allowed: torch.Tensor | None) -> int:
    return 0 if allowed is None else int((changed & torch.as_tensor(allowed, dtype=torch.bool)).sum())


def rule_labels_note(train: RuleLabels, validation: RuleLabels | None) -> str | None:
    """One line for the user when some labels contradict the rule (None when none do); ``validation`` None when
    the validation rows are the training rows."""
    parts_of = [("training", train)] + ([("validation", validation)] if validation is not None else [])
    changed, ambiguous = sum(r.changed for _, r in parts_of), sum(r.ambiguous for _, r in parts_of)
    ambiguous_beside = sum(r.ambiguous_beside for _, r in parts_of)
    parts = []
    beside = sum(r.beside for _, r in parts_of)
    if changed - beside:
        where = ", ".join(f"{r.changed - r.beside} {name}" for name, r in parts_of)
        parts.append(f"{changed - beside} label(s) ({where}) contradict the rule; the network predicts the rule's "
                     "answer there whatever it learns, and was trained towards that answer")
    if beside:
        where = ", ".join(f"{r.beside} {name}" for name, r in parts_of)
        parts.append(f"{beside} label(s) ({where}) the rule allows lie next to a premise (on the edge of a strict "
                     "bound, x = 3 for x < 3, or just beyond it): a continuous network gives the rule's answer there "
                     "too, since it gives it arbitrarily close, so they were trained towards that answer as well "
                     "(a premise with room, x <= 2 for whole numbers, leaves such rows free)")
    if ambiguous - ambiguous_beside:
        parts.append(f"{ambiguous - ambiguous_beside} label(s) name a class the rule excludes on their row; they were "
                     "kept as they are")
    if ambiguous_beside:  # a triage probe: 'discharge' at age 12 exactly, for "age < 12 -> never discharge"
        parts.append(f"{ambiguous_beside} label(s) the rule allows lie next to a premise that excludes their class (on "
                     "the edge of a strict bound, or just beyond it): a continuous network cannot predict that class "
                     "there either; they were kept as they are")
    return "; ".join(parts) or None
