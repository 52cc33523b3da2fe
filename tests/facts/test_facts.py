"""What the facts must see in real output: the readings that decisions hang on, stated by hand.

The fixtures are real captures (tests/fixtures/README.md says where each came from); these
tests name the values a person checked against the raw tool output beside each capture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from facts.container import ContainerState, _container
from facts.gpu import COMMAND as GPU_SCRIPT
from facts.gpu import GpuState, _differ
from facts.host import HostState
from facts.readings import INSPECT_FORMAT
from facts.sections import Sections, csv_row, env_file, key_values_with_tail
from facts.snapshot import HostSnapshot, split_parts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SMI = "index,name,uuid,pci.bus_id,compute_cap,memory.total,mig.mode.current,persistence_mode,driver_version"


def lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def gpu(name: str, frame: list[str] | None = None) -> dict:
    return GpuState().process((frame or []) + lines(name))


# --- GPU: the real H100 (device machine, driver 580, open module) ---------------------------


def test_h100_is_seen_with_model_cc_driver_and_open_flavour():
    state = gpu("device-h100/facts/gpu.out")
    (card,) = state["gpus"]
    assert card["pci_id"] == "10de:2330"
    assert card["bus_id"] == "0000:00:06.0"
    assert card["model"] == "NVIDIA H100 80GB HBM3"
    assert card["architecture"] == "Hopper"
    assert card["compute_capability"] == "9.0"
    assert card["smi"]["memory_total_mib"] == 81559
    assert card["smi"]["mig_mode"] == "disabled"
    assert card["smi"]["uuid"] == "GPU-ec344130-752c-d74c-0ae6-abd4bb148ff9"
    driver = state["driver"]
    assert driver["version"] == driver["kernel_module_version"] == "580.159.04"
    assert driver["library_version"] == driver["smi_driver_version"] == "580.159.04"
    assert driver["flavour"] == "open"
    assert driver["mismatch"] is False
    assert driver["nvidia_smi"] == "/usr/local/nvidia/bin/nvidia-smi"
    assert state["warnings"] == []
    assert state["nvswitches"] == [] and state["needs_fabric_manager"] is False


def test_h200_is_seen_with_model_cc_driver_and_open_flavour():
    state = gpu("device-h200/facts/gpu.out")
    (card,) = state["gpus"]
    assert card["pci_id"] == "10de:2335"
    assert (card["model"], card["architecture"], card["compute_capability"]) == ("NVIDIA H200", "Hopper", "9.0")
    assert card["smi"]["memory_total_mib"] == 143771
    assert state["driver"]["version"] == "580.159.04" and state["driver"]["flavour"] == "open"
    named = gpu("device-h200/facts/gpu-with-pciids.out")["gpus"][0]
    assert named["pci_name"] == "GH100 [H200 SXM 141GB]"


def test_h100_name_from_the_hosts_pci_ids_when_installed():
    without = gpu("device-h100/facts/gpu.out")["gpus"][0]
    with_ids = gpu("device-h100/facts/gpu-with-pciids.out")
    assert without["pci_name"] is None and with_ids["pci_ids_file"] == "/usr/share/misc/pci.ids"
    assert with_ids["gpus"][0]["pci_name"] == "GH100 [H100 SXM5 80GB]"


def test_h100_without_nvidia_smi_still_identified_from_pci_and_matrix():
    state = gpu("device-h100/facts/gpu-no-nvidia-smi.out")
    (card,) = state["gpus"]
    assert card["smi"] is None
    assert card["compute_capability"] == "9.0" and card["architecture"] == "Hopper"
    assert "H100" in card["model"]
    assert state["driver"]["nvidia_smi"] is None
    assert state["driver"]["version"] == "580.159.04"  # the kernel module still says so
    assert any("nvidia-smi not found" in w for w in state["warnings"])


def test_process_using_the_gpu_is_listed():
    (process,) = gpu("device-h100/facts/gpu-with-process.out")["processes"]
    assert process == {
        "pid": 1271,
        "process_name": "python3",
        "gpu_uuid": "GPU-ec344130-752c-d74c-0ae6-abd4bb148ff9",
        "used_memory_mib": 1634,
    }


@pytest.mark.parametrize("name", ["debian12-vm/gpu.out", "debian12-lab-host/gpu.out"])
def test_gpu_less_host_without_nvidia_smi(name):
    state = gpu(name)
    assert state["gpus"] == [] and state["nvswitches"] == []
    assert state["driver"]["loaded"] is False and state["driver"]["nvidia_smi"] is None
    assert state["fabric_manager"] == {"installed": False, "state": None}
    assert state["warnings"] == []


def test_empty_output_is_the_documented_default():
    default = GpuState.default()
    assert default == GpuState().process([])
    assert default["gpus"] == [] and default["driver"]["version"] is None


# --- GPU: public real outputs of other machines ----------------------------------------------


@pytest.mark.parametrize(
    "name, library",
    [("public/nvidia-smi-mismatch-570.txt", "570.124"), ("public/nvidia-smi-mismatch-550.txt", "550.144")],
)
def test_driver_library_mismatch_is_detected(name, library):
    state = gpu(name, ["@@gpuhost gpu 1", f"@@smi {SMI}"])
    assert state["driver"]["mismatch"] is True
    assert state["driver"]["library_version"] == library
    assert state["driver"]["smi_error"] == "Failed to initialize NVML: Driver/library version mismatch"
    assert state["gpus"] == []
    assert any("mismatch" in w for w in state["warnings"])


def test_mismatch_from_versions_when_nvidia_smi_is_silent():
    assert _differ("580.95.05", "580.82.07")
    # NVML may report only X.Y: then nvidia-smi's error text is what shows the mismatch.
    assert not _differ("570.124.06", "570.124")
    assert not _differ("580.159.04", "580.159.04")
    assert not _differ("580.159.04", "580.159")
    assert not _differ(None, "580.159")


def test_mig_devices_of_a_four_gpu_a100_host():
    state = gpu("public/nvidia-smi-L-a100-mig.txt", ["@@gpuhost gpu 1", "@@smi_list"])
    assert [d["gpu_index"] for d in state["mig_devices"]] == [0, 0, 0, 0]
    assert {d["name"] for d in state["mig_devices"]} == {"MIG 1g.20gb"}
    assert state["mig_devices"][0]["uuid"] == "MIG-ce861fb0-a248-58ce-a9a8-f9adbc22a66a"


def test_mig_mode_per_gpu():
    state = gpu(
        "public/nvidia-smi-query-mig-mode.csv",
        ["@@gpuhost gpu 1", "@@smi uuid,mig.mode.current,mig.mode.pending"],
    )
    assert [g["smi"]["mig_mode"] for g in state["gpus"]] == ["enabled", "disabled", "disabled", "disabled"]


def test_older_and_mixed_generations_identified_by_compute_capability():
    state = gpu(
        "public/nvidia-smi-query-titanv-rtx5880.csv",
        ["@@gpuhost gpu 1", "@@smi compute_cap,compute_mode,driver_version,name,index"],
    )
    seen = [(g["model"], g["architecture"], g["compute_capability"]) for g in state["gpus"]]
    assert seen == [("NVIDIA TITAN V", "Volta", "7.0"), ("NVIDIA RTX 5880 Ada Generation", "Ada", "8.9")]
    assert state["driver"]["smi_driver_version"] == "570.86.15"


def test_open_module_version_file_of_ubuntu_2404():
    state = gpu("public/proc-driver-nvidia-version-open-565.txt", ["@@gpuhost gpu 1", "@@proc_driver"])
    assert state["driver"]["flavour"] == "open"
    assert state["driver"]["kernel_module_version"] == "565.57.01"


def test_old_drivers_without_compute_cap_trigger_the_scripts_retry():
    # The script retries its query without compute_cap when nvidia-smi answers like this.
    error = (FIXTURES / "public/nvidia-smi-compute-cap-invalid.txt").read_text()
    assert "*'valid field'*" in GPU_SCRIPT
    assert "valid field" in error


def test_nvswitch_and_consumer_card_functions_are_not_gpus():
    # The class rule alone (no real multi-GPU capture exists here: multi-GPU machines were not
    # lent). Classes: 0x0680 other bridge (NVSwitch), 0x0403 HD audio of a consumer card.
    output = [
        "@@gpuhost gpu 1",
        "@@pci",
        "bus=0000:07:00.0 device=0x22a3 class=0x068000 subsystem=-:- revision=0xa1 driver=- numa=0",
        "bus=0000:18:00.0 device=0x2330 class=0x030200 subsystem=0x10de:0x16c1 revision=0xa1 driver=- numa=0",
        "bus=0000:01:00.1 device=0x22bc class=0x040300 subsystem=-:- revision=0xa1 driver=- numa=0",
        "@@pciids /usr/share/misc/pci.ids",
        "dev 22a3 GH100 [H100 NVSwitch]",
    ]
    state = GpuState().process(output)
    assert [g["bus_id"] for g in state["gpus"]] == ["0000:18:00.0"]
    assert state["nvswitches"] == [
        {"bus_id": "0000:07:00.0", "pci_id": "10de:22a3", "pci_name": "GH100 [H100 NVSwitch]", "kernel_driver": None}
    ]
    assert state["needs_fabric_manager"] is True
    assert state["gpus"][0]["kernel_driver"] is None  # no driver yet: still detected


def test_nouveau_bound_gpu_before_any_nvidia_driver():
    # The rule alone: a consumer GPU driven by nouveau (no capture of such a host exists here).
    state = GpuState().process([
        "@@gpuhost gpu 1", "@@pci",
        "bus=0000:01:00.0 device=0x2204 class=0x030000 subsystem=-:- revision=0xa1 driver=nouveau numa=-1",
        "@@smi_path -", "@@modules", "nouveau"])
    assert state["nouveau"] == {"loaded": True}
    assert state["gpus"][0]["kernel_driver"] == "nouveau"
    assert state["gpus"][0]["compute_capability"] == "8.6"  # 10de:2204 (RTX 3090) from the matrix
    assert state["driver"]["loaded"] is False
    assert state["warnings"] == [
        "nouveau is loaded: blacklist it and rebuild the initramfs before the NVIDIA driver"]


# --- Host ------------------------------------------------------------------------------------


def test_ubuntu_2404_gpu_machine():
    state = HostState().process(lines("device-h100/facts/host.out"))
    assert state["os"]["id"] == "ubuntu" and state["os"]["version_id"] == "24.04"
    assert state["os"]["codename"] == "noble"
    assert state["kernel"] == "6.18.44-fc-v657-gpu" and state["arch"] == "x86_64"
    assert state["package_manager"] == "apt"
    assert state["kernel_headers"] == {"installed": False, "package": "linux-headers-6.18.44-fc-v657-gpu",
                                       "package_installed": None}  # a custom kernel, no headers
    assert state["secure_boot"]["state"] == "unsupported"  # no EFI
    assert "libcublas-13-0" in state["held_packages"]
    assert state["held_nvidia_packages"] == []  # CUDA libraries, not the driver
    assert state["package_lock"]["held"] is False


def test_apt_lock_and_its_holder():
    state = HostState().process(lines("debian12-lab-host/host-apt-locked.out"))
    lock = state["package_lock"]
    assert lock["held"] is True
    frontend = [h for h in lock["holders"] if h["lock"] == "/var/lib/dpkg/lock-frontend"]
    assert frontend == [
        {"lock": "/var/lib/dpkg/lock-frontend", "pid": 203, "command": "apt-get", "cmdline": "apt-get remove curl"}
    ]
    assert "package manager lock held by apt-get (pid 203)" in state["warnings"]
    assert HostState().process(lines("debian12-lab-host/host.out"))["package_lock"]["held"] is False


def test_lab_host_runs_systemd_and_the_vm_does_not():
    assert HostState().process(lines("debian12-lab-host/host.out"))["systemd"] is True
    assert HostState().process(lines("debian12-vm/host.out"))["systemd"] is False


def test_secure_boot_and_reboot_readings():
    base = ["@@gpuhost host 1", "@@efi yes"]
    assert HostState().process(base + ["@@mokutil", "SecureBoot enabled"])["secure_boot"]["state"] == "enabled"
    assert HostState().process(base + ["@@efivar 0"])["secure_boot"] == {
        "state": "disabled", "efi": True, "source": "efivars"}
    pending = HostState().process(base + ["@@reboot", "reboot-required", "linux-image-6.8.0-90-generic"])
    assert pending["reboot"] == {"required": True, "packages": ["linux-image-6.8.0-90-generic"],
                                 "source": "reboot-required"}
    assert "a reboot is pending" in pending["warnings"]


def test_held_driver_packages_are_picked_out():
    state = HostState().process(["@@holds", "nvidia-driver-580-open", "libnvidia-compute-580",
                                 "linux-modules-nvidia-580-open-generic", "libcublas-13-0", "cuda-drivers"])
    assert state["held_nvidia_packages"] == ["nvidia-driver-580-open", "libnvidia-compute-580",
                                             "linux-modules-nvidia-580-open-generic", "cuda-drivers"]


# --- Containers ------------------------------------------------------------------------------


def container(name: str) -> dict:
    return ContainerState().process(lines(name))


def test_no_docker_anywhere():
    for name in ("device-h100/facts/container.out", "debian12-lab-host/container.out"):
        state = container(name)
        assert state["docker"]["installed"] is False and state["docker"]["install"] == []
        assert state["toolkit"]["installed"] is False and state["nvidia_runtime"] is False
        assert state["images"] == [] and state["warnings"] == []


def test_docker_package_with_nvidia_runtime_and_live_restore():
    state = container("debian12-lab-host/container-docker-nvidia-runtime.out")
    docker = state["docker"]
    assert docker["install"] == ["package"] and docker["packages"] == {"docker.io": "20.10.24+dfsg1-1+deb12u1+b6"}
    assert docker["daemon_json"]["path"] == "/etc/docker/daemon.json"
    assert docker["daemon_json"]["content"]["log-opts"] == {"max-size": "10m"}  # the user's own keys
    assert "nvidia" in docker["runtimes"] and state["nvidia_runtime"] is True
    assert docker["live_restore"] is True
    assert "gpuhost-facts/sleep:1" in state["images"]
    assert state["gpu_containers"] == []  # one running container, without GPUs
    assert "nvidia-container-runtime is not installed" in state["warnings"][0]


def test_dockerd_with_its_own_config_file():
    state = container("debian12-lab-host/container-docker-config-file.out")
    assert state["docker"]["daemon_json"]["path"] == "/srv/docker/daemon.json"
    assert state["docker"]["daemon_json"]["content"] == {"live-restore": False, "log-level": "warn"}
    assert state["nvidia_runtime"] is False  # /etc/docker/daemon.json's nvidia runtime is not read
    assert any("--config-file" in w for w in state["warnings"])


def test_daemon_on_its_own_socket_and_nested_daemons_skipped():
    state = container("debian12-vm/container.out")
    docker = state["docker"]
    assert docker["client_host"] == "unix:///var/lib/gpuhost-lab/engine/docker.sock"
    assert docker["reachable"] is True
    assert [d["host"] for d in docker["daemons"]] == ["unix:///var/lib/gpuhost-lab/engine/docker.sock"]
    assert docker["nested_daemons"] >= 1  # the test hosts' own dockerds, in their containers


def test_gpu_containers_from_real_docker_inspect_lines():
    inspect = [line for line in lines("debian12-lab-host/inspect-created.txt") if line.count("\t") >= 5]
    found = {c["name"]: c for c in filter(None, map(_container, inspect))}
    assert set(found) == {"gpus-all", "gpus-two", "rt-nvidia"}  # not "plain"
    assert found["gpus-all"]["gpus"] == "all" and found["gpus-all"]["via"] == ["device_requests"]
    assert found["gpus-two"]["gpus"] == "0,1"
    assert found["rt-nvidia"]["via"] == ["runtime"] and found["rt-nvidia"]["gpus"] == "0"
    assert not any("SECRET" in line for line in inspect)  # only NVIDIA_VISIBLE_DEVICES is read
    assert "NVIDIA_VISIBLE_DEVICES=" in INSPECT_FORMAT


def test_cdi_spec_driver_version():
    state = ContainerState().process([
        "@@cdi", "path=/etc/cdi/nvidia.yaml kind=nvidia.com/gpu lib=libcuda.so.580.95.05"])
    assert state["cdi"] == {"specs": [{"path": "/etc/cdi/nvidia.yaml", "kind": "nvidia.com/gpu",
                                       "driver_version": "580.95.05"}], "driver_versions": ["580.95.05"]}


def test_invalid_daemon_json_is_reported_not_raised():
    state = ContainerState().process(["@@daemon_json /etc/docker/daemon.json", '{"runtimes": {'])
    assert state["docker"]["daemon_json"]["error"].startswith("invalid JSON")
    assert state["warnings"]


# --- One command for all three ---------------------------------------------------------------


def test_snapshot_parts_match_the_single_facts():
    snap = HostSnapshot().process(lines("device-h100/facts/snapshot.out"))
    assert set(snap) == {"gpu", "host", "container", "managed", "workspace", "health"}
    single = GpuState().process(lines("device-h100/facts/gpu.out"))
    assert snap["gpu"]["gpus"][0]["model"] == single["gpus"][0]["model"]
    assert snap["gpu"]["driver"] == single["driver"]
    assert snap["host"] == HostState().process(lines("device-h100/facts/host.out"))
    assert snap["container"] == ContainerState().process(lines("device-h100/facts/container.out"))


def test_snapshot_of_nothing_is_three_defaults():
    assert split_parts([]) == HostSnapshot.default()


# --- Section plumbing ------------------------------------------------------------------------


def test_sections_and_small_parsers():
    sections = Sections(["noise before", "@@a x y", "1", "", "@@b", "@@a second", "2"])
    assert sections.header("a") == "x y" and sections.lines("a") == ["1"]
    assert [s.header for s in sections.every("a")] == ["x y", "second"]
    assert sections.text("b") is None and sections.first("c") is None
    assert csv_row("0, NVIDIA H100 80GB HBM3, 9.0") == ["0", "NVIDIA H100 80GB HBM3", "9.0"]
    assert env_file(['PRETTY_NAME="Ubuntu 24.04.3 LTS"', "ID=ubuntu", "# c"]) == {
        "PRETTY_NAME": "Ubuntu 24.04.3 LTS", "ID": "ubuntu"}
    values, tail = key_values_with_tail("pid=3 comm=apt cmdline=apt-get install -y x", "cmdline")
    assert values == {"pid": "3", "comm": "apt"} and tail == "apt-get install -y x"


def test_a_running_dpkg_is_not_interrupted_and_a_killed_one_is():
    """Real output (tests/fixtures/README.md): dpkg mid-configure, then the same host after kill -9."""
    from facts.host import process_host_sections
    from facts.sections import Sections

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "debian12-lab-host"
    running, killed = (process_host_sections(Sections((fixtures / name).read_text().splitlines()))["package_lock"]
                       for name in ("host-dpkg-running.out", "host-dpkg-interrupted.out"))
    assert (running["dpkg_running"], running["dpkg_interrupted"]) == (True, False)
    assert (killed["dpkg_running"], killed["dpkg_interrupted"]) == (False, True)
    assert killed["unfinished_packages"] == ["gpuhost-fixture-slow"]
