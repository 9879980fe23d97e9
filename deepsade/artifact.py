"""The model directory: weights (safetensors), ``model.json`` (everything needed to use the model)
and ``certificate.json`` (the verdict and the hash of the weights it covers). No pickle anywhere.

A directory is written to a temporary sibling and renamed into place, so a crash never leaves a
half-written directory that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from deepsade.data import Domain, Encoding
from deepsade.errors import UserInputError
from deepsade.network import SkipMLP

FORMAT = "deepsade-model/1"
WEIGHTS_FILE = "weights.safetensors"
MODEL_FILE = "model.json"
CERTIFICATE_FILE = "certificate.json"


def weights_sha256(model: SkipMLP) -> str:
    """Hash of the float32 weights in a fixed order (independent of the file container)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(_weight_tensors(model).items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _weight_tensors(model: SkipMLP) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()
            if k != "mapped_features"}


@dataclass
class ModelArtifact:
    """A model with what it needs to be used, checked and certified."""

    model: SkipMLP
    encoding: Encoding
    domain: Domain
    constraint_text: str
    method: str = "deepsade"
    training: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    certificate: dict[str, Any] = field(default_factory=lambda: {"verdict": "none"})
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "method": self.method,
            "architecture": self.model.architecture(),
            "encoding": self.encoding.to_dict(),
            "domain": self.domain.to_dict(),
            "constraint": {"text": self.constraint_text, "sha256": text_sha256(self.constraint_text)},
            "training": self.training,
            "history": self.history,
            "weights_sha256": weights_sha256(self.model),
            **self.extra,
        }


def _fsync_write(path: Path, data: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def save(artifact: ModelArtifact, directory: str | Path) -> Path:
    """Write the model directory atomically (temporary sibling, then rename)."""
    directory = Path(directory)
    parent = directory.parent if str(directory.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=parent))
    except OSError as exc:
        raise UserInputError(f"cannot write the model directory {directory}: {exc.strerror}") from None
    try:
        save_file(_weight_tensors(artifact.model), str(staging / WEIGHTS_FILE))
        _fsync_write(staging / MODEL_FILE, json.dumps(artifact.metadata(), indent=1, default=_json_default))
        _fsync_write(staging / CERTIFICATE_FILE, json.dumps(artifact.certificate, indent=1, default=_json_default))
        if directory.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=parent))
            backup.rmdir()
            directory.rename(backup)
            staging.rename(directory)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(directory)
    except OSError as exc:  # disk full, quota, permissions: nothing half-written stays behind
        shutil.rmtree(staging, ignore_errors=True)
        raise UserInputError(f"cannot write the model directory {directory}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def check_writable(directory: str | Path) -> None:
    """Fail early, with one clear line, when the model directory could not be written (before training)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserInputError(f"cannot write the model directory {directory}: a file of that name exists")
    parent = directory.parent if str(directory.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=f".{directory.name}.probe.", dir=parent)).rmdir()
    except OSError as exc:
        raise UserInputError(f"cannot write the model directory {directory}: {exc.strerror or exc}") from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def load(directory: str | Path) -> ModelArtifact:
    """Read a model directory without executing anything from it (JSON + safetensors only)."""
    directory = Path(directory)
    if not (directory / MODEL_FILE).exists() or not (directory / WEIGHTS_FILE).exists():
        raise UserInputError(f"{directory} is not a deepsade model directory (needs {MODEL_FILE} and {WEIGHTS_FILE})")
    try:
        meta = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{directory / MODEL_FILE} is corrupted: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise UserInputError(f"{directory}: unknown model format {found!r} (expected {FORMAT})")
    try:
        return _from_metadata(directory, meta)
    except UserInputError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        # a hand-edited model.json: name the field instead of showing a traceback
        raise UserInputError(f"{directory / MODEL_FILE} is damaged: {type(exc).__name__} {exc}") from None


def _network(architecture: dict) -> SkipMLP:
    """The network an architecture describes (a constructed one when it names an enforcement layer)."""
    # --- constructions (deepsade.constructions) ---
    if isinstance(architecture, dict) and architecture.get("enforcement") is not None:
        from deepsade.constructions.enforced import network_from_architecture

        return network_from_architecture(architecture)
    # --- end constructions ---
    return SkipMLP.from_architecture(architecture)


def _from_metadata(directory: Path, meta: dict[str, Any]) -> ModelArtifact:
    model = _network(meta["architecture"])
    try:
        tensors = load_file(str(directory / WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise UserInputError(f"{directory / WEIGHTS_FILE} cannot be read: {exc}") from None
    missing = set(_weight_tensors(model)) - set(tensors)
    if missing:
        raise UserInputError(f"{directory / WEIGHTS_FILE} lacks tensors {sorted(missing)}")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if tuple(tensors[name].shape) != tuple(parameter.shape):
                raise UserInputError(f"{directory / WEIGHTS_FILE}: tensor {name} has shape {tuple(tensors[name].shape)}, "
                                     f"the architecture says {tuple(parameter.shape)}")
            parameter.copy_(tensors[name])
    certificate = {"verdict": "none"}
    if (directory / CERTIFICATE_FILE).exists():
        try:
            certificate = json.loads((directory / CERTIFICATE_FILE).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            certificate = {"verdict": "corrupted"}
        if not isinstance(certificate, dict):
            certificate = {"verdict": "corrupted"}
    if not isinstance(meta["constraint"]["text"], str) or not isinstance(meta.get("training", {}), dict):
        raise TypeError("the constraint text must be a string and the training settings an object")
    known = {"format", "method", "architecture", "encoding", "domain", "constraint", "training", "history",
             "weights_sha256"}
    return ModelArtifact(
        model=model,
        encoding=Encoding.from_dict(meta["encoding"]),
        domain=Domain.from_dict(meta["domain"]),
        constraint_text=meta["constraint"]["text"],
        method=meta.get("method", "deepsade"),
        training=meta.get("training", {}),
        history=meta.get("history", []),
        certificate=certificate,
        extra={k: v for k, v in meta.items() if k not in known},
    )


def weights_match_certificate(artifact: ModelArtifact) -> bool:
    """Whether the certificate was issued for exactly these weights."""
    return artifact.certificate.get("weights_sha256") == weights_sha256(artifact.model)
