"""Identify GPUs: from what a user types (model, PCI ID, compute capability) or from a PCI scan."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from gpuhost.errors import UnknownGpu
from gpuhost.plan.matrix import Matrix, load_matrix

NVIDIA_VENDOR = "10de"
_PREFIXES = ("nvidia", "tesla", "geforce")


@dataclass(frozen=True)
class Gpu:
    query: str
    name: str
    pci_id: str | None  # "10de:2330"
    compute_capability: str  # "9.0"
    architecture: str  # "Hopper"
    kernel_modules: tuple[str, ...] = ("open", "proprietary")  # flavours that drive this GPU

    def to_dict(self) -> dict:
        return {"query": self.query, "name": self.name, "pci_id": self.pci_id,
                "compute_capability": self.compute_capability, "architecture": self.architecture}


def _normalise(name: str) -> str:
    text = re.sub(r"[^a-z0-9]", "", name.lower())
    for prefix in _PREFIXES:
        text = text.removeprefix(prefix)
    return text


def _from_cc(query: str, cc: str, matrix: Matrix) -> Gpu:
    arch = matrix.architecture_of(cc)
    if arch is None:
        known = ", ".join(c for a in matrix.architectures.values() for c in a.compute_capabilities)
        raise UnknownGpu(f"unknown compute capability '{query}': known ones are {known}")
    return Gpu(query, f"compute capability {cc} ({arch.name})", None, cc, arch.name, arch.kernel_modules)


def _model_gpu(query: str, model, pci_id: str | None, matrix: Matrix) -> Gpu:
    arch = matrix.architecture_of(model.compute_capability)
    modules = model.kernel_modules or arch.kernel_modules
    return Gpu(query, model.names[0], pci_id, model.compute_capability, arch.name, modules)


def _by_name(query: str, matrix: Matrix) -> Gpu | None:
    wanted = _normalise(query)
    best = None
    for model in matrix.gpus:
        for alias in model.names:
            key = _normalise(alias)
            exact = key == wanted
            prefix = wanted.startswith(key) and not (key[-1].isdigit() and wanted[len(key):][:1].isdigit())
            if exact:
                return _model_gpu(query, model, f"{NVIDIA_VENDOR}:{model.pci_ids[0]}", matrix)
            if prefix and (best is None or len(key) > best[0]):
                best = (len(key), model)
    if best:
        return _model_gpu(query, best[1], f"{NVIDIA_VENDOR}:{best[1].pci_ids[0]}", matrix)
    return None


def identify(query: str, matrix: Matrix | None = None) -> Gpu:
    """A GPU from a model name ('H100', 'rtx 5090'), a PCI ID ('10de:2330') or a CC ('9.0', 'sm_90')."""
    matrix = matrix or load_matrix()
    text = query.strip()
    if m := re.fullmatch(r"(?:0x)?([0-9a-fA-F]{4}):(?:0x)?([0-9a-fA-F]{4})", text):
        vendor, device = m.group(1).lower(), m.group(2).lower()
        if vendor != NVIDIA_VENDOR:
            raise UnknownGpu(f"PCI ID '{query}' is not an NVIDIA device (vendor {vendor}, NVIDIA is {NVIDIA_VENDOR})")
        return identify_pci(device, None, matrix=matrix, query=query)
    if m := re.fullmatch(r"(\d{1,2})\.(\d)", text):
        return _from_cc(query, f"{int(m.group(1))}.{m.group(2)}", matrix)
    if m := re.fullmatch(r"(?i)sm_?(\d{1,2})(\d)a?", text):
        return _from_cc(query, f"{int(m.group(1))}.{m.group(2)}", matrix)
    gpu = _by_name(text, matrix) if _normalise(text) else None
    if gpu:
        return gpu
    names = [model.names[0] for model in matrix.gpus]
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownGpu(f"unknown GPU '{query}': {hint}give a model name (e.g. H100, RTX 5090), "
                     f"a PCI ID (10de:2330) or a compute capability (9.0 or sm_90)")


def identify_pci(device_id: str, pci_name: str | None = None, matrix: Matrix | None = None,
                 query: str | None = None) -> Gpu:
    """A GPU from its PCI device ID and, when the host has pci.ids, its name there.

    Known IDs come from gpus.yaml; any other NVIDIA device is placed by the chip codename that
    pci.ids puts first in its name ('GH100 [H100 SXM5 80GB]' -> Hopper), so detection works for
    GPUs the matrix has never heard of, before any driver exists.
    """
    matrix = matrix or load_matrix()
    device = device_id.lower().removeprefix("0x")
    pci_id = f"{NVIDIA_VENDOR}:{device}"
    for model in matrix.gpus:
        if device in model.pci_ids:
            return _model_gpu(query or pci_id, model, pci_id, matrix)
    if pci_name:
        chip = re.match(r"\s*([A-Za-z0-9]*)", pci_name).group(1).upper()  # "GH100[H100 SXM5 80GB]" too
        marketing = re.search(r"\[(.+)\]", pci_name)
        name = marketing.group(1) if marketing else pci_name
        for rule in matrix.chip_rules:
            if rule.pattern.search(chip):
                arch = matrix.architectures[rule.architecture]
                return Gpu(query or pci_id, name, pci_id, rule.compute_capability, arch.name, arch.kernel_modules)
    raise UnknownGpu(f"NVIDIA PCI device {pci_id} is not in the matrix and has no pci.ids name with a chip "
                     f"codename: install pci.ids (package pciutils or hwdata) or add the model to gpus.yaml")
