"""cluster/: from one machine to many.

- The cloud files, checked by the tools that will read them: the cluster-launcher YAML by
  Ray's own schema and validator (and a broken copy must fail it), the KubeRay manifests by
  their required structure, the RayJob entrypoint by the project's own argument parser.
- A real multi-node cluster on this machine (cluster/start_local.sh: a head and a worker
  node, 1 CPU each, loopback only, token auth): a sweep's trials spread over both nodes,
  and a sweep survives losing the worker node mid-trial.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
BIN = Path(sys.executable).parent
GPU_INSTANCE = re.compile(r"^(g4dn|g5|g6|g6e|p3|p4d|p4de|p5|p5e)\.")
TINY = ["--set", "seq_length=32", "--set", "batch_size=8", "--set", "micro_batch_size=8",
        "--set", "val_rows=32", "--set", "eval_pairs_per_paradigm=5"]


def dockerfile_image() -> str:
    """The image tag that cluster/Dockerfile says it builds (its `# image:` line)."""
    text = (CLUSTER / "Dockerfile").read_text()
    match = re.search(r"^# image: (\S+)$", text, re.M)
    assert match, "cluster/Dockerfile names no '# image:' tag"
    return match.group(1)


# --- the Dockerfile ------------------------------------------------------------------------

def test_dockerfile_builds_on_ray_260_gpu_and_installs_the_project():
    text = (CLUSTER / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"rayproject/ray:2\.60\.\d+-py311-(gpu|cu\d+)", base), base
    assert re.search(r"pip install .*-e \.", text)
    image = dockerfile_image()
    assert "2.60" in image and "gpu" in image, image


# --- the AWS cluster-launcher config -------------------------------------------------------

def launcher_config() -> dict:
    return yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())


def validate_like_ray_up(config: dict) -> dict:
    """What `ray up` does before touching the cloud: fill in the provider's defaults, then
    check the result against ray/autoscaler/ray-schema.json and Ray's semantic checks."""
    import copy

    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_aws_config_passes_rays_own_validator():
    config = launcher_config()
    prepared = validate_like_ray_up(config)
    assert prepared["provider"]["type"] == "aws"
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert not GPU_INSTANCE.match(head["node_config"]["InstanceType"]), "the head should be a CPU instance"
    gpu_types = {name: t for name, t in types.items() if GPU_INSTANCE.match(t["node_config"]["InstanceType"])}
    assert gpu_types, "no GPU worker type"
    for name, t in gpu_types.items():  # autoscaling: from zero, on demand
        assert t["min_workers"] == 0 < t["max_workers"], name


def test_aws_config_keeps_the_dashboard_local_and_token_auth_on():
    config = launcher_config()
    text = (CLUSTER / "aws-gpu.yaml").read_text()
    head_cmds = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_cmds
    assert "0.0.0.0" not in text
    for cmds in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(c for c in cmds if "ray start" in c)
        assert "RAY_AUTH_MODE=token" in start
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    mounts = config["file_mounts"]
    assert mounts["~/.ray/auth_token"] == "~/.ray/auth_token"  # the same token on every node
    assert "." in mounts.values()  # the checkout
    assert config["docker"]["image"] == dockerfile_image()


