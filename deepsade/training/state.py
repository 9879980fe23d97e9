"""The resumable train state: where the loop stands, and how it goes into and out of a checkpoint
(with the model, optimizer, RNG states and CEGIS points), refusing a checkpoint of another run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from fractions import Fraction

import numpy as np
import torch

from deepsade import checkpoint
from deepsade.data import TabularData
from deepsade.errors import UserInputError
from deepsade.training.settings import EpochStats


@dataclass
class TrainState:
    """Where the loop stands: what a checkpoint holds besides the trainer's model, optimizer and RNGs."""

    best_state: dict
    valid_state: dict  # the last constraint-satisfying snapshot (before the hidden layers' step)
    epoch: int = 1
    position: int = 0  # index into ``order`` of the next batch
    order: torch.Tensor | None = None  # this epoch's permutation (None: not drawn yet)
    stats: EpochStats | None = None
    losses: list[float] = field(default_factory=list)
    history: list[EpochStats] = field(default_factory=list)
    best_loss: float = float("inf")
    best_epoch: int = 0
    iterations: int = 0  # over all epochs
    epoch_seconds: float = 0.0  # spent on this epoch in earlier processes (a resumed run)
    seconds: float = 0.0  # spent on the run in earlier processes
    init_seconds: float = 0.0
    resumed: int = 0


# settings that may differ when a run is resumed: more epochs, other thread count
_RESUMABLE_SETTINGS = {"epochs", "threads"}


