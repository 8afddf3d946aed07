"""The SLURM profile: static checks, Snakemake's reading of it, and a run on a real SLURM.

The real run (.ci/slurm_test.sh) starts munged, slurmctld and slurmd on this machine and submits
tests/slurm/Snakefile through workflow/profiles/slurm; it needs root on Linux and installs
slurm-wlm/munge with apt-get and snakemake-executor-plugin-slurm with pip when they are missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SLURM_PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
DEFAULT_PROFILE = ROOT / "workflow" / "profiles" / "default" / "config.yaml"
SCRIPT = ROOT / ".ci" / "slurm_test.sh"
TINY = ROOT / "tests" / "slurm" / "Snakefile"
TINY_OUTPUTS = ["out/data/a.txt", "out/data/b.txt", "out/model.txt", "out/summary.txt"]

# Keys of the local default profile that are also right on a cluster: Snakemake loads that
# profile on top of any --profile and its keys win, so anything else would leak into SLURM runs.
SLURM_SAFE_DEFAULT_KEYS = {
    "cores",
    "rerun-incomplete",
    "printshellcmds",
    "show-failed-logs",
    "keep-going",
    "use-conda",
    "conda-frontend",
}


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def _gpu_rules() -> set[str]:
    """Rules of workflow/ whose `resources:` declare a gpu."""
    found = set()
    for smk in [ROOT / "workflow" / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")]:
        blocks = re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M)
        for block in blocks:
            m = re.match(r"rule (\w+):", block)
            if m and re.search(r"^\s+gpu\s*=\s*[1-9]", block, flags=re.M):
                found.add(m.group(1))
    return found


def _workflow_rules() -> set[str]:
    names = set()
    for smk in [ROOT / "workflow" / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")]:
        names |= set(re.findall(r"^rule (\w+):", smk.read_text(), flags=re.M))
    return names


def test_slurm_profile_parses_without_local_gpu_cap():
    prof = _load(SLURM_PROFILE)
    assert prof["executor"] == "slurm"
    for key in ("jobs", "latency-wait", "retries", "default-resources", "set-resources"):
        assert key in prof, key
    # a local cap on concurrent GPU-tagged jobs would throttle the whole cluster run
    assert "resources" not in prof
    assert "cores" not in prof
    defaults = prof["default-resources"]
    assert {"runtime", "mem_mb"} <= set(defaults)
    # the placeholders are documented but left out, so the file works on any cluster as it is
    text = SLURM_PROFILE.read_text()
    for placeholder in ("slurm_partition", "slurm_account", "cpus_per_task"):
        assert re.search(rf"^\s*#\s*{placeholder}:", text, flags=re.M), placeholder
        assert placeholder not in defaults
    for rule, res in prof["set-resources"].items():
        # --gpus from `gpu` plus --gres=gpu:N would request the GPUs twice
        assert "gres" not in res, rule


def test_slurm_profile_requests_a_gpu_for_every_gpu_rule():
    gpu_rules = _gpu_rules()
    assert {"train", "evaluate"} <= gpu_rules
    set_resources = _load(SLURM_PROFILE)["set-resources"]
    for rule in gpu_rules:
        assert set_resources.get(rule, {}).get("gpu") == 1, rule
    # no stale names: every per-rule entry refers to a rule of the workflow
    assert set(set_resources) <= _workflow_rules()


def test_default_profile_parses_and_is_safe_under_slurm():
    prof = _load(DEFAULT_PROFILE)
    assert prof.get("cores") == "all"
    assert set(prof) <= SLURM_SAFE_DEFAULT_KEYS, set(prof) - SLURM_SAFE_DEFAULT_KEYS
    assert "resources" not in prof  # gpu=1 rules must run on a CPU-only machine


@pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm is not installed (pip install -c constraints.txt "
    "snakemake-executor-plugin-slurm)",
)
def test_snakemake_reads_the_slurm_profile(tmp_path):
    """Snakemake accepts every key, and a gpu rule gets its GPU and memory from the profile."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(TINY),
            "--directory",
            str(tmp_path),
            "--profile",
            str(SLURM_PROFILE.parent),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train = (proc.stdout + proc.stderr).split("rule train:", 1)[1].split("\n\n", 1)[0]
    resources = re.search(r"resources: (.*)", train).group(1)
    assert "gpu=1" in resources and "mem_mb=16000" in resources and "runtime=720" in resources


def _slurm_run_skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root: starts munged/slurmctld/slurmd and may apt-get install slurm-wlm"
    if shutil.which("bash") is None:
        return "needs bash"
    have_slurm = all(shutil.which(t) for t in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not have_slurm and shutil.which("apt-get") is None:
        return "SLURM is not installed and there is no apt-get to install it"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_slurm_run_skip_reason() is not None, reason=str(_slurm_run_skip_reason()))
def test_workflow_runs_through_real_slurm(tmp_path):
    work = tmp_path / "work"
    env = dict(os.environ, SLURM_TEST_WORKDIR=str(work), VENV=sys.prefix)
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(TINY), "-", *TINY_OUTPUTS],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-10000:]
    assert "PASS:" in proc.stderr
    for out in TINY_OUTPUTS:
        assert (work / out).is_file(), out
    # each job ran inside its own SLURM allocation, not on the submit host
    job_ids = []
    for out in ("out/data/a.txt", "out/data/b.txt", "out/summary.txt"):
        last = (work / out).read_text().splitlines()[-1]
        job_ids.append(last.rsplit("slurm_job=", 1)[1])
    model = dict(
        line.split("=", 1) for line in (work / "out/model.txt").read_text().splitlines()[2:]
    )
    job_ids.append(model["slurm_job"])
    assert all(j.isdigit() for j in job_ids), job_ids
    assert len(set(job_ids)) == 4
    assert model["slurm_cpus_per_task"] == "2"  # threads: 2 -> --cpus-per-task=2
    # gpu=1 -> sbatch --gpus=1 -> SLURM hands the job step its (fake) GPU
    assert model["cuda_visible_devices"] == "0"
