"""Rule labels: a score-clamp network trains towards the rule's answer where a training label contradicts it.

The labels are passed through the network's own clamps as scores. A label the rule allows comes out as it went
in; a label it forbids comes out as the class the clamps force; a multiclass label the rule only excludes is
left as it is and counted as ambiguous. Training records the counts, and the certificate is untouched.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.constructions.rule_labels import rule_labels
from deepsade.constructions.score_clamp import ScoreClampedMLP
from deepsade.constructions.score_clamp_rule import compile_score_program
from deepsade.data import Encoding
from deepsade.estimator import DeepSaDe
from deepsade.spec import parse_spec_text

DENY_RULE = """
(declare-const score Real)
(declare-const other Real)
(declare-const approved Real)
(assert (=> (< score 0.3) (< approved 0.0)))
"""
# in the top band the kind is c; in the bottom band it is never b (a or c, the rule does not say which)
KIND_RULES = """
(declare-const score Real)
(declare-const other Real)
(declare-const |kind=a| Real)
(declare-const |kind=b| Real)
(declare-const |kind=c| Real)
(assert (=> (> score 0.7) (and (> |kind=c| |kind=a|) (> |kind=c| |kind=b|))))
(assert (=> (< score 0.3) (or (> |kind=a| |kind=b|) (> |kind=c| |kind=b|))))
"""
TAG_RULE = """
(declare-const score Real)
(declare-const other Real)
(declare-const vegan Real)
(declare-const vegetarian Real)
(assert (=> (> vegan 0.0) (> vegetarian 0.0)))
"""


def _clamped_network(rules: str, outputs: list[str], targets: list[str], task: str) -> ScoreClampedMLP:
    encoding = Encoding(feature_columns=["score", "other"], categorical_levels={}, input_names=["score", "other"],
                        target_columns=targets, task=task, output_names=outputs, input_min=[0.0, 0.0],
                        input_max=[1.0, 1.0])
    spec = parse_spec_text(rules, encoding)
    low, high = [Fraction(0)] * 2, [Fraction(1)] * 2
    program = compile_score_program(spec, low, high, task, 1e-4)
    torch.manual_seed(0)
    return ScoreClampedMLP(2, [4], len(outputs), spec.mapped_features, program)


X = torch.tensor([[0.1, 0.5], [0.1, 0.5], [0.5, 0.5], [0.5, 0.5], [0.9, 0.5], [0.9, 0.5]])


def test_a_binary_label_the_rule_forbids_becomes_the_rules_answer_and_the_others_stay():
    model = _clamped_network(DENY_RULE, ["approved"], ["approved"], "binary")
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    result = rule_labels(model, "binary", X, labels)
    assert result.targets.tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert (result.changed, result.ambiguous) == (1, 0)
    assert result.targets.dtype == labels.dtype and result.targets.shape == labels.shape


def test_a_multiclass_label_is_replaced_where_the_rule_names_the_class_and_kept_where_it_only_excludes():
    model = _clamped_network(KIND_RULES, ["kind=a", "kind=b", "kind=c"], ["kind"], "multiclass")
    labels = torch.tensor([1, 0, 1, 2, 0, 2])  # b in the bottom band (excluded), a in the top band (forced c)
    result = rule_labels(model, "multiclass", X, labels)
    assert result.targets.tolist() == [1, 0, 1, 2, 2, 2]
    assert (result.changed, result.ambiguous) == (1, 1)


def test_multi_label_rows_gain_the_label_an_implication_asks_for():
    model = _clamped_network(TAG_RULE, ["vegan", "vegetarian"], ["vegan", "vegetarian"], "multilabel")
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    result = rule_labels(model, "multilabel", X, labels)
    assert result.targets.tolist() == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]
    assert (result.changed, result.ambiguous) == (2, 0)


def test_regression_targets_are_refused():
    model = _clamped_network(DENY_RULE, ["approved"], ["approved"], "binary")
    with pytest.raises(ValueError, match="classifiers"):
        rule_labels(model, "regression", X, torch.zeros(6))


def _flipped_frame(n: int, seed: int) -> tuple[pd.DataFrame, int]:
    """Approval driven by ``score``, with a fifth of the denied rows under the rule's premise approved."""
    rng = np.random.default_rng(seed)
    score, other = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    approved = (score + 0.3 * other + rng.normal(0, 0.1, n) > 0.6).astype(int)
    flip = (score < 0.3) & (approved == 0) & (rng.random(n) < 0.2)
    approved[flip] = 1
    return pd.DataFrame({"score": score, "other": other, "approved": approved}), int(flip.sum())