BREAKAGES = {
    "unknown top-level key": lambda c: c.update(max_worker=3),
    "wrong type": lambda c: c.update(max_workers="ten"),
    "head type not defined": lambda c: c.update(head_node_type="nope"),
    "misspelt node_config": lambda c: c["available_node_types"]["gpu_l4"].update(node_confg={}),
    "misspelt docker field": lambda c: c["docker"].update(imag="x"),
    "commands not a list": lambda c: c.update(head_start_ray_commands="ray start --head"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_aws_validator_is_not_trivially_passing(breakage):
    config = launcher_config()
    BREAKAGES[breakage](config)
    with pytest.raises(Exception) as info:
        validate_like_ray_up(config)
    assert type(info.value).__name__ in ("ValidationError", "ValueError"), info.value


# --- the KubeRay manifests -----------------------------------------------------------------

def manifest(name: str) -> dict:
    docs = [d for d in yaml.safe_load_all((CLUSTER / "kuberay" / name).read_text()) if d]
    assert len(docs) == 1, f"{name}: expected one object, got {len(docs)}"
    return docs[0]


def pod_specs(cluster_spec: dict):
    yield "head", cluster_spec["headGroupSpec"]["template"]["spec"]
    for group in cluster_spec["workerGroupSpecs"]:
        yield group["groupName"], group["template"]["spec"]


def cluster_specs():
    raycluster, rayjob = manifest("raycluster.yaml"), manifest("rayjob.yaml")
    return {"RayCluster": raycluster["spec"], "RayJob": rayjob["spec"]["rayClusterSpec"]}


def test_kuberay_kinds_and_versions():
    raycluster, rayjob, pvc = manifest("raycluster.yaml"), manifest("rayjob.yaml"), manifest("pvc.yaml")
    assert (raycluster["apiVersion"], raycluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (rayjob["apiVersion"], rayjob["kind"]) == ("ray.io/v1", "RayJob")
    assert (pvc["apiVersion"], pvc["kind"]) == ("v1", "PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]  # every pod writes trial results
    for kind, spec in cluster_specs().items():
        assert re.fullmatch(r"2\.60\.\d+", str(spec["rayVersion"])), kind
        assert spec["headGroupSpec"]["template"]["spec"]["containers"], kind
        assert spec["workerGroupSpecs"], kind
        assert spec.get("authOptions", {}).get("mode") == "token", f"{kind}: token auth must stay on"


def test_kuberay_gpu_workers_images_and_storage():
    image = dockerfile_image()
    claim = manifest("pvc.yaml")["metadata"]["name"]
    for kind, spec in cluster_specs().items():
        for group in spec["workerGroupSpecs"]:
            containers = group["template"]["spec"]["containers"]
            gpus = [c["resources"]["limits"].get("nvidia.com/gpu", 0) for c in containers]
            assert int(gpus[0]) >= 1, f"{kind}/{group['groupName']}: no nvidia.com/gpu limit"
        for group, pod in pod_specs(spec):
            for container in pod["containers"]:
                assert container["image"] == image, f"{kind}/{group}: {container['image']} != Dockerfile's {image}"
            claims = [v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v]
            assert claims == [claim], f"{kind}/{group}: results volume"


def test_kuberay_dashboard_not_exposed():
    for name in ("raycluster.yaml", "rayjob.yaml", "pvc.yaml"):
        text = (CLUSTER / "kuberay" / name).read_text()
        for doc in yaml.safe_load_all(text):
            assert doc["kind"] not in ("Service", "Ingress", "Route"), f"{name}: no extra exposure"
        live = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # comments may warn about it
        assert "LoadBalancer" not in live and "NodePort" not in live, name
    for kind, spec in cluster_specs().items():
        head = spec["headGroupSpec"]
        assert head.get("serviceType", "ClusterIP") == "ClusterIP", kind
        assert not head.get("enableIngress", False), kind


def test_rayjob_runs_the_sweep_with_gpu_workers_and_shuts_down():
    from sweeps.run import build_parser, main

    rayjob = manifest("rayjob.yaml")["spec"]
    assert rayjob["shutdownAfterJobFinishes"] is True
    argv = shlex.split(rayjob["entrypoint"])
    assert argv[:2] == ["python", "sweeps/run.py"], argv[:2]
    args = build_parser().parse_args(argv[2:])
    assert args.space == "bimodal_p" and args.gpus_per_worker > 0
    mounts = {m["mountPath"] for _, pod in pod_specs(rayjob["rayClusterSpec"])
              for c in pod["containers"] for m in c.get("volumeMounts", [])}
    assert args.storage.startswith("s3://") or args.storage in mounts, args.storage
    assert args.cache_dir and any(args.cache_dir.startswith(m) for m in mounts), "cache must be shared by all pods"
    # The whole command validates (space, config, flags) the way the driver would, starting nothing.
    assert main([*argv[2:], "--dry-run"]) == 0


# --- the local scripts ---------------------------------------------------------------------

def test_local_scripts_parse_and_refuse_bad_input(tmp_path):
    for script in ("start_local.sh", "stop_local.sh"):
        assert subprocess.run(["bash", "-n", str(CLUSTER / script)]).returncode == 0, script
    bad = subprocess.run(["bash", str(CLUSTER / "start_local.sh"), "--workers", "two"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--workers" in bad.stderr
    none = subprocess.run(["bash", str(CLUSTER / "stop_local.sh"), str(tmp_path)], capture_output=True, text=True)
    assert none.returncode == 2 and "cluster.env" in none.stderr  # never stops anything it did not start


# --- a real two-node cluster on this machine -----------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path: Path) -> dict:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture
def two_nodes(cache_dir):
    """Head + 1 worker node, 1 CPU each, on ports away from Ray's defaults; stops exactly
    this cluster afterwards (never `ray stop`: other tests' clusters share the machine)."""
    temp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths live below it
    gcs_port, dashboard_port = free_port(), free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_USAGE_STATS_ENABLED": "0", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "MDLM_CACHE_DIR": str(cache_dir)}
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    start = subprocess.run(
        ["bash", str(CLUSTER / "start_local.sh"), "--workers", "1", "--cpus-per-node", "1", "--port", str(gcs_port),
         "--dashboard-port", str(dashboard_port), "--temp-dir", str(temp), "--object-store-mb", "200"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    try:
        assert start.returncode == 0, (start.stdout[-2000:], start.stderr[-3000:])
        print(f"\n[cluster] start_local.sh: {time.monotonic() - started:.1f}s")
        assert f"RAY_API_SERVER_ADDRESS=http://127.0.0.1:{dashboard_port}" in start.stdout
        yield {
            "dir": temp,
            "head": read_env_file(temp / "head" / "node.env")["NODE_ID"],
            "w1": read_env_file(temp / "w1" / "node.env")["NODE_ID"],
            "env": {**env, "RAY_AUTH_MODE": "token", "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{dashboard_port}"},
            "address": f"127.0.0.1:{gcs_port}",
        }
    finally:
        stopped = time.monotonic()
        subprocess.run(["bash", str(CLUSTER / "stop_local.sh"), str(temp), "--grace", "5"], env=env,
                       capture_output=True, timeout=120)
        left = subprocess.run(["bash", str(CLUSTER / "stop_local.sh"), str(temp), "--list"], capture_output=True, text=True)
        print(f"[cluster] stop_local.sh: {time.monotonic() - stopped:.1f}s, left running: {left.stdout.strip() or 'none'}")
        shutil.rmtree(temp, ignore_errors=True)
        assert not left.stdout.strip(), f"processes of {temp} still running: {left.stdout}"


def trials(experiment: Path):
    from ray.tune import ExperimentAnalysis

    return ExperimentAnalysis(str(experiment)).trials


def reported(trial_dir: Path) -> list[dict]:
    path = Path(trial_dir) / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.mark.slow
def test_sweep_spreads_over_two_nodes(two_nodes, tmp_path, cache_dir):
    """Submitted as a Ray job with the token, as the README says; two 1-CPU nodes, so four
    1-CPU trials must use both."""
    store = tmp_path / "sweeps"
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--", "python", "sweeps/run.py", "--space", "bimodal_p", "--num-samples", "4",
         "--max-steps", "12", "--evals-per-trial", "2", "--scheduler", "none", "--wandb-mode", "disabled",
         "--storage", str(store), "--name", "mn", "--cache-dir", str(cache_dir), *TINY],
        cwd=ROOT, env=two_nodes["env"], capture_output=True, text=True, timeout=600,
    )
    print(f"[cluster] 4-trial sweep as a Ray job: {time.monotonic() - started:.1f}s")
    assert result.returncode == 0 and "succeeded" in result.stdout, (result.stdout[-3000:], result.stderr[-3000:])
    done = trials(store / "mn")
    assert len(done) == 4 and all(t.status == "TERMINATED" for t in done), [(t.trial_id, t.status) for t in done]
    assert all(t.last_result["step"] == 12 for t in done)
    nodes = {r["node_id"] for t in done for r in reported(t.path)}
    assert nodes == {two_nodes["head"], two_nodes["w1"]}, nodes


@pytest.mark.slow
def test_sweep_survives_losing_a_worker_node(two_nodes, tmp_path, cache_dir):
    """Issue 5.3: kill the worker node (its raylet and every process of it, SIGKILL) as soon
    as a trial reports from it. Tune must retry that trial (FailureConfig max_failures=1,
    from sweep.json) from its last checkpoint on the head, and finish every trial."""
    store = tmp_path / "sweeps"
    experiment = store / "nodeloss"
    env = {**two_nodes["env"], "RAY_ADDRESS": two_nodes["address"]}
    started = time.monotonic()
    driver = subprocess.Popen(
        [sys.executable, "sweeps/run.py", "--space", "bimodal_p", "--num-samples", "4", "--max-steps", "40",
         "--evals-per-trial", "4", "--max-concurrent", "2", "--scheduler", "none", "--wandb-mode", "disabled",
         "--storage", str(store), "--name", "nodeloss", "--cache-dir", str(cache_dir), *TINY],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        victim, killed_at = None, None
        while driver.poll() is None and time.monotonic() - started < 300:
            for trial_dir in experiment.glob("run_trial_*"):
                if any(r.get("node_id") == two_nodes["w1"] for r in reported(trial_dir)):
                    victim = trial_dir
                    break
            if victim:
                kill = subprocess.run(["bash", str(CLUSTER / "stop_local.sh"), str(two_nodes["dir"]), "--node", "w1",
                                       "--signal", "KILL"], capture_output=True, text=True, timeout=60)
                killed_at = time.monotonic() - started
                assert kill.returncode == 0, kill.stderr
                break
            time.sleep(0.25)
        assert victim, "no trial ever reported from the worker node"
        left = subprocess.run(["bash", str(CLUSTER / "stop_local.sh"), str(two_nodes["dir"]), "--node", "w1", "--list"],
                              capture_output=True, text=True)
        assert not left.stdout.strip(), f"worker node processes survived: {left.stdout}"
        output, _ = driver.communicate(timeout=420)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    wall = time.monotonic() - started
    assert driver.returncode == 0, output[-4000:]

    done = trials(experiment)
    summary = {t.trial_id: (t.status, t.num_failures, t.last_result.get("step"),
                            "head" if t.last_result.get("node_id") == two_nodes["head"] else "w1") for t in done}
    victim_rows = reported(victim)
    on_w1 = [r["step"] for r in victim_rows if r["node_id"] == two_nodes["w1"]]
    after = [r["step"] for r in victim_rows if r["node_id"] == two_nodes["head"]]
    print(f"[cluster] node loss: killed w1 at {killed_at:.1f}s while trial {victim.name.split('_')[2]} ran there "
          f"(steps reported on w1: {on_w1}, then on the head: {after}); sweep finished in {wall:.1f}s; "
          f"trials (status, failures, last step, node): {summary}")
    # No trial ends in ERROR or is lost, every one trained its full budget, the lost node runs nothing.
    assert len(done) == 4, summary
    assert all(status == "TERMINATED" and step == 40 for status, _, step, _ in summary.values()), summary
    victim_trial = next(t for t in done if t.path and Path(t.path).name == victim.name)
    assert victim_trial.num_failures >= 1 and summary[victim_trial.trial_id][3] == "head", summary
    # Retried from its last checkpoint, not from scratch: the head carried on past what w1 had done.
    assert after and min(after) > min(on_w1), (on_w1, after)
