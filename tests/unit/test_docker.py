"""Static checks of docker/: compose.yaml, .env.example, Dockerfile and its ignore file. No Docker engine needed.

If Debian's ``docker-compose`` (1.29) is installed, the compose file is also resolved by it (``config -q``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from service.settings import describe_settings
from stack.services import MILVUS_SERVER_CONFIG

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"

STATEFUL = {"postgres": "/var/lib/postgresql/data", "redis": "/data", "minio": "/data", "etcd": "/etcd",
            "milvus": "/var/lib/milvus"}
ONE_SHOTS = {"migrate", "minio-init"}
COPYCAT_SERVICES = {"migrate", "worker-cpu", "worker-gpu", "beat", "watcher", "flower", "api"}
REQUIRED_ENV = ("COPYCAT_DATABASE__URL", "COPYCAT_BROKER__URL", "COPYCAT_S3__ENDPOINT", "COPYCAT_S3__ACCESS_KEY",
                "COPYCAT_S3__SECRET_KEY", "COPYCAT_MILVUS__URI")
# ${VAR}, ${VAR:-default}, ${VAR?err}; "$$" is compose's escape for a literal "$" (expanded in the container).
SUBSTITUTION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}")
BARE_SUBSTITUTION = re.compile(r"(?<!\$)\$[A-Za-z_]")


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=VALUE: {line!r}"
        assert key not in values, f".env.example defines {key} twice"
        values[key] = value
    return values


def resolve(text: str, env: dict[str, str]) -> str:
    return SUBSTITUTION.sub(lambda m: env[m.group(1)], text)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment must be a mapping"
    return {k: str(v) for k, v in env.items()}


def test_expected_services(services: dict[str, Any]) -> None:
    assert set(services) == set(STATEFUL) | ONE_SHOTS | COPYCAT_SERVICES


def test_images_pinned(services: dict[str, Any], env_example: dict[str, str]) -> None:
    for name, service in services.items():
        assert "image" in service, f"{name}: no image (built services name their image:tag too)"
        image = resolve(service["image"], env_example)
        repository, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag and repository, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and tag, f"{name}: image {image!r} is not pinned"
        if "build" in service:
            assert service["build"]["context"] == ".."
            assert service["build"]["dockerfile"] == "docker/Dockerfile"
            assert (DOCKER / ".." / service["build"]["dockerfile"]).is_file()


def test_third_party_tags_exact(services: dict[str, Any]) -> None:
    exact = {
        "postgres": r"postgres:16\.\d+-bookworm",
        "redis": r"redis:7\.\d+\.\d+-bookworm",
        "minio": r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ",
        "minio-init": r"minio/mc:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ",
        "etcd": r"quay\.io/coreos/etcd:v3\.5\.\d+",
        "milvus": r"milvusdb/milvus:v2\.\d+\.\d+",
    }
    for name, pattern in exact.items():
        assert re.fullmatch(pattern, services[name]["image"]), f"{name}: {services[name]['image']}"


def test_copycat_env_vars_are_settings(compose_text: str) -> None:
    known = {row[0] for row in describe_settings()}
    for source, text in (("compose.yaml", compose_text), (".env.example", ENV_EXAMPLE.read_text())):
        used = set(re.findall(r"\bCOPYCAT_[A-Z0-9_]+", text))
        assert used, source
        assert used <= known, f"{source} uses unknown settings: {sorted(used - known)}"


def test_copycat_services_have_connection_settings(services: dict[str, Any]) -> None:
    for name in COPYCAT_SERVICES:
        env = environment(services[name])
        missing = [key for key in REQUIRED_ENV if not env.get(key)]
        assert not missing, f"{name} lacks {missing}"
        assert env["COPYCAT_HOME"] == "/var/lib/copycat"
        assert any(v.endswith(":/var/lib/copycat") for v in services[name]["volumes"]), name
        assert services[name].get("env_file") == ".env", name
        assert services[name]["image"].startswith("copycat"), name


def strings(node: Any) -> list[str]:
    """Every key and scalar of a parsed YAML tree (what compose interpolates; comments are not)."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def test_every_substitution_is_defined(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    values = strings(compose)
    used = {var for value in values for var in SUBSTITUTION.findall(value)}
    assert used, "compose.yaml takes nothing from .env"
    assert used <= set(env_example), f"not in .env.example: {sorted(used - set(env_example))}"
    bare = [value for value in values if BARE_SUBSTITUTION.search(value)]
    assert not bare, f"write ${{VAR}}, or $$VAR for the container's shell: {bare}"
    unused = set(env_example) - used - {"COMPOSE_PROJECT_NAME"}
    assert not unused, f".env.example defines unused {sorted(unused)}"


