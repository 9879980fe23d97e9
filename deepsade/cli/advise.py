"""``deepsade advise``: which methods can guarantee the rules of a file on this data, and why not."""

from __future__ import annotations

import json

import click

from deepsade.cli.common import data_options, parse_features, rules_and_data, user_errors


@click.command("advise")
@rules_and_data
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (one object per method).")
@user_errors
def advise(constraint, data_file, targets, features, task, positive, impute, domain_file, as_json) -> None:
    """List which methods can guarantee the rules in RULES.smt2 on DATA.csv, with the reason for each.

    Guarantee means: every input of the domain box satisfies every assert. Methods that build the rule
    into the network (HardNet-Aff, HCR) say whether the rule fits them; DeepSaDe takes any rule z3
    decides; the baselines give no guarantee.
    """
    from deepsade.constructions.advise import advise as advise_methods
    from deepsade.ingest import prepare, read_csv
    from deepsade.smtlib import read_constraint_file
    from deepsade.spec import parse_spec

    source = read_constraint_file(constraint)
    data = prepare(read_csv(data_file), list(targets), parse_features(features), task, positive, impute, domain_file)
    spec = parse_spec(source, data.encoding)
    answers = advise_methods(spec, data.encoding, data.domain)
    from dataclasses import replace

    from deepsade.conflicts import find_conflicts

    conflicts = find_conflicts(spec, data.encoding, *data.domain.scaled_exact(data.encoding))
    if conflicts:  # no model at all keeps a rule that contradicts itself: train refuses it
        why = f"no model can keep the rule: {conflicts[0].describe()}"
        answers = [replace(a, guarantees=False, reason=why) if a.guarantees else a for a in answers]
    if as_json:
        click.echo(json.dumps([{"method": a.method, "guarantees": a.guarantees, "reason": a.reason} for a in answers],
                              indent=1))
        return
    width = max(len(a.method) for a in answers)
    cases = "" if len(spec.asserts) == spec.n_written else f" ({len(spec.asserts)} once split into cases)"
    click.echo(f"{spec.n_written} assert(s){cases}, {len(spec.output_names)} output(s), task {data.encoding.task}")
    chosen_class = None if positive is not None else data.encoding.positive_class_note()  # as check and train say
    for note in [chosen_class, *spec.notes]:
        if note:
            click.echo(f"note: {note}")
    for conflict in conflicts:
        click.echo(f"warning: {conflict.describe()}")
    for title, group in (("can guarantee the rule", [a for a in answers if a.guarantees]),
                         ("cannot guarantee it", [a for a in answers if not a.guarantees])):
        click.echo(f"{title}:")
        for a in group or []:
            reason = "no model can keep the rule (the warning above)" if conflicts and a.reason.startswith(
                "no model can keep") else a.reason
            click.echo(f"  {a.method:<{width}}  {reason}")
        if not group:
            click.echo("  (none)")
    if conflicts:
        click.echo("train's default: none, train refuses a rule no model can keep")
        return
    from deepsade.equalities import equality_hint
    from deepsade.methods import AUTO, resolve_method
    from deepsade.training.settings import TrainSettings

    settings = TrainSettings()
    chosen, why = resolve_method(AUTO, spec, data, settings)
    why = why or f"auto: {chosen}"
    for a in answers:  # a reason listed above is named, not repeated
        if not a.guarantees and len(a.reason) > 40 and a.reason in why:
            why = why.replace(a.reason, f"as said for {a.method} above")
    click.echo(f"train's default, --method {why}")
    # the band hint is for equalities the clamps do not hold exactly; where they do, auto takes them as written
    if chosen != "polytope":
        hint = equality_hint(spec, settings.output_margin, [scale for _, scale in data.encoding.output_affine()])
        if hint:
            click.echo(f"note: {hint}")
