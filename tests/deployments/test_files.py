"""Checks of the deployment files: Prefect project files, compose stack, Dockerfiles.

No Docker engine or Prefect server is needed: the files are parsed and checked against
what the flows, pyproject.toml and Prefect's own prefect.yaml model expect.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "deployments"
DOCKER = ROOT / "docker"
PREFECT_FILES = ["prefect.yaml", "prefect-docker.yaml", "prefect-kubernetes.yaml"]
FLOW_FILE = "flows/pipeline.py"
FLOW_FUNCTIONS = ["backfill", "nightly"]
#: Deployments beyond nightly/backfill, by file: name -> entrypoint file.
EXTRA_DEPLOYMENTS = {"prefect.yaml": {"catalogue": "flows/science.py"}}
REQUIRED_SERVICES = {
    "postgres",
    "prefect-server",
    "prefect-worker",
    "dask-scheduler",
    "dask-gpu-worker",
    "dask-cpu-worker",
    "minio",
    "createbuckets",
}
#: Environment names whose value is a credential and must come from the environment.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|(^|_)KEY$|_USER$")
#: A whole value that is one reference without a default: ${VAR} or ${VAR:?message}.
ENV_REF = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(:?\?[^}]*)?\}$")
ANY_REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(:?[-?])?([^}]*)\}")


def _load(path: Path) -> Any:
    with path.open() as fh:
        return yaml.safe_load(fh)


def _pyproject_pin(name: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1] for d in deps if re.match(rf"{name}\s*==", d)]
    assert len(pins) == 1, f"pyproject.toml pins {name} {len(pins)} times"
    return pins[0].strip()


def _deployments(filename: str) -> dict[str, dict]:
    data = _load(DEPLOYMENTS / filename)
    return {d["name"]: d for d in data["deployments"]}


def _flow_signatures(flow_file: str = FLOW_FILE) -> dict[str, list[str]] | None:
    """Parameter names of the flow functions in ``flow_file`` (None if not written yet)."""
    path = ROOT / flow_file
    if not path.exists():
        return None
    tree = ast.parse(path.read_text())
    sigs = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            sigs[node.name] = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
    return sigs


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


# --------------------------------------------------------------------------- prefect.yaml


@pytest.mark.parametrize("filename", PREFECT_FILES)
def test_prefect_file_validates_with_prefects_model(filename):
    from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel

    raw = _load(DEPLOYMENTS / filename)
    model = PrefectYamlModel.model_validate(raw)
    extra = list(EXTRA_DEPLOYMENTS.get(filename, {}))
    assert [d.name for d in model.deployments] == ["nightly", "backfill", *extra]
    # Prefect ignores unknown keys: a misspelt key would silently do nothing.
    allowed = set(DeploymentConfig.model_fields)
    for dep in raw["deployments"]:
        assert set(dep) <= allowed, f"{filename}:{dep['name']}: {set(dep) - allowed}"
    top = set(PrefectYamlModel.model_fields) | {"prefect-version", "definitions"}
    assert set(raw) <= top, set(raw) - top


@pytest.mark.parametrize("filename", PREFECT_FILES)
def test_prefect_file_version_matches_pyproject(filename):
    assert str(_load(DEPLOYMENTS / filename)["prefect-version"]) == _pyproject_pin("prefect")


@pytest.mark.parametrize("filename", PREFECT_FILES)
def test_entrypoints_name_the_flow_functions(filename):
    extra = EXTRA_DEPLOYMENTS.get(filename, {})
    for name, dep in _deployments(filename).items():
        path, _, func = dep["entrypoint"].partition(":")
        assert path == extra.get(name, FLOW_FILE)
        assert func in [*FLOW_FUNCTIONS, *extra]
        assert func == name, "deployment name and flow function differ"
        sigs = _flow_signatures(path)
        if sigs is not None:  # flows/pipeline.py written: names and parameters must exist
            assert func in sigs, f"{FLOW_FILE} defines no {func}()"
            unknown = set(dep.get("parameters") or {}) - set(sigs[func])
            assert not unknown, f"{filename}:{name} passes {unknown} that {func}() lacks"


@pytest.mark.parametrize("filename", PREFECT_FILES)
def test_nightly_runs_at_two_utc_one_at_a_time(filename):
    nightly = _deployments(filename)["nightly"]
    schedules = nightly["schedules"]
    assert len(schedules) == 1
    assert schedules[0]["cron"] == "0 2 * * *"
    assert schedules[0]["timezone"] == "UTC"
    assert schedules[0].get("active", True) is True
    limit = nightly["concurrency_limit"]
    assert (limit["limit"] if isinstance(limit, dict) else limit) == 1
    assert nightly["parameters"]["config"]


@pytest.mark.parametrize("filename", PREFECT_FILES)
def test_backfill_has_no_schedule_and_requires_its_range(filename):
    backfill = _deployments(filename)["backfill"]
    assert not backfill.get("schedules")
    assert not backfill.get("schedule")
    # start/end come with each run; the enforced schema refuses a run without them.
    assert not {"start", "end"} & set(backfill.get("parameters") or {})
    assert backfill["enforce_parameter_schema"] is True
    assert backfill["parameters"]["config"]


def test_process_deployments_run_from_the_checkout():
    data = _load(DEPLOYMENTS / "prefect.yaml")
    (step,) = data["pull"]
    assert step == {
        "prefect.deployments.steps.set_working_directory": {"directory": "{{ $PLUMENET_HOME }}"}
    }
    for dep in data["deployments"]:
        assert dep["work_pool"]["name"] == "plumenet-process"


def test_image_variants_run_from_the_image_code():
    for filename in ["prefect-docker.yaml", "prefect-kubernetes.yaml"]:
        (step,) = _load(DEPLOYMENTS / filename)["pull"]
        assert step["prefect.deployments.steps.set_working_directory"]["directory"] == (
            "/opt/plumenet"
        )
    k8s_gpu = _deployments("prefect-kubernetes.yaml")["backfill"]["work_pool"]
    assert k8s_gpu["job_variables"]["resources"]["limits"]["nvidia.com/gpu"] >= 1
    docker_gpu = _deployments("prefect-docker.yaml")["backfill"]["work_pool"]
    (request,) = docker_gpu["job_variables"]["container_create_kwargs"]["device_requests"]
    assert request["driver"] == "nvidia"
    assert ["gpu"] in request["capabilities"]


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load(DOCKER / "compose.yaml")


def test_compose_has_the_stack(compose):
    services = compose["services"]
    assert set(services) >= REQUIRED_SERVICES
    for name in ["postgres", "prefect-server", "dask-scheduler", "minio"]:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file(), name


def test_compose_wires_prefect(compose):
    services = compose["services"]
    server = services["prefect-server"]
    assert server["entrypoint"] == ["prefect"]
    assert server["command"][:2] == ["server", "start"]
    assert "0.0.0.0" in server["command"]
    url = _environment(server)["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://")
    assert "${POSTGRES_PASSWORD}@postgres:" in url
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"

    worker = services["prefect-worker"]
    cmd = worker["command"]
    assert cmd[:2] == ["worker", "start"]
    pools = {d["work_pool"]["name"] for d in _load(DEPLOYMENTS / "prefect.yaml")["deployments"]}
    assert cmd[cmd.index("--pool") + 1] in pools
    env = _environment(worker)
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["PLUMENET_HOME"] == "/opt/plumenet"


def test_compose_gpu_worker_reserves_nvidia_gpus(compose):
    services = compose["services"]
    gpu = services["dask-gpu-worker"]
    assert gpu["entrypoint"] == ["dask"]
    assert gpu["command"][:3] == ["cuda", "worker", "tcp://dask-scheduler:8786"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "Dockerfile.cuda" in gpu["build"]["dockerfile"]
    assert services["dask-scheduler"]["command"][0] == "scheduler"
    cpu = services["dask-cpu-worker"]
    assert cpu["command"][:2] == ["worker", "tcp://dask-scheduler:8786"]
    for worker in (gpu, cpu):  # workers warm up as they start, as local ones do
        cmd = worker["command"]
        assert cmd[cmd.index("--preload") + 1] == "plumenet.jobs.warmup"
    assert "cpu" in cpu["profiles"]
    assert "gpu" in gpu["profiles"]


def test_compose_has_no_hard_coded_secrets(compose):
    for name, svc in compose["services"].items():
        for key, value in _environment(svc).items():
            if SECRET_NAME.search(key):
                assert ENV_REF.match(value), f"{name}: {key}={value!r} is not ${{VAR}}"
            for user_password in re.findall(r"//([^/@]+)@", value):  # credentials in URLs
                for part in user_password.split(":"):
                    assert ENV_REF.match(part), f"{name}: {key} embeds {part!r}"
    text = (DOCKER / "compose.yaml").read_text()
    for secret_var in ["POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "PLUMENET_S3_SECRET"]:
        assert f"${{{secret_var}:-" not in text, f"{secret_var} has a default value"


def test_compose_variables_are_documented_in_env_example():
    example = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    text = (DOCKER / "compose.yaml").read_text().replace("$$", "")
    for var, op, _default in ANY_REF.findall(text):
        if op not in (":-", "-"):  # no default: the user has to provide it
            assert var in example, f"${{{var}}} is not in docker/.env.example"
    for key, value in example.items():
        if SECRET_NAME.search(key) and not key.endswith("_USER") and key != "PLUMENET_S3_KEY":
            assert "change-me" in value, f".env.example {key} must be a placeholder"


# --------------------------------------------------------------------------- Dockerfiles


def _dockerfile(name: str) -> str:
    return (DOCKER / name).read_text()


def _arg(text: str, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", text, flags=re.MULTILINE)
    assert match, f"no ARG {name}"
    return match.group(1)


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfile_installs_torch_before_the_project(name):
    text = _dockerfile(name)
    torch_at = text.index('pip install "torch==${TORCH_VERSION}"')
    project = r'pip install "\.\[gpu\]"' if name.endswith("cuda") else r"pip install \. "
    project_at = re.search(project, text).start()
    assert torch_at < project_at
    assert text.index("COPY plumenet") > torch_at  # code edits keep the torch layer


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfile_pins_match_pyproject(name):
    text = _dockerfile(name)
    assert _arg(text, "PREFECT_VERSION") == _pyproject_pin("prefect")
    assert '"prefect==${PREFECT_VERSION}"' in text
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in packages["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert re.search(rf"^COPY {package} \./{package}$", text, flags=re.MULTILINE), package
    users = re.findall(r"^USER (\S+)$", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerfiles_share_python_dask_and_torch():
    cpu, cuda = _dockerfile("Dockerfile.cpu"), _dockerfile("Dockerfile.cuda")
    for arg in ["PYTHON_IMAGE", "DASK_VERSION", "TORCH_VERSION", "PREFECT_VERSION"]:
        assert _arg(cpu, arg) == _arg(cuda, arg), arg
    assert "whl/cpu" in _arg(cpu, "TORCH_INDEX_URL")
    assert "whl/cpu" not in _arg(cuda, "TORCH_INDEX_URL")
    assert re.match(r"python:3\.1[1-9]", _arg(cpu, "PYTHON_IMAGE"))