def test_env_example_holds_no_real_secrets(env_example: dict[str, str]) -> None:
    for key, value in env_example.items():
        if re.search(r"PASSWORD|SECRET|BASIC_AUTH", key):
            assert "change-me" in value, f"{key} must be a change-me placeholder"
    # The real file must never be committed (it is git-ignored by the repository's .env pattern).
    if shutil.which("git") and (ROOT / ".git").exists():
        check = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=ROOT, check=False)
        assert check.returncode == 0, "docker/.env is not git-ignored"


def test_depends_on_conditions(services: dict[str, Any]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"
            elif condition == "service_completed_successfully":
                assert target in ONE_SHOTS, f"{name} waits for {target} to exit, but it is long-running"
            else:
                pytest.fail(f"{name} -> {target}: condition {condition!r}")


def test_start_order(services: dict[str, Any]) -> None:
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["milvus"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for name in COPYCAT_SERVICES - {"migrate"}:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["minio-init"]["condition"] == "service_completed_successfully", name
        assert {"postgres", "redis", "milvus"} <= set(depends), name


def test_restart_policies(services: dict[str, Any]) -> None:
    for name, service in services.items():
        expected = "on-failure" if name in ONE_SHOTS else "unless-stopped"
        assert service.get("restart") == expected, f"{name}: restart {service.get('restart')!r}"


def test_stateful_services_have_volumes_and_healthchecks(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, path in STATEFUL.items():
        mounts = [m.split(":") for m in services[name]["volumes"]]
        assert [path] == [m[1] for m in mounts if m[0] in declared], f"{name}: no named volume at {path}"
        assert services[name]["healthcheck"]["test"], name


def test_healthchecks(services: dict[str, Any]) -> None:
    def test_of(name: str) -> str:
        return " ".join(services[name]["healthcheck"]["test"])

    assert "pg_isready" in test_of("postgres")
    assert "redis-cli ping" in test_of("redis")
    assert "mc ready local" in test_of("minio")
    assert "localhost:9091/healthz" in test_of("milvus")
    assert "etcdctl endpoint health" in test_of("etcd")


def test_commands(services: dict[str, Any], env_example: dict[str, str]) -> None:
    def command(name: str) -> list[str]:
        return [resolve(part, env_example) for part in services[name]["command"]]

    assert command("migrate") == ["copycat", "migrate"]
    assert command("watcher") == ["copycat", "watch"]
    assert command("flower") == ["copycat", "flower"]
    assert command("api") == ["copycat", "api"]
    assert command("worker-cpu")[:6] == ["celery", "-A", "tasks.worker", "worker", "-Q", "index,query,ops"]
    assert command("worker-gpu")[:10] == ["celery", "-A", "tasks.worker", "worker", "-Q", "embed", "--pool", "threads",
                                          "-c", services["worker-gpu"]["environment"]["COPYCAT_EMBED__PARALLEL_VIDEOS"]]
    assert command("beat")[:4] == ["celery", "-A", "tasks.worker", "beat"]
    queues = set(env_example["CPU_WORKER_QUEUES"].split(",")) | {"embed"}
    from tasks.app import QUEUES

    assert queues == set(QUEUES), "every queue has a consumer"


def test_gpu_worker(services: dict[str, Any]) -> None:
    gpu = services["worker-gpu"]
    assert gpu["build"]["args"]["GPU"] == "1"
    assert services["worker-cpu"]["build"]["args"]["GPU"] == "0"
    assert gpu["image"] != services["worker-cpu"]["image"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert environment(gpu)["COPYCAT_EMBED__DEVICE"] == "cuda"


def test_flower_auth_and_address(services: dict[str, Any]) -> None:
    env = environment(services["flower"])
    assert env["COPYCAT_FLOWER__BASIC_AUTH"] == "${FLOWER_BASIC_AUTH}"
    assert env["COPYCAT_FLOWER__ADDRESS"] == "0.0.0.0"
    assert services["flower"]["ports"] == ["${PUBLISH_ADDRESS}:5555:5555"]


def test_only_front_services_publish_ports(services: dict[str, Any]) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"minio", "flower", "api"}
    for name in published:
        assert all(p.startswith("${PUBLISH_ADDRESS}:") for p in services[name]["ports"]), name


def test_api_address_and_health(services: dict[str, Any]) -> None:
    env = environment(services["api"])
    assert (env["COPYCAT_API__ADDRESS"], env["COPYCAT_API__PORT"]) == ("0.0.0.0", "8000")
    assert services["api"]["ports"] == ["${PUBLISH_ADDRESS}:8000:8000"]
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages = [line for line in lines if line.upper().startswith("FROM ")]
    assert len(stages) >= 2 and all(re.match(r"FROM \S+ AS \w+$", s, re.IGNORECASE) for s in stages), stages
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.12\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1] not in {"root", "0"} and not users[-1].startswith("0:"), users
    assert users[-1] == "copycat"
    assert not any(line.upper().startswith("HEALTHCHECK") for line in lines)
    assert "ffmpeg" in text and "ARG GPU=0" in text and "WORKDIR" in text
    assert re.search(r"^COPY pyproject\.toml", text, re.MULTILINE).start() < text.index("COPY workers")
    for line in lines:
        if re.match(r"(ENV|ARG) ", line):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY)", line), f"secret in image: {line}"


def test_dockerignore() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", "allow-list: everything is excluded first"
    for needed in (".venv", "copycat-data", ".git", "**/.env", "**/__pycache__"):
        assert needed in patterns, needed
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE.read_text(), re.MULTILINE))
    assert copied <= allowed, f"COPY of files the context excludes: {copied - allowed}"


