"""fashion serve: tensorflow_model_server flags and model config files."""

import pytest

from serving import server
from serving.model_manager import VersionPolicy


def test_flags_use_tensorflow_model_server_syntax():
    flags = server.parse_flags(["--model_name=category", "--model_base_path", "/models/c",
                                "--rest_api_port=9001", "--file_system_poll_wait_seconds=5"])
    assert (flags["model_name"], flags["model_base_path"], flags["rest_api_port"],
            flags["file_system_poll_wait_seconds"]) == ("category", "/models/c", 9001, 5)
    assert server.model_specs(flags) == [server.ModelSpec("category", "/models/c")]


@pytest.mark.parametrize("argv,fragment", [
    (["--bogus=1"], "unknown flag --bogus"),
    (["--enable_batching=true"], "does not support yet"),
    (["--port=grpc"], "is not a int"),
    (["--rest_api_port=http"], "is not a int"),
    (["--model_name"], "needs a value"),
    (["model"], "unexpected argument"),
])
def test_bad_flags_fail_clearly(argv, fragment):
    with pytest.raises(server.FlagError, match=fragment):
        server.parse_flags(argv)


def test_a_model_source_is_required():
    with pytest.raises(server.FlagError, match="model_base_path"):
        server.model_specs(server.parse_flags([]))


def test_model_config_file(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("""
model_config_list {
  config { name: "category" base_path: "/m/category" model_platform: "tensorflow" }
  config {
    name: "brand" base_path: "/m/brand"
    model_version_policy { specific { versions: 3 versions: 4 } }
    version_labels { key: "stable" value: 3 }
    version_labels { key: "canary" value: 4 }
  }
  config { name: "attributes" base_path: "/m/attributes"
           model_version_policy { all {} } }
  config { name: "detector" base_path: "/m/detector"
           model_version_policy { latest { num_versions: 2 } } }
}
""")
    specs = server.model_specs(server.parse_flags([f"--model_config_file={path}"]))
    assert specs == [
        server.ModelSpec("category", "/m/category", VersionPolicy("latest", 1)),
        server.ModelSpec("brand", "/m/brand", VersionPolicy("specific", versions=(3, 4)),
                         (("canary", 4), ("stable", 3))),
        server.ModelSpec("attributes", "/m/attributes", VersionPolicy("all")),
        server.ModelSpec("detector", "/m/detector", VersionPolicy("latest", 2)),
    ]
    broken = tmp_path / "broken.config"
    broken.write_text("model_config_list { config { name: ")
    with pytest.raises(server.FlagError, match="broken.config"):
        server.read_model_config(str(broken))
