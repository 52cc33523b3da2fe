"""The matrix loads, validates, and fails loudly on broken data naming the file and entry."""

import contextlib
import shutil

import re

import pytest
import yaml

from gpuhost.errors import MatrixError
from gpuhost.plan.gpus import identify, identify_detected, identify_pci
from gpuhost.plan.matrix import DriverVersion, load_matrix, load_matrix_from
from gpuhost.errors import UnknownGpu
from importlib import resources
from pathlib import Path

DATA = Path(str(resources.files("gpuhost.plan") / "data"))


@pytest.fixture
def data_copy(tmp_path):
    shutil.copytree(DATA, tmp_path / "data")
    return tmp_path / "data"


def edit(path, change):
    content = yaml.safe_load(path.read_text())
    change(content)
    path.write_text(yaml.safe_dump(content))


def test_matrix_holds_reference_facts():
    m = load_matrix()
    assert m.toolkit_drivers["12.8"] == "570.26"
    assert m.toolkit_drivers["13.0"] == "580.65.06"
    assert m.minor_version_floors[12] == "525.60.13"
    assert "12.7" not in m.toolkit_drivers
    assert [b.branch for b in m.branches] == [470, 535, 580, 595, 610, 615, 620]
    assert m.architectures["Blackwell"].kernel_modules == ("open",)
    assert m.architectures["Volta"].last_branch == 580
    assert m.releases["2.11"].variants[1].arch_list[0] == "7.5"  # cu128 dropped Volta in 2.11
    assert m.newest_torch() == "2.15"
    assert m.images["runtime"].driver_rule == "minor-version"
    assert m.images["devel"].driver_rule == "toolkit"


def test_every_entry_names_its_source():
    for file in DATA.glob("*.yaml"):
        content = yaml.safe_load(file.read_text())
        for key, entries in content.items():
            if isinstance(entries, list) and entries and isinstance(entries[0], dict):
                for entry in entries:
                    if key == "releases":
                        assert entry["source"], (file.name, entry)
                    else:
                        assert "source" in entry, (file.name, key, entry)


def test_loaded_once_per_process():
    assert load_matrix() is load_matrix()


def test_driver_versions_keep_nvidia_spelling_and_compare_numerically():
    assert str(DriverVersion("580.65.06")) == "580.65.06"
    assert DriverVersion("580.159.04") > "580.65.06"
    assert DriverVersion("570.26") < "570.124.06"


def test_missing_source_is_named(data_copy):
    edit(data_copy / "gpus.yaml", lambda c: c["gpus"][3].pop("source"))
    with pytest.raises(MatrixError, match=r"gpus\.yaml: entry gpus\[3\]: 'source' is a required property"):
        load_matrix_from(data_copy)


def test_bad_compute_capability_is_named(data_copy):
    edit(data_copy / "pytorch.yaml", lambda c: c["releases"][0]["variants"][0]["arch_list"].append("sm90"))
    with pytest.raises(MatrixError, match=r"pytorch\.yaml: entry releases\[0\]\.variants\[0\]\.arch_list"):
        load_matrix_from(data_copy)


def test_gpu_with_unknown_architecture_is_named(data_copy):
    edit(data_copy / "gpus.yaml", lambda c: c["gpus"][0].update(compute_capability="4.2"))
    with pytest.raises(MatrixError, match=r"gpus\[0\] \(Tesla K80\): compute capability 4.2"):
        load_matrix_from(data_copy)


def test_variant_cuda_must_have_a_toolkit(data_copy):
    edit(data_copy / "pytorch.yaml", lambda c: c["releases"][0]["variants"][0].update(cuda="12.7"))
    with pytest.raises(MatrixError, match=r"CUDA 12.7 has no toolkit entry"):
        load_matrix_from(data_copy)


def test_unreadable_yaml_is_named(data_copy):
    (data_copy / "drivers.yaml").write_text("branches: [unclosed\n")
    with pytest.raises(MatrixError, match=r"drivers\.yaml cannot be read"):
        load_matrix_from(data_copy)


@pytest.mark.parametrize("query,name,cc,arch", [
    ("H100", "H100 SXM5 80GB", "9.0", "Hopper"),
    ("nvidia h100 80gb hbm3", "H100 SXM5 80GB", "9.0", "Hopper"),  # nvidia-smi's name on the device
    ("NVIDIA H200", "H200", "9.0", "Hopper"),
    ("rtx5090", "RTX 5090", "12.0", "Blackwell"),
    ("GeForce GTX 1080 Ti", "GTX 1080 Ti", "6.1", "Pascal"),
    ("A10G", "A10G", "8.6", "Ampere"),
    ("Tesla V100-SXM2-16GB", "V100", "7.0", "Volta"),  # pci.ids' variant names are aliases
    ("A100-SXM4-80GB", "A100", "8.0", "Ampere"),
    ("10de:2330", "H100 SXM5 80GB", "9.0", "Hopper"),
    ("10DE:1DB4", "V100", "7.0", "Volta"),
    ("9.0", "compute capability 9.0 (Hopper)", "9.0", "Hopper"),
    ("sm_120", "compute capability 12.0 (Blackwell)", "12.0", "Blackwell"),
    ("sm_90a", "compute capability 9.0 (Hopper)", "9.0", "Hopper"),
])
def test_identify(query, name, cc, arch):
    gpu = identify(query)
    assert (gpu.name, gpu.compute_capability, gpu.architecture, gpu.query) == (name, cc, arch, query)


