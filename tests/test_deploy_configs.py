"""The documented TF Serving deployment files parse, and both servers accept the same flags."""

import pathlib
import shlex

import pytest
import yaml

from serving import server
from serving.config_files import (read_batching_parameters, read_model_config,
                                  read_monitoring_config)

DEPLOY = pathlib.Path(__file__).resolve().parents[1] / "serving" / "deploy"
README = pathlib.Path(__file__).resolve().parents[1] / "serving" / "README.md"


def test_config_files_parse():
    (spec,) = read_model_config(str(DEPLOY / "models.config"))
    assert (spec.name, spec.base_path, spec.policy.kind, spec.policy.num_versions) == (
        "category", "/models/category", "latest", 2)
    batching = read_batching_parameters(str(DEPLOY / "batching_parameters.txt"))
    assert batching.max_batch_size == 16 and batching.batch_timeout_micros == 3000
    assert read_monitoring_config(str(DEPLOY / "monitoring.config")) == \
        "/monitoring/prometheus/metrics"


def _container_args():
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container["args"]


def test_kubernetes_args_are_flags_fashion_serve_takes_too():
    args = _container_args()
    flags = server.parse_flags(args)
    assert flags["enable_batching"] and flags["model_config_file"] == "/config/models.config"
    mounted = {"/config/" + p.name: str(p) for p in DEPLOY.iterdir()}
    local = [arg.split("=", 1)[0] + "=" + mounted.get(arg.split("=", 1)[1], arg.split("=")[1])
             for arg in args]
    options = server.options_from_flags(server.parse_flags(local))
    assert options.batching.max_batch_size == 16 and options.metrics_path


def test_readme_docker_command_uses_the_same_flags():
    text = README.read_text()
    start = text.index("docker run")
    command = text[start:text.index("```", start)].replace("\\\n", " ")
    flags = [word for word in shlex.split(command) if word.startswith("--")]
    assert "--model_config_file=/config/models.config" in flags
    server.parse_flags(flags)  # every flag is one fashion serve knows


@pytest.mark.parametrize("name", ["models.config", "batching_parameters.txt",
                                  "monitoring.config", "kubernetes.yaml"])
def test_readme_names_every_deploy_file(name):
    assert f"deploy/{name}" in README.read_text()