def test_score_clamp_training_counts_the_labels_it_replaced_and_stays_certified(tmp_path):
    path = tmp_path / "deny.smt2"
    path.write_text(DENY_RULE)
    frame, flipped = _flipped_frame(400, 0)
    assert flipped > 5
    model = DeepSaDe(path, ["approved"], hidden=(8, 6), epochs=2, lr=0.05, seed=0).fit(frame)
    art = model.artifact_
    assert art.method == "scoreclamp" and art.certificate["verdict"] == "certified"
    counts = art.training["rule_labels"]
    assert set(counts) == {"train", "validation"}
    contradicting = int(((frame["score"] < 0.3) & (frame["approved"] == 1)).sum())  # the flipped rows and a few more
    assert counts["train"]["changed"] + counts["validation"]["changed"] == contradicting
    assert counts["train"]["changed"] > 0 and counts["train"]["ambiguous"] == 0
    note = next(n for n in art.training["notes"] if "contradict the rule" in n)
    assert note.startswith(f"{contradicting} label(s) ({counts['train']['changed']} training, ")


def test_no_note_when_every_label_keeps_the_rule():
    from deepsade.constructions.rule_labels import RuleLabels, rule_labels_note

    clean = RuleLabels(torch.zeros(3), 0, 0)
    assert rule_labels_note(clean, clean) is None
    assert rule_labels_note(RuleLabels(torch.zeros(3), 2, 1), None) == (
        "2 label(s) (2 training) contradict the rule; the network predicts the rule's answer there whatever it "
        "learns, and was trained towards that answer; 1 label(s) name a class the rule excludes on their row; "
        "they were kept as they are")


def test_labels_on_a_strict_premise_edge_are_counted_apart_from_contradictions():
    model = _clamped_network(DENY_RULE, ["approved"], ["approved"], "binary")
    # score = 0.3 is the edge of 'score < 0.3': the rule allows approval there, but the clamp (continuous, and
    # forcing denial arbitrarily close) denies it too
    x = torch.tensor([[0.1, 0.5], [0.3, 0.5], [0.9, 0.5]])
    labels = torch.tensor([1.0, 1.0, 1.0])
    allowed = torch.tensor([False, True, True])
    result = rule_labels(model, "binary", x, labels, allowed)
    assert result.targets.tolist() == [0.0, 0.0, 1.0] and (result.changed, result.beside) == (2, 1)
    from deepsade.constructions.rule_labels import rule_labels_note

    note = rule_labels_note(result, None)
    assert note.startswith("1 label(s) (1 training) contradict the rule;")
    assert "1 label(s) (1 training) the rule allows lie next to a premise" in note


def test_an_excluded_class_on_a_strict_premise_edge_is_not_called_excluded():
    from deepsade.constructions.rule_labels import RuleLabels, rule_labels_note

    # a triage probe: 'discharge' at age 12 exactly, for "age < 12 -> never discharge": the rule allows it
    note = rule_labels_note(RuleLabels(torch.zeros(6), 0, 5, 0, 5), None)
    assert "name a class the rule excludes" not in note
    assert note.startswith("5 label(s) the rule allows lie next to a premise that excludes their class")
    mixed = rule_labels_note(RuleLabels(torch.zeros(6), 0, 3, 0, 1), None)
    assert mixed.startswith("2 label(s) name a class the rule excludes") and "1 label(s) the rule allows" in mixed