@pytest.mark.parametrize("name,model", [
    ("Tesla V100-SXM2-32GB-LS", "V100"),  # names as a host reports them: a name of gpus.yaml and more
    ("NVIDIA H100 NVL 94GB", "H100 NVL"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM5 80GB"),
])
def test_identify_detected_takes_the_longest_name_a_reported_name_starts_with(name, model):
    assert identify_detected(name).name == model
    with pytest.raises(UnknownGpu) if name != "NVIDIA H100 80GB HBM3" else contextlib.nullcontext():
        identify(name)  # what a user types matches exactly


@pytest.mark.parametrize("query,message", [
    ("H100,V100", "GPU name 'H100,V100' has a comma: name one GPU at a time: repeat the flag (--gpu X --gpu Y) "
                  "or give a list (target_gpus: [H100, V100]; on pyinfra's command line --data "
                  "'target_gpus=[\"H100\",\"V100\"]')"),
    ("H100x8", "unknown GPU 'H100x8': name each GPU once: --gpu H100 given 8 times, or H100 8 times in target_gpus"),
    ("8x A100", "--gpu A100 given 8 times"),
    ("H100 SXM6", "unknown GPU 'H100 SXM6': did you mean H100"),
    ("H1000", "unknown GPU 'H1000'"),
    ("8086:1234", "not an NVIDIA device"),
    ("4.2", "unknown compute capability '4.2'"),
    ("", "unknown GPU ''"),
    ("10de:9999", "not in the matrix and has no pci.ids name"),
])
def test_identify_rejects(query, message):
    with pytest.raises(UnknownGpu, match=re.escape(message)):
        identify(query)


@pytest.mark.parametrize("device,pci_name,cc,arch", [
    ("2330", None, "9.0", "Hopper"),
    # lines copied from pci.ids as Debian 12 ships it (package pci.ids 0.0~2023.04.11-1), for IDs the
    # matrix does not list; note the missing space in "GH100[...]", as in that file's 2330 line
    ("2324", "GH100 [H800]", "9.0", "Hopper"),
    ("2324", "GH100[H800]", "9.0", "Hopper"),
    ("1df6", "GV100GL [Tesla V100S PCIe 32GB]", "7.0", "Volta"),
    ("20b3", "GA100 [A100-SXM-64GB]", "8.0", "Ampere"),
    ("2503", "GA106 [GeForce RTX 3060]", "8.6", "Ampere"),
    ("2782", "AD104 [GeForce RTX 4070 Ti]", "8.9", "Ada"),
    ("1e30", "TU102GL [Quadro RTX 6000/8000]", "7.5", "Turing"),
    ("15f0", "GP100GL [Quadro GP100]", "6.0", "Pascal"),
    ("1b80", "GP104 [GeForce GTX 1080]", "6.1", "Pascal"),
    ("1023", "GK110BGL [Tesla K40m]", "3.5", "Kepler"),
])
def test_identify_pci_places_any_device_by_codename(device, pci_name, cc, arch):
    gpu = identify_pci(device, pci_name)
    assert (gpu.compute_capability, gpu.architecture, gpu.pci_id) == (cc, arch, f"10de:{device}")
    if pci_name:
        assert gpu.name == pci_name.split("[")[1].rstrip("]")


def test_identify_pci_without_marketing_name():
    gpu = identify_pci("2399", "GH100")  # a bare pci.ids name, as its 2321 line reads
    assert (gpu.name, gpu.architecture) == ("GH100", "Hopper")


def test_validation_is_remembered_per_content_and_an_edit_is_validated_again(data_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    load_matrix_from(data_copy)
    assert len(list((tmp_path / "cache" / "gpuhost").glob("matrix-valid-*"))) == 1
    load_matrix_from(data_copy)  # the same content: the stamp is found, nothing new is written
    assert len(list((tmp_path / "cache" / "gpuhost").glob("matrix-valid-*"))) == 1
    edit(data_copy / "gpus.yaml", lambda c: c["gpus"][3].pop("source"))
    with pytest.raises(MatrixError, match=r"gpus\.yaml: entry gpus\[3\]: 'source' is a required property"):
        load_matrix_from(data_copy)
