"""SL (semantic loss, Xu et al. 2018): minus the log-probability that the predicted labels satisfy the constraint.

The Boolean events are the labels the classifier predicts, read the way true labels are read
against the constraint (``Encoding.targets_as_scores``: +1 for a predicted class / label, -1
otherwise):

- binary and multi-label: every output the constraint mentions is an independent Bernoulli
  variable "score > 0" with probability ``sigmoid(score)``;
- multiclass: the predicted class is one categorical variable with probabilities
  ``softmax(scores)``; the constraint is read on the one-hot (+1 / -1) scores of each class, so SL is
  ``-log P(class in the allowed set)``.

For that reading to mean what the formula says, every comparison that involves an output must be a
sign test of one score (``score > 0``, ``(< score 0)``, ``c * score >= 0``; for multiclass also
differences of scores such as ``rock > pop``), possibly nested in ``ite`` conditions (counts such as
"at least two labels"). Anything else (a regression target, a score compared with 0.5 or with an
input) is refused with a clear message: use ``sbr`` or ``reg`` there.

Which assignments satisfy the constraint depends on the row only through its premises and the
input-only comparisons in the conclusions: for each such *pattern* the satisfying assignments are
computed once, exactly (all ``2^k`` assignments evaluated at once when ``k <= 16`` events, z3 model
enumeration beyond), and cached.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
import z3

from deepsade.baselines.constraint import ConstraintLoss, Facts, base_facts
from deepsade.baselines.formula import mentions_outputs
from deepsade.data import TabularData
from deepsade.errors import UserInputError
from deepsade.numbers import z3_numeral_or_none
from deepsade.spec import Spec, evaluate, free_constants, is_linear, output_var

MAX_ENUMERATED_EVENTS = 16
MAX_SATISFYING_ASSIGNMENTS = 1 << 16


def _short(expr: z3.ExprRef) -> str:
    text = " ".join(expr.sexpr().split())
    return text if len(text) <= 70 else text[:67] + "..."


def _direct_variables(term: z3.ExprRef) -> set[str]:
    """Variables of an arithmetic term outside ``ite`` conditions (those are formulas of their own)."""
    if z3.is_const(term):
        return {term.decl().name()} if term.decl().kind() == z3.Z3_OP_UNINTERPRETED else set()
    if z3.is_app(term) and term.decl().kind() == z3.Z3_OP_ITE:
        return _direct_variables(term.arg(1)) | _direct_variables(term.arg(2))
    found: set[str] = set()
    for child in term.children():
        found |= _direct_variables(child)
    return found


def _ite_conditions(term: z3.ExprRef) -> list[z3.BoolRef]:
    if z3.is_app(term) and term.decl().kind() == z3.Z3_OP_ITE and not z3.is_bool(term):
        return [term.arg(0), *_ite_conditions(term.arg(1)), *_ite_conditions(term.arg(2))]
    return [c for child in term.children() for c in _ite_conditions(child)]


def _is_comparison(expr: z3.BoolRef) -> bool:
    return expr.num_args() == 2 and z3.is_arith(expr.arg(0)) and (
        z3.is_le(expr) or z3.is_lt(expr) or z3.is_ge(expr) or z3.is_gt(expr) or z3.is_eq(expr) or z3.is_distinct(expr)
    )


class SemanticLoss(ConstraintLoss):
    """``-log P(predicted labels satisfy every assert)`` per row, computed exactly."""

    name = "sl"

    def __init__(self, spec: Spec, task: str):
        super().__init__(spec)
        if task == "regression":
            raise UserInputError(
                "sl (semantic loss) needs Boolean events, i.e. classifier scores compared with 0; the outputs of "
                "a regression are continuous values: use --method reg or --method sbr"
            )
        self.task = task
        self.input_atoms: list[z3.BoolRef] = []
        for a in spec.asserts:
            self._check(a.conclusion, a.index)
        if task == "multiclass":
            self.events = list(range(len(spec.output_names)))
        else:
            self.events = sorted({k for a in spec.asserts for k in a.outputs})
        self._pattern_ids: dict[tuple[bool, ...], int] = {}
        self._allowed: list[torch.Tensor] = []  # per pattern: (m, k) 0/1 assignments, or (K,) allowed classes
        self._kind: list[str] = []  # per pattern: "all", "none" or "some"

    # ---- analysis ---------------------------------------------------------------------------
    def _check(self, expr: z3.BoolRef, index: int) -> None:
        """Refuse formulas whose output comparisons are not label events; collect input-only atoms."""
        if not mentions_outputs(expr):
            if free_constants(expr) and not any(expr.eq(seen) for seen in self.input_atoms):
                self.input_atoms.append(expr)
            return
        if not _is_comparison(expr):
            for child in expr.children():
                self._check(child, index)
            return
        sides = (expr.arg(0), expr.arg(1))
        direct = _direct_variables(sides[0]) | _direct_variables(sides[1])
        where = f"assert {index + 1}: {_short(expr)}"
        if any(name.startswith("x!") for name in direct):
            raise UserInputError(
                f"sl reads comparisons of outputs as label events, but {where} mixes outputs with inputs: "
                "use --method sbr"
            )
        if any(name.startswith("y!") for name in direct):
            self._check_sign_test(sides[0] - sides[1], where)
        for condition in _ite_conditions(sides[0]) + _ite_conditions(sides[1]):
            self._check(condition, index)

    def _check_sign_test(self, difference: z3.ArithRef, where: str) -> None:
        outputs = sorted(free_constants(difference))
        at_zero = z3.simplify(z3.substitute(difference, *[(z3.Real(n), z3.RealVal(0)) for n in outputs]))
        homogeneous = is_linear(difference) and z3_numeral_or_none(at_zero) == 0
        if self.task == "multiclass":
            if not homogeneous:
                raise UserInputError(
                    f"sl reads multiclass outputs as the predicted class, so each comparison must be a score compared "
                    f"with 0 or with another score; {where} is not: use --method sbr"
                )
            return
        if not homogeneous or len(outputs) != 1:
            raise UserInputError(
                f"sl reads each compared output as the label event 'score > 0', so a comparison must test the sign "
                f"of one score; {where} does not: use --method sbr"
            )

    # ---- patterns and satisfying assignments ----------------------------------------------------
    def row_facts(self, data: TabularData) -> Facts:
        facts = base_facts(self.spec, data)
        columns = [facts["premises"].numpy()]
        if self.input_atoms:
            env = {f"x!{j}": data.inputs[:, j] for j in range(data.inputs.shape[1])}
            columns.append(np.stack([np.broadcast_to(np.asarray(evaluate(atom, env), dtype=bool), (data.n_rows,))
                                     for atom in self.input_atoms], axis=1))
        keys, inverse = np.unique(np.concatenate(columns, axis=1), axis=0, return_inverse=True)
        ids = np.array([self._pattern_id(tuple(bool(v) for v in key)) for key in keys], dtype=np.int64)
        facts["pattern"] = torch.as_tensor(ids[np.asarray(inverse).reshape(-1)])
        return facts

    def _pattern_id(self, key: tuple[bool, ...]) -> int:
        if key not in self._pattern_ids:
            self._pattern_ids[key] = len(self._allowed)
            allowed = self._satisfying(key)
            total = len(self.events) if self.task == "multiclass" else 1 << len(self.events)
            count = int(allowed.sum()) if self.task == "multiclass" else len(allowed)
            self._kind.append("all" if count == total else "none" if count == 0 else "some")
            self._allowed.append(torch.as_tensor(allowed))
        return self._pattern_ids[key]

    def _formula(self, key: tuple[bool, ...]) -> z3.BoolRef:
        """The constraint for rows of this pattern: premises and input-only atoms replaced by their truth."""
        n_asserts = len(self.spec.asserts)
        substitution = [(atom, z3.BoolVal(v)) for atom, v in zip(self.input_atoms, key[n_asserts:], strict=True)]
        parts = []
        for a, premise in zip(self.spec.asserts, key[:n_asserts], strict=False):
            if premise:
                parts.append(z3.substitute(a.conclusion, *substitution) if substitution else a.conclusion)
        return z3.simplify(z3.And(*parts)) if parts else z3.BoolVal(True)

    def _satisfying(self, key: tuple[bool, ...]) -> np.ndarray:
        """Multiclass: allowed classes (K,) bool. Otherwise: satisfying sign assignments (m, k) of 0/1."""
        formula = self._formula(key)
        k = len(self.events)
        if self.task == "multiclass":
            scores = 2.0 * np.eye(k) - 1.0
            env = {f"y!{c}": scores[:, c] for c in range(k)}
            return np.broadcast_to(np.asarray(evaluate(formula, env), dtype=bool), (k,)).copy()
        if k <= MAX_ENUMERATED_EVENTS:
            bits = np.array(list(itertools.product((0.0, 1.0), repeat=k))).reshape(-1, k)
            env = {f"y!{e}": 2.0 * bits[:, i] - 1.0 for i, e in enumerate(self.events)}
            truth = np.broadcast_to(np.asarray(evaluate(formula, env), dtype=bool), (len(bits),))
            return bits[truth]
        return self._enumerate_with_z3(formula)

    def _enumerate_with_z3(self, formula: z3.BoolRef) -> np.ndarray:
        labels = [z3.Bool(f"label!{e}") for e in self.events]
        solver = z3.Solver()
        solver.add(z3.substitute(formula, *[(output_var(e), z3.If(b, z3.RealVal(1), z3.RealVal(-1)))
                                            for e, b in zip(self.events, labels, strict=True)]))
        found = []
        while solver.check() == z3.sat:
            model = solver.model()
            row = [1.0 if z3.is_true(model.eval(b, model_completion=True)) else 0.0 for b in labels]
            found.append(row)
            if len(found) > MAX_SATISFYING_ASSIGNMENTS:
                raise UserInputError(
                    f"sl: more than {MAX_SATISFYING_ASSIGNMENTS} label assignments satisfy the constraint over "
                    f"{len(labels)} outputs; the exact semantic loss is too large here: use --method sbr"
                )
            solver.add(z3.Or([b != model.eval(b, model_completion=True) for b in labels]))
        return np.array(found, dtype=np.float64).reshape(-1, len(labels))

    @property
    def unsatisfiable_patterns(self) -> int:
        """Patterns (input situations) for which no label assignment satisfies the constraint."""
        return self._kind.count("none")

    # ---- the loss -------------------------------------------------------------------------------
    def log_probability(self, outputs: torch.Tensor, pattern: int) -> torch.Tensor:
        """``log P(constraint holds)`` for every row of ``outputs`` as if it had this pattern."""
        allowed = self._allowed[pattern]
        if self.task == "multiclass":
            log_p = F.log_softmax(outputs, dim=-1)
            return torch.logsumexp(log_p.masked_fill(~allowed, float("-inf")), dim=-1)
        scores = outputs[..., self.events]
        log_pos, log_neg = F.logsigmoid(scores), F.logsigmoid(-scores)
        assignments = allowed.to(outputs.dtype)
        joint = log_neg.sum(-1, keepdim=True) + (log_pos - log_neg) @ assignments.T
        return torch.logsumexp(joint, dim=-1)

    def __call__(self, outputs: torch.Tensor, facts: Facts) -> torch.Tensor:
        loss = torch.zeros(outputs.shape[:-1], dtype=outputs.dtype)
        patterns = facts["pattern"]
        for pattern in torch.unique(patterns).tolist():
            # all allowed: probability 1, loss 0; none allowed: no prediction can help, left out
            if self._kind[pattern] != "some":
                continue
            rows = torch.nonzero(patterns == pattern).reshape(-1)
            values = -self.log_probability(outputs.index_select(-2, rows), pattern)
            loss = loss.index_copy(-1, rows, values)
        return loss
