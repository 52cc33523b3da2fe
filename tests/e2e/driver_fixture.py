"""TEST FIXTURES for e2e tests of the driver stage and `gpuhost upgrade` (shared, not tests).

The stand-in for NVIDIA's driver repository is gpuhost/lab/fixture_repos.py (the benchmark uses it
too): a signed local apt repository of TEST FIXTURE packages generated from the real install's data,
two branches side by side.

A "GPU process" is simulated by FAKE_SMI, a TEST FIXTURE /usr/local/bin/nvidia-smi that
reports one H100 on driver 535 and one compute process (the format of the real tool's
--query-gpu/--query-compute-apps CSV output, as captured in tests/fixtures/device-h100); the
facts read it as they would the real tool, and the refusals under test are gpuhost's own.
"""

from __future__ import annotations

from gpuhost.lab.fixture_repos import (OTHER_BRANCH, build_repository, driver_version, planned_branch,
                                      repository_data)

__all__ = ["FAKE_SMI", "FAKE_SMI_PATH", "fake_smi", "HOLD_LOCK", "OTHER_BRANCH", "build_repository", "driver_version",
           "install_fake_smi", "planned_branch", "repository_data"]

def fake_smi(driver: str = "535.104.05", compute_process: bool = True, gpus: int = 1) -> str:
    """A TEST FIXTURE nvidia-smi: `gpus` H100s on `driver`, with or without one compute process."""
    apps = "echo '4242, python3, GPU-fixture-0, 1024'" if compute_process else ":"
    listed = "; ".join(f"echo 'GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-fixture-{i})'" for i in range(gpus))
    return r"""#!/bin/sh
# TEST FIXTURE (gpuhost e2e): stands in for nvidia-smi; @GPUS@ H100 on @DRIVER@ (@APPS@).
# --query-gpu answers each asked field by name, in the order asked, one row per GPU (a field it does
# not know reads [N/A], as nvidia-smi prints one a GPU lacks).
q=; for a in "$@"; do case "$a" in --query-gpu=*) q=${a#--query-gpu=};; esac; done
case "$*" in
  *--query-gpu=*) i=0; while [ "$i" -lt @GPUS@ ]; do row=; IFS=,; for f in $q; do
      case "$f" in index) v=$i;; name) v='NVIDIA H100 80GB HBM3';; uuid) v=GPU-fixture-$i;; pci.bus_id) v=00000000:00:0$((6 + i)).0;;
        compute_cap) v=9.0;; memory.total) v=81559;; mig.mode.current) v=Disabled;; persistence_mode) v=Enabled;;
        driver_version) v=@DRIVER@;; *) v='[N/A]';; esac
      row="${row:+$row, }$v"; done; unset IFS; echo "$row"; i=$((i + 1)); done;;
  -L) @LISTED@;;
  *--query-compute-apps=*) @APPS_COMMAND@;;
esac
""".replace("@DRIVER@", driver).replace("@APPS_COMMAND@", apps).replace("@GPUS@", str(gpus)).replace(
        "@LISTED@", listed).replace("@APPS@", "one compute process" if compute_process else "no compute process")


FAKE_SMI = fake_smi()
FAKE_SMI_PATH = "/usr/local/bin/nvidia-smi"
HOLD_LOCK = ("nohup python3 -c \"import fcntl, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); "
             "fcntl.lockf(f, fcntl.LOCK_EX); open('/run/lock-held', 'w').close(); time.sleep(900)\" "
             ">/dev/null 2>&1 &")


def install_fake_smi(host) -> None:
    """Make a lab host look busy: FAKE_SMI reports a compute process (see the module docstring)."""
    host.exec(f"cat > {FAKE_SMI_PATH} <<'EOF'\n{FAKE_SMI}EOF\nchmod 755 {FAKE_SMI_PATH}", check=True)