class ResumableState:
    """The checkpoint half of ``DeepSaDeTrainer`` (a mixin over its model, optimizer, RNGs and settings)."""

    def _snapshot(self, loop: TrainState) -> dict:
        """The state before an iteration, to undo it if a signal interrupts it: tensor clones of the model's
        and the optimizer's state (``copy.deepcopy`` of the two state dicts cost a tenth of a run's time)."""
        return {"model": cloned_state(self.model.state_dict()), "optimizer": cloned_state(self.optimizer.state_dict()),
                "numpy_rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "restart_next": self.restart_next, "cegis_points": list(self.cegis_points),
                "stats": replace(loop.stats), "n_losses": len(loop.losses), "valid_state": loop.valid_state,
                "position": loop.position, "iterations": loop.iterations}

    def _rollback(self, loop: TrainState, snapshot: dict) -> None:
        self.model.load_state_dict(snapshot["model"])
        self.optimizer.load_state_dict(snapshot["optimizer"])
        self.rng.bit_generator.state = snapshot["numpy_rng"]
        torch.set_rng_state(snapshot["torch_rng"])
        self.restart_next, self.cegis_points = snapshot["restart_next"], snapshot["cegis_points"]
        loop.stats, loop.valid_state = snapshot["stats"], snapshot["valid_state"]
        del loop.losses[snapshot["n_losses"]:]
        loop.position, loop.iterations = snapshot["position"], snapshot["iterations"]

    def fingerprints(self, val: TabularData | None) -> dict[str, str]:
        """What a resumed run must share with the one it continues: the data split and the constraint."""
        arrays = [self.data.inputs, np.asarray(self.data.targets)]
        if val is not None:
            arrays += [val.inputs, np.asarray(val.targets)]
        return {"data": checkpoint.array_sha256(*arrays),
                "domain": checkpoint.array_sha256(self.domain_low, self.domain_high),
                "constraint": checkpoint.array_sha256(np.frombuffer(self.spec.source.text.encode(), dtype=np.uint8))}

    def _save(self, loop: TrainState, epoch_seconds: float, seconds: float) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, state in (("model.", self.model.state_dict()), ("valid.", loop.valid_state),
                              ("best.", loop.best_state)):
            tensors.update({prefix + name: value.clone() for name, value in state.items()})
        optimizer = self.optimizer.state_dict()
        optimizer_scalars: dict[str, dict] = {}
        for index, buffers in optimizer["state"].items():
            for name, value in buffers.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer.{index}.{name}"] = value.clone()
                else:
                    optimizer_scalars.setdefault(str(index), {})[name] = value
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["loop.losses"] = torch.tensor(loop.losses, dtype=torch.float64)
        if loop.order is not None:
            tensors["loop.order"] = loop.order.clone()
        payload = {
            "epoch": loop.epoch, "position": loop.position, "iterations": loop.iterations,
            "stats": asdict(loop.stats) if loop.stats is not None else None,
            "history": [asdict(h) for h in loop.history],
            "best_loss": loop.best_loss, "best_epoch": loop.best_epoch,
            "epoch_seconds": epoch_seconds, "seconds": seconds, "init_seconds": loop.init_seconds,
            "resumed": loop.resumed,
            "restart_next": self.restart_next,
            "numpy_rng": self.rng.bit_generator.state,
            "cegis_points": [[index, [str(v) for v in point], [str(v) for v in perturbation]]
                             for index, point, perturbation in self.cegis_points],
            "optimizer_groups": optimizer["param_groups"],
            "optimizer_scalars": optimizer_scalars,
            "settings": asdict(self.settings),
            "fingerprints": self._run_fingerprints,
            "notes": list(self.notes),
            "mechanisms": list(self.mechanisms),
        }
        checkpoint.write(self.checkpoint_dir, tensors, payload)

    def _restore(self, val: TabularData | None) -> TrainState:
        """Load the checkpoint into this trainer (refusing one from other data, constraint or settings)."""
        tensors, p = checkpoint.read(self.checkpoint_dir)
        where = f"checkpoint {self.checkpoint_dir}"
        try:
            settings = dict(p["settings"])
            ours = asdict(self.settings)
            differing = [f"{name} ({settings.get(name)!r} there, {ours[name]!r} here)" for name in ours
                         if name not in _RESUMABLE_SETTINGS
                         and _jsonable(settings.get(name)) != _jsonable(ours[name])]
            if differing:
                raise UserInputError(f"{where} was written with other settings: {'; '.join(differing)}. "
                                     "Resume with the same flags as the run it continues")
            mine = self._run_fingerprints
            for key, label in (("data", "data (or validation split)"), ("domain", "domain box"),
                               ("constraint", "constraint")):
                if p["fingerprints"].get(key) != mine[key]:
                    raise UserInputError(f"{where} belongs to a run on other {label}: resume with the same data, "
                                         "constraint and flags, or start a new run")
            completed = int(p["epoch"]) - 1
            if completed > self.settings.epochs:
                raise UserInputError(f"{where} has already completed {completed} epochs; --epochs "
                                     f"{self.settings.epochs} is fewer")

            def group(prefix: str) -> dict[str, torch.Tensor]:
                return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

            self.model.load_state_dict(group("model."))
            optimizer_state: dict = {}
            for key, value in group("optimizer.").items():
                index, name = key.split(".", 1)
                optimizer_state.setdefault(int(index), {})[name] = value
            for index, scalars in p["optimizer_scalars"].items():
                optimizer_state.setdefault(int(index), {}).update(scalars)
            self.optimizer.load_state_dict({"state": optimizer_state, "param_groups": p["optimizer_groups"]})
            torch.set_rng_state(tensors["rng.torch"])
            self.rng.bit_generator.state = p["numpy_rng"]
            self.restart_next = bool(p["restart_next"])
            self.cegis_points = [(int(index), [Fraction(v) for v in point], [Fraction(v) for v in perturbation])
                                 for index, point, perturbation in p["cegis_points"]]
            self.notes = list(p["notes"])
            self.mechanisms = list(p.get("mechanisms", []))
            loop = TrainState(best_state=group("best."), valid_state=group("valid."), epoch=int(p["epoch"]),
                         position=int(p["position"]), order=tensors.get("loop.order"),
                         stats=_epoch_stats(p["stats"]) if p["stats"] is not None else None,
                         losses=tensors["loop.losses"].tolist(),
                         history=[_epoch_stats(h) for h in p["history"]], best_loss=float(p["best_loss"]),
                         best_epoch=int(p["best_epoch"]), iterations=int(p["iterations"]),
                         epoch_seconds=float(p["epoch_seconds"]), seconds=float(p["seconds"]),
                         init_seconds=float(p["init_seconds"]), resumed=int(p["resumed"]) + 1)
        except UserInputError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a checkpoint of another version / network
            raise UserInputError(f"{where} does not fit this run ({type(exc).__name__}: {exc}); "
                                 "start a new run") from None
        self.notes.append(f"resumed from {self.checkpoint_dir} at epoch {loop.epoch}, iteration {loop.iterations}")
        return loop


def cloned_state(value):
    """A copy of a (model or optimizer) state dict that shares no tensor, dict or list with it: tensors are
    cloned, containers rebuilt, anything else (numbers, strings, tuples of numbers) kept as it is."""
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, dict):
        copied = type(value)((key, cloned_state(item)) for key, item in value.items())
        if hasattr(value, "_metadata"):  # a module's state dict: per-module versions load_state_dict reads
            copied._metadata = type(value._metadata)((key, dict(entry)) for key, entry in value._metadata.items())
        return copied
    if isinstance(value, list):
        return [cloned_state(item) for item in value]
    return value


def _jsonable(value):
    """Settings as JSON gives them back (tuples become lists), to compare a checkpoint's with ours."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _epoch_stats(data: dict) -> EpochStats:
    known = {f.name for f in fields(EpochStats)}
    return EpochStats(**{k: v for k, v in data.items() if k in known})
