"""Equalities on outputs held exactly by the sequential clamps: the output scaling that makes them exact.

A premise-free equality ``sum_i a_i y_i = sum_j c_j x_j + d`` (raw units) reads, in network units,
``A . n + C . xi + K = 0`` with ``A_i = a_i s_i`` and ``C_j = c_j sx_j`` (``s``, ``sx`` the output and input
scales). The sequential clamps can hold it exactly: the output ``k`` the equation defines (``derived_output``)
gets the same affine form as its lower and its upper bound, and its clamp returns that form. In the stored network that form has
coefficients ``-A_i / A_k`` and ``-C_j / A_k`` and constant ``-K / A_k``; the equality holds on the exact
network only if these are float32 values, which the data's own min/max scaling almost never gives (the
scales of different columns have no exact ratio). No certificate margin can absorb the difference.

So the outputs of an equation are rescaled, each by a factor within sqrt(2) of 1: every ``|A_i|`` becomes a
reference unit ``r`` times a power of two (``r`` the first input's coefficient ``|C_j|`` when the equation has
an input, else the largest output's ``|A_i|``), and the defined output's offset moves so that ``K = 0``. The new
scales and offsets are exact rationals, stored as such in the encoding (``Encoding.output_affine_exact``); the
rule is then read again in the new units, and every ratio is a power of two. An equation with inputs of
scales that have no exact ratio to each other (two inputs of unrelated ranges) cannot be made exact this way
and is left to the band hint (``deepsade.equalities``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np

from deepsade.constructions.fourier_motzkin import Bound, Projection
from deepsade.constructions.recognise import NotApplicable
from deepsade.data import Encoding
from deepsade.linear import LinearAtom, NotLinear, atom_from_comparison
from deepsade.spec import Spec, conjunction_atoms, parse_spec


def float32_exact(value: Fraction) -> bool:
    """Whether ``value`` is a float32 value exactly (0 included)."""
    return Fraction(float(np.float32(float(value)))) == value


def output_equalities(spec: Spec, premised: bool = False) -> list[tuple[int, LinearAtom]]:
    """(assert index, atom) of every linear ``=`` that mentions an output in a premise-free assert that is a
    conjunction of comparisons, in assert order (others are not the clamps' to take); with ``premised``, those
    in the conclusion of an assert with a premise too (the clamps hold them behind a premise gate)."""
    found = []
    for a in spec.asserts:
        if a.has_premise and not premised:
            continue
        for comparison in conjunction_atoms(a.conclusion) or []:
            try:
                atom = atom_from_comparison(comparison)
            except NotLinear:
                continue
            if atom.op == "==" and atom.outputs():
                found.append((a.index, atom))
    return found


def derived_output(atom: LinearAtom) -> int:
    """The output an equation defines (the clamps compute it last among the equation's outputs, as the affine
    form of the others and the inputs): the one with the largest coefficient in network units, its raw
    coefficient times its scale, ties to the last. Its error is then the others' errors combined, which are
    small next to its own range (an equation's small part defined as total minus the large parts would carry
    the large parts' errors: 3.7x ffn's MSE in a new-user probe where the small part came last)."""
    outputs = atom.outputs()
    return max(outputs, key=lambda k: (abs(outputs[k]), k))


def clamp_order(spec: Spec, n_outputs: int, premised: bool = False) -> list[int] | None:
    """The order in which the clamps compute the outputs so that each equation's defined output comes after
    the equation's other outputs: the others first (index order), then the defined ones (assert order); None
    when the rule states no equality on outputs (``premised``: equalities behind a premise count too)."""
    defined = list(dict.fromkeys(derived_output(atom) for _, atom in output_equalities(spec, premised)))
    if not defined:
        return None
    return [k for k in range(n_outputs) if k not in defined] + defined


def inexact_reason(atom: LinearAtom, spec: Spec, where: str) -> str | None:
    """Why the clamps cannot hold this equality exactly in the current units (None: they can): the ratios of
    its coefficients to the defined output's must be float32 values and its constant 0."""
    k = derived_output(atom)
    lead = atom.outputs()[k]
    ratios = [v / lead for v in atom.outputs().values()] + [v / lead for v in atom.inputs().values()]
    if atom.const != 0 or not all(float32_exact(r) for r in ratios):
        return (f"{where} states an equality on {spec.output_names[k]!r} whose coefficients in network units are "
                "not exact float32 ratios (the output scaling of the data does not make them so)")
    return None


def _power_of_two_near(ratio: Fraction) -> Fraction:
    """The power of two nearest ``ratio`` > 0 on a log scale."""
    exponent = round(math.log2(float(ratio)))
    return Fraction(2) ** exponent


def exact_scaling(spec: Spec, encoding: Encoding) -> tuple[Spec, Encoding] | None:
    """The rule read in an output scaling where each of its equalities is exact for the clamps, and that
    encoding; None when the rule states no equality on outputs (or they are exact already).

    Raises NotApplicable (one line) when the equalities cannot be made exact: two equalities ending on the same
    output, or an equation whose inputs have scales without an exact ratio."""
    equalities = output_equalities(spec, premised=True)
    if encoding.task != "regression" or not equalities:
        return None
    if all(inexact_reason(atom, spec, "") is None for _, atom in equalities):
        return None
    offsets = {i: o for i, (o, _) in enumerate(encoding.output_affine())}
    natural_scales = {i: s for i, (_, s) in enumerate(encoding.output_affine())}  # the units ``equalities`` are in
    scales = dict(natural_scales)  # as chosen so far
    fixed: set[int] = set()  # outputs whose scale an earlier equation chose
    derived: dict[int, int] = {}  # output -> the assert that defines it
    for index, atom in equalities:
        where = f"assert {index + 1}"
        outputs, inputs = atom.outputs(), atom.inputs()
        raw = {i: outputs[i] / natural_scales[i] for i in outputs}  # a_i: raw-unit coefficients (scale-free)
        if inputs:
            reference = abs(inputs[min(inputs)])
        else:
            anchored = [i for i in sorted(outputs) if i in fixed]
            reference = abs(raw[anchored[0]] * scales[anchored[0]]) if anchored else max(map(abs, outputs.values()))
        new_scales = dict(scales)
        for i in outputs:
            if i not in fixed:
                natural = abs(outputs[i])
                new_scales[i] = scales[i] * reference * _power_of_two_near(natural / reference) / natural
        # the output it defines, chosen as derived_output will choose it in the new units
        k = derived_output(LinearAtom({f"y!{i}": raw[i] * new_scales[i] for i in outputs}, Fraction(0), "=="))
        if k in derived:
            raise NotApplicable(f"{where} and assert {derived[k] + 1} both define output {spec.output_names[k]!r}: "
                                "the clamps define each output by one equality at most")
        if k in fixed:
            raise NotApplicable(f"{where} defines output {spec.output_names[k]!r}, which an earlier equality "
                                "already uses")
        lead = raw[k] * new_scales[k]
        ratios = [raw[i] * new_scales[i] / lead for i in outputs] + [c / lead for c in inputs.values()]
        if not all(float32_exact(r) for r in ratios):
            names = ", ".join(spec.input_names[j] for j in sorted(inputs))
            raise NotApplicable(f"{where} states an equality over inputs ({names}) whose scales have no exact ratio "
                                "to each other, so no output scaling makes it exact for the clamps")
        # the constant in the new units: K + sum_i a_i (m'_i - m_i), zero by the defined output's offset
        constant = atom.const + sum((raw[i] * (offsets.get(i) - encoding.output_affine()[i][0])
                                     for i in outputs if i != k), Fraction(0))
        natural_offset = encoding.output_affine()[k][0]
        offsets[k] = natural_offset - constant / raw[k]
        scales.update(new_scales)
        fixed.update(outputs)
        derived[k] = index
    pairs = [(offsets[i], scales[i]) for i in range(len(spec.output_names))]
    aligned = replace(encoding, output_affine_exact=[[str(o), str(s)] for o, s in pairs],
                      target_min=[float(o) for o, _ in pairs], target_max=[float(o + s) for o, s in pairs])
    rescaled = parse_spec(spec.source, aligned)
    for index, atom in output_equalities(rescaled, premised=True):
        reason = inexact_reason(atom, rescaled, f"assert {index + 1}")
        if reason is not None:  # the construction above is exact; this guards against a change that breaks it
            raise NotApplicable(f"{reason} (after rescaling the outputs)")
    return rescaled, aligned


def for_clamps(spec: Spec, encoding: Encoding) -> tuple[Spec, Encoding]:
    """The rule and encoding the sequential clamps work in: rescaled when that makes the rule's equalities exact
    (``exact_scaling``), else as given (the clamps then name the equality they cannot hold)."""
    try:
        rescaled = exact_scaling(spec, encoding)
    except NotApplicable:
        return spec, encoding
    return rescaled if rescaled is not None else (spec, encoding)



def defined_bounds(projection: Projection, spec: Spec) -> Projection:
    """``projection`` with each equation's defined output bounded by the equation's form alone, as its lower and
    its upper bound: the clamp then returns that form exactly. Its other bounds (other asserts on it) are left
    out: they hold once it equals the form, because eliminating it combined them with the equation into the
    bounds of the outputs computed before it (float32 copies of those pieces, 8/3 and the like, would otherwise
    sit next to the exact form and could move the output off it by a rounding)."""
    order = list(projection.order) if projection.order is not None else list(range(len(spec.output_names)))
    lower, upper = list(projection.lower), list(projection.upper)
    n_in = len(spec.input_names)
    for _, atom in output_equalities(spec):
        k = derived_output(atom)
        position = order.index(k)
        outputs, inputs, lead = atom.outputs(), atom.inputs(), atom.outputs()[k]
        form = Bound(tuple(-inputs.get(j, Fraction(0)) / lead for j in range(n_in)),
                     tuple(-outputs.get(order[p], Fraction(0)) / lead for p in range(position)),
                     -atom.const / lead)
        if any(outputs.get(order[p], 0) != 0 for p in range(position + 1, len(order))):
            raise ValueError("an equation reads an output the clamps compute after the one it defines")
        lower[position], upper[position] = (form,), (form,)
    return replace(projection, lower=tuple(lower), upper=tuple(upper))
