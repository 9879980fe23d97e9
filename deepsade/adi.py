"""Compatibility shim: AdI moved to ``deepsade.verification.adi``. Import from there; this module goes
once every import is updated."""

from deepsade.verification.adi import ADI_RULE, AdiReport, adversity_index, instances_from_frame  # noqa: F401
