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


NAME_PUNCTUATION = " -_.()"  # all that gpus.yaml's names hold besides letters and digits


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


def _by_name(query: str, matrix: Matrix, prefix: bool) -> Gpu | None:
    """The model one of whose names (gpus.yaml) is the query; with `prefix`, also the longest name
    the query starts with (nvidia-smi's 'Tesla V100-SXM2-16GB' is a V100)."""
    wanted = _normalise(query)
    best = None
    for model in matrix.gpus:
        for alias in model.names:
            key = _normalise(alias)
            if key == wanted:
                return _model_gpu(query, model, f"{NVIDIA_VENDOR}:{model.pci_ids[0]}", matrix)
            starts = wanted.startswith(key) and not (key[-1].isdigit() and wanted[len(key):][:1].isdigit())
            if prefix and starts and (best is None or len(key) > best[0]):
                best = (len(key), model)
    if best:
        return _model_gpu(query, best[1], f"{NVIDIA_VENDOR}:{best[1].pci_ids[0]}", matrix)
    return None


def identify_detected(name: str, matrix: Matrix | None = None) -> Gpu:
    """A GPU from the name a host reports (nvidia-smi): a name of gpus.yaml, or one it starts with."""
    matrix = matrix or load_matrix()
    gpu = _by_name(name.strip(), matrix, prefix=True) if _normalise(name) else None
    return gpu or identify(name, matrix)


def identify(query: str, matrix: Matrix | None = None) -> Gpu:
    """A GPU from what a user types: a model name of gpus.yaml ('H100', 'rtx 5090'; matched exactly,
    ignoring case, spaces, dashes and an NVIDIA prefix), a PCI ID ('10de:2330') or a CC ('9.0', 'sm_90')."""
    matrix = matrix or load_matrix()
    if not isinstance(query, str):
        raise UnknownGpu(f"GPU {query!r} is not a name: quote it, e.g. \"H100\" or \"9.0\"")
    text = query.strip()
    if "," in text:
        names = ", ".join(n.strip(" []\"'") for n in text.split(","))
        quoted = ",".join(f'"{n.strip()}"' for n in names.split(","))
        raise UnknownGpu(f"GPU name {query!r} has a comma: name one GPU at a time: repeat the flag "
                         f"(--gpu X --gpu Y) or give a list (target_gpus: [{names}]; on pyinfra's command line "
                         f"--data 'target_gpus=[{quoted}]')")
    if m := re.fullmatch(r"(?:0x)?([0-9a-fA-F]{4}):(?:0x)?([0-9a-fA-F]{4})", text):
        vendor, device = m.group(1).lower(), m.group(2).lower()
        if vendor != NVIDIA_VENDOR:
            raise UnknownGpu(f"PCI ID '{query}' is not an NVIDIA device (vendor {vendor}, NVIDIA is {NVIDIA_VENDOR})")
        return identify_pci(device, None, matrix=matrix, query=query)
    if m := re.fullmatch(r"(\d{1,2})\.(\d)", text):
        return _from_cc(query, f"{int(m.group(1))}.{m.group(2)}", matrix)
    if m := re.fullmatch(r"(?i)sm_?(\d{1,2})(\d)a?", text):
        return _from_cc(query, f"{int(m.group(1))}.{m.group(2)}", matrix)
    junk = sorted({c for c in query if not (c.isalnum() or c in NAME_PUNCTUATION)})
    if junk:  # "H100 !!" or "H100\n" would match H100 once normalised: a typo must not pass as a name
        raise UnknownGpu(f"GPU name {query!r} has {', '.join(map(repr, junk))}: a GPU name has letters, digits, "
                         f"spaces, dashes and dots: use e.g. H100 or \"RTX 5090\"")
    gpu = _by_name(text, matrix, prefix=False) if _normalise(text) else None
    if gpu:
        return gpu
    m = re.fullmatch(r"(?i)(\d+)\s*x\s*(.+)|(.+?)\s*x\s*(\d+)", text)
    count, model = ((m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))) if m else (0, "")
    if m and _by_name(model, matrix, prefix=False):  # "H100x8", "8x A100": a count, not a name
        raise UnknownGpu(f"unknown GPU {query!r}: name each GPU once: --gpu {model} given {count} times, "
                         f"or {model} {count} times in target_gpus")
    words = text.split()
    if len(words) > 1 and all(_by_name(w, matrix, prefix=False) for w in words):
        raise UnknownGpu(f"GPU name {query!r} names {len(words)} GPUs: name one GPU at a time: repeat the flag "
                         f"or give a list (target_gpus: [{', '.join(words)}])")
    aliases = {alias: model.names[0] for model in matrix.gpus for alias in model.names}
    close = list(dict.fromkeys(aliases[a] for a in difflib.get_close_matches(text, list(aliases), n=3, cutoff=0.5)))
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
