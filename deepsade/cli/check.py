"""``deepsade check``: parse a rule file against a CSV and report bindings, domain, linearity and label violations."""

from __future__ import annotations

import click
import numpy as np
import z3

from deepsade.cli.common import data_options, parse_features, rules_and_data, user_errors
from deepsade.ingest import prepare, read_csv
from deepsade.semantics import evaluate
from deepsade.spec import Assert, Spec, parse_spec, vacuous_asserts
from deepsade.terms import distinct_subterms, free_constants, split_implication


@click.command("check")
@rules_and_data
@data_options
@click.option("--all-inputs", is_flag=True,
              help="Print the domain of every input (by default every input up to 30, else only the mapped ones).")
@user_errors
def check(constraint, data_file, targets, features, task, positive, impute, domain_file, all_inputs) -> None:
    """Parse the rules in RULES.smt2 against DATA.csv and report bindings, domain, linearity and label violations."""
    frame = read_csv(data_file)
    data = prepare(frame, list(targets), parse_features(features), task, positive, impute, domain_file)
    spec = parse_spec(constraint, data.encoding)
    report_check(spec, data, all_inputs, positive_given=positive is not None)


def report_check(spec: Spec, data, all_inputs: bool = False, positive_given: bool = False) -> None:
    enc = data.encoding
    echo = click.echo
    echo(f"data: {data.n_rows} rows used, {data.rows_dropped} dropped for missing values"
         + (f", {data.rows_imputed} imputed" if data.rows_imputed else "") + f"; task: {enc.task}")
    if data.imputation_note():
        echo(f"note: {data.imputation_note()}")
    if data.domain_note():
        echo(f"note: {data.domain_note()}")
    chosen = None if positive_given else enc.positive_class_note()  # said when the tool chose it, as train does
    for note in [chosen, enc.constant_columns_note(), enc.identifier_columns_note(), *spec.notes]:
        if note:
            echo(f"note: {note}")
    bound_inputs = [n for n in spec.declared if n in enc.input_names]
    bound_outputs = [n for n in spec.declared if n in enc.output_names]
    echo(f"inputs bound ({len(bound_inputs)}): {', '.join(bound_inputs) or '-'}")
    echo(f"outputs bound ({len(bound_outputs)}): {', '.join(bound_outputs)}")
    echo(f"network: {len(enc.input_names)} inputs, {len(enc.output_names)} outputs: {', '.join(enc.output_names)}")
    mapped = spec.mapped_features
    echo(f"mapped (skip-connection) features: {', '.join(enc.input_names[j] for j in mapped) or 'none'}")
    shown = range(len(enc.input_names)) if all_inputs or len(enc.input_names) <= 30 else mapped
    echo(f"domain box (raw units, from {data.domain.source}):")
    for j in shown:
        echo(f"  {enc.input_names[j]:<40} [{data.domain.lower[j]:.6g}, {data.domain.upper[j]:.6g}]")
    if len(shown) < len(enc.input_names):
        echo(f"  ... {len(enc.input_names) - len(shown)} more inputs (--all-inputs shows them)")
    truth = spec.evaluate_raw(data.raw_inputs, data.label_scores())
    vacuous = set(vacuous_asserts(spec, *data.domain.scaled_exact(enc)))
    from deepsade.box_edges import premise_edges

    edges, edge_said = premise_edges(spec, enc, data.domain), set()
    echo("asserts:")
    for a in spec.asserts:
        shape = "P => Q" if a.has_premise else "Q"
        if a.case_of is not None:
            shape += f", a case of assert {a.case_of + 1} as written"
        kind = "linear arithmetic" if a.linear else "nonlinear arithmetic"  # of the terms, whatever the Boolean form
        text = " ".join(a.text.split())
        echo(f"  [{a.index + 1}] {kind}, {shape}: {text[:100]}{'...' if len(text) > 100 else ''}")
        broken = ~truth[:, a.index]
        miss = _largest_equality_miss(a, spec, data.raw_inputs, data.label_scores(), broken)
        echo(f"      rows whose true labels violate it: {int(broken.sum())}"
             + (f" (its equality missed by up to {miss:.3g}, raw units: rounded data can miss one by a rounding)"
                if miss is not None else ""))
        if a.index in vacuous:
            echo("      warning: its premise never holds in the domain box, so it constrains nothing there "
                 "(values are raw units)")
        past = [e.describe() for e in edges if e.written == a.written_index]
        if past and a.written_index not in edge_said:  # once per assert as written (its first case)
            edge_said.add(a.written_index)
            echo(f"      note: its premise goes on past the domain box, to {' and '.join(past)}; the guarantee "
                 "stops at the box (--domain widens it)")
    echo(f"rows violating at least one assert: {int((~truth.all(axis=1)).sum())} of {data.n_rows}")
    from deepsade.conflicts import find_conflicts

    for conflict in find_conflicts(spec, enc, *data.domain.scaled_exact(enc)):
        echo(f"warning: {conflict.describe()}")


def _largest_equality_miss(a: Assert, spec: Spec, raw_inputs: np.ndarray, raw_outputs: np.ndarray,
                           broken: np.ndarray) -> float | None:
    """The largest |lhs - rhs| of the assert's equalities between numbers over the ``broken`` rows (raw units),
    or None when it states none or no row breaks it: a sum of parts rounded to cents misses its total by a
    rounding, which the user should see beside the count."""
    if not broken.any():
        return None
    outputs = set(spec.output_names)
    conclusion = split_implication(a.raw, outputs)[1]  # a premise's equalities on inputs hold on these rows
    equalities = [t for t in distinct_subterms(conclusion)
                  if z3.is_eq(t) and z3.is_arith(t.arg(0)) and free_constants(t) & outputs]
    if not equalities:
        return None
    env = {name: raw_inputs[broken, j] for j, name in enumerate(spec.input_names)}
    env.update({name: raw_outputs[broken, k] for k, name in enumerate(spec.output_names)})
    with np.errstate(all="ignore"):
        largest = max(float(np.nanmax(np.abs(evaluate(t.arg(0) - t.arg(1), env)))) for t in equalities)
    return largest if np.isfinite(largest) else None
