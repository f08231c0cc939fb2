"""fashion serve: tensorflow_model_server flags and model config files."""

import pytest

from serving import server
from serving.batching import BatchingOptions
from serving.config_files import ConfigError
from serving.model_manager import VersionPolicy


def test_flags_use_tensorflow_model_server_syntax():
    flags = server.parse_flags(["--model_name=category", "--model_base_path", "/models/c",
                                "--rest_api_port=9001", "--file_system_poll_wait_seconds=5"])
    assert (flags["model_name"], flags["model_base_path"], flags["rest_api_port"],
            flags["file_system_poll_wait_seconds"]) == ("category", "/models/c", 9001, 5)
    assert server.model_specs(flags) == [server.ModelSpec("category", "/models/c")]


@pytest.mark.parametrize("argv,fragment", [
    (["--bogus=1"], "unknown flag --bogus"),
    (["--prefer_tflite_model=perhaps"], "is not a bool"),     # ignored flags are typed too
    (["--enable_batching=maybe"], "is not a bool"),
    (["--port=grpc"], "is not a int"),
    (["--rest_api_port=http"], "is not a int"),
    (["--model_name"], "needs a value"),
    (["model"], "unexpected argument"),
])
def test_bad_flags_fail_clearly(argv, fragment):
    with pytest.raises(server.FlagError, match=fragment):
        server.parse_flags(argv)


def test_every_tensorflow_model_server_flag_is_accepted():
    """Flags with no meaning here are accepted (a manifest starts this server unchanged) and
    listed for the start-up warning; the ones implemented here take effect."""
    flags = server.parse_flags([
        "--prefer_tflite_model=true", "--enable_profiler=false", "--num_load_threads=4",
        "--per_process_gpu_memory_fraction=0.5", "--xla_cpu_compilation_enabled",
        "--saved_model_tags=serve,gpu", "--enable_signature_method_name_check=true",
        "--num_request_iterations_for_warmup=3", "--rest_api_enable_cors_support=true",
        "--enable_serialization_as_tensor_content=true", "--enable_grpc_healthcheck_service",
        "--model_base_path=/models/m"])
    assert flags["ignored"] == ["prefer_tflite_model", "enable_profiler", "num_load_threads",
                                "per_process_gpu_memory_fraction",
                                "xla_cpu_compilation_enabled"]
    options = server.options_from_flags(flags)
    assert options.saved_model_tags == ("serve", "gpu")
    assert (options.method_name_check, options.warmup_iterations, options.cors,
            options.tensor_content) == (True, 3, True, True)
    defaults = server.options_from_flags(server.parse_flags(["--model_base_path=/m"]))
    assert (defaults.method_name_check, defaults.saved_model_tags, defaults.tensor_content) == \
        (False, ("serve",), False)


def test_version_flag_prints_and_exits(capsys):
    assert server.main(["--version"]) == 0
    assert "TensorFlow ModelServer" in capsys.readouterr().out


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
    assert server.parse_flags(["--enable_batching", "--port=1"])["enable_batching"] is True
    broken = tmp_path / "broken.config"
    broken.write_text("model_config_list { config { name: ")
    with pytest.raises(ConfigError, match="broken.config"):
        server.read_model_config(str(broken))


def _options(tmp_path, *flags):
    return server.options_from_flags(server.parse_flags(
        ["--model_base_path=/m", *flags]))


def test_tf_serving_config_files_are_read(tmp_path):
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 16 }\nbatch_timeout_micros { value: 5000 }\n"
                        "max_enqueued_batches { value: 4 }\nnum_batch_threads { value: 2 }\n"
                        "allowed_batch_sizes: 8\nallowed_batch_sizes: 16\n")
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/metrics" }')
    options = _options(tmp_path, "--enable_batching=true",
                       f"--batching_parameters_file={batching}",
                       f"--monitoring_config_file={monitoring}",
                       "--grpc_channel_arguments=grpc.max_send_message_length=1000,"
                       "grpc.primary_user_agent=x", "--rest_api_timeout_in_ms=2500")
    assert options.batching == BatchingOptions(16, 5000, 4, 2, (8, 16))
    assert options.metrics_path == "/metrics"
    assert options.rest_timeout_seconds == 2.5
    assert ("grpc.max_send_message_length", 1000) in options.grpc_arguments
    assert ("grpc.max_receive_message_length", 64 * 1024 * 1024) in options.grpc_arguments
    assert _options(tmp_path, "--enable_batching").batching == BatchingOptions()
    assert _options(tmp_path).batching is None


@pytest.mark.parametrize("content,flag,fragment", [
    ("max_batch_size { value: 0 }", "batching", "max_batch_size must be >= 1"),
    ("max_batch_size: 8", "batching", "batching.txt"),
    ("bogus_field: 1", "batching", "bogus_field"),
    ('prometheus_config { enable: true path: "metrics" }', "monitoring", "must start with"),
    ('server_key: "k"', "ssl", "server_cert"),
    ("", "token", "is empty"),
])
def test_bad_config_files_fail_clearly(tmp_path, content, flag, fragment):
    path = tmp_path / "batching.txt"
    path.write_text(content)
    flags = {"batching": ["--enable_batching", f"--batching_parameters_file={path}"],
             "monitoring": [f"--monitoring_config_file={path}"],
             "ssl": [f"--ssl_config_file={path}"],
             "token": [f"--auth_token_file={path}"]}[flag]
    with pytest.raises(server.FlagError, match=fragment):
        _options(tmp_path, *flags)
    with pytest.raises(server.FlagError, match="needs --enable_batching"):
        _options(tmp_path, f"--batching_parameters_file={path}")
