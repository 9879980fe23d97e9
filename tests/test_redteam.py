"""Red team: tamper a certified model directory in every field of every file and run `deepsade certify`.

Each tamper is either CAUGHT (exit 1, a FAILED line naming what differs) or HARMLESS (exit 0: the
re-check from first principles proves the directory as it now is). "resealed" tampers also recompute
every hash and the digest, as a forger with this code would; only checks from first principles stop them.
The parametrisation below is the record of what was tried and what happened.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from deepsade import artifact
from deepsade.cli import main

RULE = "(declare-const x1 Real)\n(declare-const y Real)\n(assert (=> (> x1 5.0) (<= y (* 2.0 x1))))\n"


@pytest.fixture(scope="module")
def certified_dir(tmp_path_factory) -> Path:
    """A small certified regression model: numeric inputs x1, x2, a categorical input, one target."""
    from deepsade.estimator import DeepSaDe

    rng = np.random.default_rng(0)
    n = 80
    x1, x2 = rng.uniform(0, 10, n), rng.uniform(-5, 5, n)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "area": rng.choice(["a", "b", "c"], n),
                          "y": 0.5 * x1 + 0.1 * x2 + rng.normal(0, 0.3, n)})
    # DeepSaDe's own last layer: the forgeries below shift weights a clamp construction would absorb
    estimator = DeepSaDe(RULE, ["y"], method="deepsade", hidden=(6, 4), epochs=1, batch_size=20, seed=0)
    estimator.fit(frame)
    assert estimator.certificate["verdict"] == "certified"
    out = tmp_path_factory.mktemp("redteam") / "model"
    estimator.save(out)
    (out.parent / "rule.smt2").write_text(RULE)
    return out


# ---- tampering helpers ------------------------------------------------------------------------------

def _edit_json(name: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        path = directory / name
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return apply


def model(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    return _edit_json(artifact.MODEL_FILE, edit)


def cert(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    return _edit_json(artifact.CERTIFICATE_FILE, edit)


def weights(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        tensors = load_file(str(directory / artifact.WEIGHTS_FILE))
        edit(tensors)
        save_file(tensors, str(directory / artifact.WEIGHTS_FILE))
    return apply


def setitem(path: str, value) -> Callable[[dict], None]:
    """Set a (dotted) field; list items by index: 'encoding.input_min.0'."""
    *parents, last = path.split(".")

    def edit(data: dict) -> None:
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def swap(path_a: str, path_b: str) -> Callable[[dict], None]:
    def get(data, path):
        node = data
        for key in path.split("."):
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node

    def edit(data: dict) -> None:
        a, b = get(data, path_a), get(data, path_b)
        setitem(path_a, b)(data)
        setitem(path_b, a)(data)
    return edit


def delete(path: str) -> Callable[[dict], None]:
    *parents, last = path.split(".")

    def edit(data: dict) -> None:
        node = data
        for key in parents:
            node = node[key]
        del node[last]
    return edit


def reseal(directory: Path, verdict: str = "certified") -> None:
    """What a forger does after a tamper: recompute every hash and the digest, claim ``verdict``."""
    from deepsade.certify import bound_components, digest_of
    from deepsade.smtlib import read_constraint_text

    art = artifact.load(directory)
    certificate = json.loads((directory / artifact.CERTIFICATE_FILE).read_text())
    margin = certificate.get("margin")
    margin = float(margin) if isinstance(margin, (int, float)) else float("nan")
    bound = bound_components(art.model, art.encoding, art.domain, read_constraint_text(art.constraint_text).text,
                             margin)
    certificate.update(verdict=verdict, bound=bound, digest=digest_of(bound), weights_sha256=bound["weights"],
                       constraint_sha256=artifact.text_sha256(art.constraint_text))
    (directory / artifact.CERTIFICATE_FILE).write_text(json.dumps(certificate))
    meta = json.loads((directory / artifact.MODEL_FILE).read_text())
    meta["constraint"]["sha256"] = artifact.text_sha256(art.constraint_text)
    meta["weights_sha256"] = bound["weights"]
    (directory / artifact.MODEL_FILE).write_text(json.dumps(meta))


def then_reseal(*tampers: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        for tamper in tampers:
            tamper(directory)
        reseal(directory)
    return apply


def add_to(name: str, delta: float, index: tuple = (0,)) -> Callable[[dict], None]:
    def edit(tensors: dict) -> None:
        tensor = tensors[name].clone()
        tensor[index] += delta
        tensors[name] = tensor
    return edit


def set_nan(name: str) -> Callable[[dict], None]:
    def edit(tensors: dict) -> None:
        tensor = tensors[name].clone()
        tensor.view(-1)[0] = float("nan")
        tensors[name] = tensor
    return edit


def one_ulp(name: str) -> Callable[[dict], None]:
    def edit(tensors: dict) -> None:
        tensor = tensors[name].clone()
        flat = tensor.view(-1)
        flat[0] = torch.nextafter(flat[0], torch.tensor(math.inf))
        tensors[name] = tensor
    return edit


def write(name: str, text: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).write_text(text)


def remove(name: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).unlink()


CAUGHT, HARMLESS = "caught", "harmless"

# (what was tampered, how, outcome, what the FAILED line says when caught)
TAMPERS = [
    # ---- model.json -----------------------------------------------------------------------------------
    ("model.format", model(setitem("format", "other/1")), CAUGHT, "unknown model format"),
    ("model.method", model(setitem("method", "ffn")), HARMLESS, ""),
    ("model.architecture.n_inputs", model(setitem("architecture.n_inputs", 6)), CAUGHT, "has shape"),
    ("model.architecture.hidden", model(setitem("architecture.hidden", [6, 5])), CAUGHT, "has shape"),
    ("model.architecture.n_outputs", model(setitem("architecture.n_outputs", 2)), CAUGHT, "has shape"),
    ("model.architecture.mapped_features (other input)", model(setitem("architecture.mapped_features", [1])),
     CAUGHT, "skip features"),
    ("model.architecture.mapped_features (none)", model(setitem("architecture.mapped_features", [])),
     CAUGHT, "has shape"),
    ("model.architecture (missing)", model(delete("architecture")), CAUGHT, "damaged"),
    ("model.encoding.feature_columns", model(swap("encoding.feature_columns.0", "encoding.feature_columns.1")),
     CAUGHT, "input names do not follow"),
    ("model.encoding.categorical_levels", model(setitem("encoding.categorical_levels.area", ["a", "b", "z"])),
     CAUGHT, "input names do not follow"),
    ("model.encoding.input_names", model(swap("encoding.input_names.0", "encoding.input_names.1")),
     CAUGHT, "input names do not follow"),
    ("model.encoding.target_columns", model(setitem("encoding.target_columns", ["x2"])), CAUGHT,
     "output names do not follow"),
    ("model.encoding.task", model(setitem("encoding.task", "binary")), CAUGHT, "two classes"),
    ("model.encoding.task (unknown)", model(setitem("encoding.task", "ranking")), CAUGHT, "unknown task"),
    ("model.encoding.output_names", model(setitem("encoding.output_names", ["x1"])), CAUGHT,
     "output names do not follow"),
    ("model.encoding.input_min/max swapped (x1)", model(swap("encoding.input_min.0", "encoding.input_max.0")),
     CAUGHT, "scaling factor"),
    ("model.encoding.input_min/max swapped, resealed",
     then_reseal(model(swap("encoding.input_min.0", "encoding.input_max.0"))), CAUGHT, "scaling factor"),
    ("model.encoding.input_min/max +-1.7e308", then_reseal(model(setitem("encoding.input_min.1", -1.7e308)),
                                                           model(setitem("encoding.input_max.1", 1.7e308))),
     CAUGHT, "scaling factor"),
    ("model.encoding.input_max NaN", model(setitem("encoding.input_max.1", float("nan"))), CAUGHT, "scaling factor"),
    ("model.encoding.input_min (x1 shifted)", model(setitem("encoding.input_min.0", -3.0)), CAUGHT,
     "different encoding"),
    ("model.encoding.classes", model(setitem("encoding.classes", ["no", "yes"])), CAUGHT, "has no classes"),
    ("model.encoding.target_min/max swapped", model(swap("encoding.target_min.0", "encoding.target_max.0")),
     CAUGHT, "scaling factor"),
    ("model.encoding.target_max (scaled up), resealed", then_reseal(model(setitem("encoding.target_max.0", 1e4))),
     CAUGHT, "stored verdict 'certified' but the re-check says"),
    ("model.encoding (unknown field)", model(setitem("encoding.extra", 1)), CAUGHT, "damaged"),
    ("model.domain.lower > upper", model(setitem("domain.lower.0", 1e3)), CAUGHT, "lower <= upper"),
    ("model.domain.lower NaN", model(setitem("domain.lower.1", float("nan"))), CAUGHT, "finite"),
    ("model.domain.upper (wider)", model(setitem("domain.upper.0", 1e3)), CAUGHT, "different domain"),
    ("model.domain.upper (wider), resealed", then_reseal(model(setitem("domain.upper.0", 1e3))), CAUGHT,
     "stored verdict 'certified' but the re-check says"),
    ("model.domain.upper (narrower), resealed", then_reseal(model(setitem("domain.upper.0", 6.0))), HARMLESS, ""),
    ("model.domain.lower (length)", model(setitem("domain.lower", [0.0])), CAUGHT, "lower and"),
    ("model.domain.source", model(setitem("domain.source", "forged.json")), HARMLESS, ""),
    ("model.constraint.text (weaker rule, its sha updated)",
     lambda d: (model(setitem("constraint.text", RULE.replace("2.0", "20.0")))(d),
                model(setitem("constraint.sha256", artifact.text_sha256(RULE.replace("2.0", "20.0"))))(d)),
     CAUGHT, "constraint text differs"),
    ("model.constraint.text (mentions x2), resealed",
     then_reseal(model(setitem("constraint.text", RULE.replace("x1", "x2"))),), CAUGHT, "skip features"),
    ("model.constraint.text (not SMT-LIB)", model(setitem("constraint.text", "(assert")), CAUGHT, "cannot be read"),
    ("model.constraint.sha256", model(setitem("constraint.sha256", "0" * 64)), HARMLESS, ""),
    ("model.training.output_margin", model(setitem("training.output_margin", -1.0)), HARMLESS, ""),
    ("model.history", model(setitem("history", [])), HARMLESS, ""),
    ("model.weights_sha256", model(setitem("weights_sha256", "0" * 64)), HARMLESS, ""),
    ("model.json (not JSON)", write(artifact.MODEL_FILE, "{"), CAUGHT, "corrupted"),
    # ---- certificate.json -----------------------------------------------------------------------------
    ("certificate.verdict violated", cert(setitem("verdict", "violated")), CAUGHT, "stored verdict 'violated'"),
    ("certificate.verdict none", cert(setitem("verdict", "none")), HARMLESS, ""),
    ("certificate.margin -1", cert(setitem("margin", -1.0)), CAUGHT, "below the policy minimum"),
    ("certificate.margin -1, resealed", then_reseal(cert(setitem("margin", -1.0))), CAUGHT, "policy minimum"),
    ("certificate.margin NaN", cert(setitem("margin", float("nan"))), CAUGHT, "not a finite number"),
    ("certificate.margin inf", cert(setitem("margin", float("inf"))), CAUGHT, "not a finite number"),
    ("certificate.margin NaN, resealed", then_reseal(cert(setitem("margin", float("nan")))), CAUGHT,
     "not a finite number"),
    ("certificate.margin inf, resealed", then_reseal(cert(setitem("margin", float("inf")))), CAUGHT,
     "not a finite number"),
    ("certificate.margin text", cert(setitem("margin", "0.1")), CAUGHT, "not a finite number"),
    ("certificate.margin 1e-9, resealed", then_reseal(cert(setitem("margin", 1e-9))), CAUGHT, "policy minimum"),
    ("certificate.margin 1e-3", cert(setitem("margin", 1e-3)), CAUGHT, "different margin"),
    ("certificate.margin 1e-3, resealed", then_reseal(cert(setitem("margin", 1e-3))), HARMLESS, ""),
    ("certificate.method", cert(setitem("method", "trust me")), HARMLESS, ""),
    ("certificate.asserts", cert(setitem("asserts", [])), HARMLESS, ""),
    ("certificate.domain_source", cert(setitem("domain_source", "x")), HARMLESS, ""),
    ("certificate.weights_sha256", cert(setitem("weights_sha256", "0" * 64)), CAUGHT, "weights differ"),
    ("certificate.bound.weights", cert(setitem("bound.weights", "0" * 64)), CAUGHT, "different weights"),
    ("certificate.bound.encoding", cert(setitem("bound.encoding", "0" * 64)), CAUGHT, "different encoding"),
    ("certificate.bound.domain", cert(setitem("bound.domain", "0" * 64)), CAUGHT, "different domain"),
    ("certificate.bound.architecture", cert(setitem("bound.architecture", "0" * 64)), CAUGHT,
     "different architecture"),
    ("certificate.bound.constraint", cert(setitem("bound.constraint", "0" * 64)), CAUGHT, "different constraint"),
    ("certificate.bound.margin", cert(setitem("bound.margin", 1.0)), CAUGHT, "different margin"),
    ("certificate.bound (missing)", cert(delete("bound")), CAUGHT, "binds no digest"),
    ("certificate.digest", cert(setitem("digest", "0" * 64)), CAUGHT, "digest does not match"),
    ("certificate.seconds", cert(setitem("seconds", -5)), HARMLESS, ""),
    ("certificate.strategy", cert(setitem("strategy", {"1": "none"})), HARMLESS, ""),
    ("certificate.constraint_sha256", cert(setitem("constraint_sha256", "0" * 64)), CAUGHT,
     "constraint text differs"),
    ("certificate.json (not JSON)", write(artifact.CERTIFICATE_FILE, "{"), CAUGHT, "stored verdict 'corrupted'"),
    ("certificate.json (a list)", write(artifact.CERTIFICATE_FILE, "[]"), CAUGHT, "stored verdict 'corrupted'"),
    ("certificate.json (removed)", remove(artifact.CERTIFICATE_FILE), HARMLESS, ""),
    # ---- weights.safetensors --------------------------------------------------------------------------
    ("weights last.bias +100", weights(add_to("last.bias", 100.0)), CAUGHT, "weights differ"),
    ("weights last.bias +100, resealed (forged certificate)", then_reseal(weights(add_to("last.bias", 100.0))),
     CAUGHT, "stored verdict 'certified' but the re-check says"),
    ("weights last.bias +100, resealed, margin -1 (finding 1)",
     then_reseal(weights(add_to("last.bias", 100.0)), cert(setitem("margin", -1.0))), CAUGHT, "policy minimum"),
    ("weights hidden.0.weight one ulp", weights(one_ulp("hidden.0.weight")), CAUGHT, "weights differ"),
    ("weights hidden.0.weight one ulp, resealed", then_reseal(weights(one_ulp("hidden.0.weight"))), HARMLESS, ""),
    ("weights hidden.1.bias NaN", weights(set_nan("hidden.1.bias")), CAUGHT, "NaN"),
    ("weights last.weight removed", weights(lambda t: t.pop("last.weight")), CAUGHT, "lacks tensors"),
    ("weights last.weight shape", weights(lambda t: t.__setitem__("last.weight", torch.zeros(1, 3))), CAUGHT,
     "has shape"),
    ("weights extra tensor", weights(lambda t: t.__setitem__("extra", torch.ones(2))), HARMLESS, ""),
    ("weights stored as float64", weights(lambda t: t.update({k: v.double() for k, v in t.items()})), HARMLESS, ""),
    ("weights file (garbage)", write(artifact.WEIGHTS_FILE, "not safetensors"), CAUGHT, "cannot be read"),
]


@pytest.mark.parametrize("tamper, outcome, says", [t[1:] for t in TAMPERS], ids=[t[0] for t in TAMPERS])
def test_tamper_is_caught_or_harmless(certified_dir: Path, tmp_path: Path, tamper, outcome: str, says: str):
    directory = tmp_path / "model"
    shutil.copytree(certified_dir, directory)
    tamper(directory)
    result = CliRunner().invoke(main, ["certify", str(directory)])
    assert isinstance(result.exception, SystemExit) or result.exception is None, result.exception
    if outcome == CAUGHT:
        assert result.exit_code == 1, (result.exit_code, result.output, result.stderr)
        failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED:")]
        assert failed and any(says in line for line in failed), result.stderr
    else:
        assert result.exit_code == 0, (result.output, result.stderr)
        assert "certificate re-checked: OK" in result.output


def test_untampered_directory_passes(certified_dir: Path):
    result = CliRunner().invoke(main, ["certify", str(certified_dir)])
    assert result.exit_code == 0, result.stderr


def test_auditor_rules_and_domain_are_checked_and_differences_reported(certified_dir: Path, tmp_path: Path):
    rules = certified_dir.parent / "rule.smt2"
    same = CliRunner().invoke(main, ["certify", str(certified_dir), "--constraint", str(rules)])
    assert same.exit_code == 0, same.stderr
    assert "differ" not in same.output
    # a stricter rule of the auditor's: y <= 0 wherever x1 > 5 (the trained model predicts about 0.5 x1)
    strict = tmp_path / "strict.smt2"
    strict.write_text(RULE.replace("(* 2.0 x1)", "0.0"))
    failed = CliRunner().invoke(main, ["certify", str(certified_dir), "--constraint", str(strict)])
    assert failed.exit_code == 1
    assert "your rules differ from the rules stored" in failed.output
    assert "violated" in failed.output and "violating input (raw units" in failed.output
    # the auditor's own domain, in raw units
    domain = tmp_path / "domain.json"
    domain.write_text(json.dumps({"x1": [0.0, 8.0]}))
    narrower = CliRunner().invoke(main, ["certify", str(certified_dir), "--domain", str(domain)])
    assert narrower.exit_code == 0, narrower.stderr
    assert "your domain differs from the stored one" in narrower.output and "x1: stored" in narrower.output