def test_requirements_swap_onnxruntime(tmp_path: Path) -> None:
    sys.path.insert(0, str(DOCKER))
    try:
        import requirements as reqs
    finally:
        sys.path.remove(str(DOCKER))
    version = re.search(r"^ARG ONNXRUNTIME_VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE).group(1)
    cpu = reqs.requirements(ROOT / "pyproject.toml", False, version)
    gpu = reqs.requirements(ROOT / "pyproject.toml", True, version)
    assert f"onnxruntime=={version}" in cpu and not any("onnxruntime-gpu" in r for r in cpu)
    assert f"onnxruntime-gpu[cuda,cudnn]=={version}" in gpu and not any(r.startswith("onnxruntime=") for r in gpu)
    assert [r for r in cpu if "onnxruntime" not in r] == [r for r in gpu if "onnxruntime" not in r]
    declared = next(Requirement(r) for r in _project_dependencies() if Requirement(r).name == "onnxruntime")
    assert declared.specifier.contains(version), f"ONNXRUNTIME_VERSION {version} outside {declared}"


def _project_dependencies() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_docker_compose_config(tmp_path: Path) -> None:
    """docker-compose resolves the file (schema, types, substitutions, build paths).

    env_file points at docker/.env, which only a deployment has; the check runs on a copy with the
    example as its .env.
    """
    (tmp_path / "docker").mkdir()
    for name in ("compose.yaml", "Dockerfile", "milvus.yaml"):
        shutil.copy(DOCKER / name, tmp_path / "docker" / name)
    shutil.copy(ENV_EXAMPLE, tmp_path / "docker" / ".env")
    result = subprocess.run(
        ["docker-compose", "-f", "docker/compose.yaml", "--env-file", "docker/.env", "config", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_milvus_overrides_match_the_servers_started_here(services: dict[str, Any]) -> None:
    """Production's Milvus runs with docker/milvus.yaml over its defaults, the test and bench servers with
    MILVUS_SERVER_CONFIG: the same keys, so what the bench measures is what production runs."""
    assert "./milvus.yaml:/milvus/configs/user.yaml:ro" in services["milvus"]["volumes"]

    def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return flat

    assert flatten(yaml.safe_load((DOCKER / "milvus.yaml").read_text())) == MILVUS_SERVER_CONFIG


def test_the_image_copies_every_package_of_the_project() -> None:
    """A top-level package added to pyproject.toml but not copied into the image would fail at import there."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE.read_text(), re.M))
    assert {p.rstrip("*") for p in packages} <= copied
