"""``fashion``: the project's command line (generate, convert, run, compile, serve, predict,
evaluate, weights).

Heavy libraries (TensorFlow, TFX) are imported inside the subcommands that need them, so
``fashion --help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

from schemas.serving_api import SERVING_IMAGES


def _progress(label: str, total=None, every: float = 2.0):
    """A progress callback printing ``label: n[/total] (rate/s)`` to stderr every few seconds."""
    start = last = None

    def report(n: int):
        nonlocal start, last
        now = time.monotonic()
        if start is None:
            start = last = now
        elif now - last >= every:
            last = now
            rate = n / (now - start) if now > start else 0.0
            of = f"/{total}" if total else ""
            print(f"{label}: {n}{of} ({rate:.1f}/s)", file=sys.stderr, flush=True)
    return report


@contextlib.contextmanager
def _stdout_to_stderr():
    """Sends everything written to stdout (by libraries, C code included) to stderr.

    Keeps stdout clean for the one summary the command prints (``--json`` output is parseable).
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _render(args, summary: dict, text: str) -> str:
    """The command's final output: JSON with ``--json``, else human-readable text."""
    return json.dumps(summary, indent=2, sort_keys=True, default=str) if args.json else text


def _conversion_text(summary: dict) -> str:
    lines = [f"span {summary['span']} written to {summary['span_dir']}",
             f"  records: {summary['written']}  (with boxes: {summary['with_boxes']})",
             f"  rejected: {summary['rejected']} {summary['reject_reasons'] or ''}".rstrip(),
             f"  {summary['inputs']} inputs in {summary['seconds']:.1f} s "
             f"({summary['images_per_second']:.1f} images/s)",
             f"  rejects report: {os.path.join(summary['span_dir'], 'rejects.csv')}"]
    return "\n".join(lines)


def cmd_generate(args) -> int:
    from components.catalog_import.spans import SpanWriter
    from components.synthetic_catalog import generator
    report = _progress("generate", args.num_images)
    try:
        writer = SpanWriter(args.output, span=args.span, num_shards=args.shards,
                            eval_fraction=args.eval_fraction)
    except (FileExistsError, ValueError) as err:
        print(f"fashion generate: error: {err}; nothing was written", file=sys.stderr)
        return 2, None
    with writer:
        for n, record in enumerate(generator.generate(args.seed, args.num_images,
                                                      args.image_size,
                                                      workers=os.cpu_count() or 1)):
            writer.add(record)
            report(n + 1)
    summary = writer.summary.to_json()
    return 0, _render(args, summary, _conversion_text(summary))


def cmd_convert(args) -> int:
    from components.catalog_import import ccp, csv_catalog, odapi
    from components.catalog_import.spans import SpanWriter
    report = _progress(f"convert {args.kind}")
    try:
        with SpanWriter(args.output, span=args.span, num_shards=args.shards,
                        eval_fraction=args.eval_fraction) as writer:
            if args.kind == "ccp":
                extra = {"ccp": ccp.convert(args.source, writer, report, args.limit)}
            elif args.kind == "csv":
                extra = {"csv_rows_written": csv_catalog.convert(args.source, writer, report,
                                                                  args.limit,
                                                                  args.allow_outside,
                                                                  args.read_timeout)}
            else:
                extra = {"records_imported": odapi.convert(args.source, writer, report,
                                                           args.limit)}
    except FileExistsError as err:  # --span N of a span already written
        print(f"fashion convert: error: {err}; nothing was written (omit --span to add the "
              "next span)", file=sys.stderr)
        return 2, None
    except (FileNotFoundError, csv_catalog.CatalogFormatError, ValueError) as err:
        print(f"fashion convert: error: {err}", file=sys.stderr)
        return 2, None
    summary = {**writer.summary.to_json(), **extra}
    return 0, _render(args, summary, _conversion_text(summary))


def _load_config(args):
    import pipeline_config
    config = pipeline_config.get_config(args.profile, workspace=args.workspace)
    for assignment in args.set or ():
        key, sep, value = assignment.partition("=")
        if not sep:
            raise pipeline_config.ConfigError(f"--set expects key=value, got {assignment!r}")
        config = pipeline_config.replace_nested(config, key.strip(), value.strip())
    return config


def _run_pipeline(config, command: str):
    """Runs the pipeline; ``(exit status, summary or None)``. A gate that stops the run (schema
    anomalies, catalog drift) is exit status 3 with its reasons, not a traceback."""
    from components.anomaly_gate.logic import AnomaliesFound
    from components.catalog_drift.logic import DriftFound
    from pipeline import runner
    from pipeline.console import RunConsole
    from trainer.weights import WeightsUnavailableError
    folder = (os.path.join(config.workspace_dir, "logs") if "://" not in config.workspace_dir
              else "logs")
    log_path = os.path.join(folder, f"{command}-{time.strftime('%Y%m%d-%H%M%S')}.log")
    print(f"fashion {command}: profile {config.profile}, workspace {config.workspace_dir}; "
          f"the full log is {log_path}", file=sys.stderr, flush=True)
    try:
        with RunConsole(log_path) as console:
            summary = runner.run(config, log=console.say)
    except (WeightsUnavailableError, FileNotFoundError) as err:
        print(f"fashion {command}: error: {err}", file=sys.stderr)
        return 2, None
    except (AnomaliesFound, DriftFound) as err:
        print(f"fashion {command}: the run stopped: {err}\n(full log: {log_path})",
              file=sys.stderr)
        return 3, None
    except BaseException:
        print(f"fashion {command}: the run failed; the full log is {log_path}", file=sys.stderr)
        raise
    print(f"slowest components:\n{console.table(top=8)}", file=sys.stderr)
    return 0, {**summary, "component_seconds": console.component_seconds, "log": log_path}


def cmd_run(args) -> int:
    import pipeline_config
    try:
        config = _load_config(args)
    except pipeline_config.ConfigError as err:
        print(f"fashion run: error: {err}", file=sys.stderr)
        return 2, None
    status, summary = _run_pipeline(config, "run")
    if summary is None:
        return status, None
    return 0, _render(args, summary, _run_text(summary))


def cmd_drop(args) -> int:
    """Converts a catalog drop into the workspace catalog's next span, then runs the pipeline
    on it (drift checks first: a drop that drifted stops the run with a report)."""
    import pipeline_config
    from components.catalog_import import ccp, csv_catalog, odapi
    from components.catalog_import.spans import SpanWriter
    try:
        config = _load_config(args)
    except pipeline_config.ConfigError as err:
        print(f"fashion drop: error: {err}", file=sys.stderr)
        return 2, None
    kind = args.kind if args.kind != "auto" else _drop_kind(args.source)
    if kind is None:
        print(f"fashion drop: error: cannot tell what {args.source} is: give a CCP-style folder "
              "(photos/), a CSV file or a TFRecord glob, or --kind", file=sys.stderr)
        return 2, None
    report = _progress(f"drop {kind}")
    try:
        with SpanWriter(config.catalog_root, num_shards=config.data.num_shards,
                        eval_fraction=config.data.eval_fraction) as writer:
            if kind == "ccp":
                ccp.convert(args.source, writer, report, args.limit)
            elif kind == "csv":
                csv_catalog.convert(args.source, writer, report, args.limit, args.allow_outside,
                                    args.read_timeout)
            else:
                odapi.convert(args.source, writer, report, args.limit)
    except (FileNotFoundError, csv_catalog.CatalogFormatError, ValueError) as err:
        print(f"fashion drop: error: {err}", file=sys.stderr)
        return 2, None
    conversion = writer.summary.to_json()
    print(_conversion_text(conversion), file=sys.stderr)
    if not sum(conversion["written"].values()):
        print("fashion drop: error: nothing in the drop could be converted; the pipeline does "
              "not run", file=sys.stderr)
        return 2, None
    status, summary = _run_pipeline(config, "drop")
    if summary is None:
        return status, None
    summary = {**summary, "drop": conversion}
    return 0, _render(args, summary, _run_text(summary))


def cmd_runs(args) -> int:
    """Past runs of a workspace from ML Metadata, or one run's lineage (``--show``)."""
    import datetime

    from pipeline import runs
    metadata = os.path.join(os.path.abspath(args.workspace), "metadata.sqlite")
    try:
        if args.show:
            steps = runs.lineage(metadata, args.show)
            lines = [f"run {args.show}: {len(steps)} executions"]
            for step in steps:
                lines.append(f"  {step['node']:<32} {step['state']:<9} {step['seconds']:7.1f} s")
                for side, arrow in (("inputs", "<-"), ("outputs", "->")):
                    for key, artifacts in step[side].items():
                        for kind, uri, span in artifacts:
                            extra = f" span {span}" if span else ""
                            lines.append(f"      {arrow} {key}: {kind}{extra} {uri}")
            return 0, _render(args, {"run": args.show, "executions": steps}, "\n".join(lines))
        found = runs.list_runs(metadata, args.limit, metrics=not args.no_metrics)
    except (FileNotFoundError, KeyError) as err:
        print(f"fashion runs: error: {err}", file=sys.stderr)
        return 2, None

    def when(ms):
        return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
    lines = []
    for run in found:
        verdict = f"FAILED at {', '.join(run['failed'])}" if run["failed"] else "complete"
        window = (f" (trained on spans {run['spans_read']})"
                  if run.get("spans_read", run["spans"]) != run["spans"] else "")
        lines.append(f"{run['id']}  spans {run['spans'] or '?'}{window}  "
                     f"{when(run['start_ms'])} → "
                     f"{when(run['end_ms'])} ({run['seconds']} s)  {verdict}")
        slowest = sorted(run["component_seconds"].items(), key=lambda item: -item[1])[:3]
        lines.append("  slowest: " + ", ".join(f"{n} {s} s" for n, s in slowest))
        for family, result in run["families"].items():
            metrics = ", ".join(f"{k} {v:.3g}" for k, v in result.get("metrics", {}).items()
                                if isinstance(v, (int, float)))
            blessed = {True: "blessed", False: "NOT blessed", None: "not evaluated"}[
                result["blessed"]]
            pushed = f"pushed {result['pushed_version']}" if result["pushed_version"] else \
                "not pushed"
            lines.append(f"  {family}: {metrics or 'no metrics'}; {blessed}; {pushed}")
    return 0, _render(args, {"runs": found}, "\n".join(lines) or "no runs yet")


def _drop_kind(source: str):
    if os.path.isdir(os.path.join(source, "photos")):
        return "ccp"
    if source.lower().endswith(".csv"):
        return "csv"
    if "tfrecord" in source.lower() or "*" in source:
        return "odapi"
    return None


def _run_text(summary: dict) -> str:
    """What ``fashion run`` and ``fashion drop`` print when the pipeline finished."""
    from trainer.families import registry
    lines = [f"pipeline finished in {summary['seconds']} s (log: {summary.get('log')})",
             f"  ML Metadata: {summary['metadata']}"]
    for family, evaluation in summary["evaluation"].items():
        evaluation = evaluation or {}
        overall = evaluation.get("slices", {}).get("overall", {})
        headline = {k: overall[k] for k in registry.get(family).headline_metrics if k in overall}
        lines += [f"  {family}: eval {headline or 'n/a'} "
                  f"({'blessed' if evaluation.get('blessed') else 'NOT blessed'})",
                  f"    infra validation: {_infra_text(summary['infra_validation'][family])}",
                  f"    pushed: {summary['pushed_models'][family] or 'none'}"]
    for name, path in summary.get("reports", {}).items():
        if path:
            lines.append(f"  report {name}: {path}")
    if summary.get("models_config"):
        lines.append(f"  serve them all: fashion serve --model_config_file="
                     f"{summary['models_config']}")
    return "\n".join(lines)


def _infra_text(report) -> str:
    if not report:
        return "did not run"
    verdict = "passed" if report["blessed"] else "FAILED"
    return f"{verdict} in {report['seconds']} s ({report['reason'].splitlines()[0]})"


def cmd_compile(args):
    import pipeline_config
    try:
        config = _load_config(args)
    except pipeline_config.ConfigError as err:
        print(f"fashion compile: error: {err}", file=sys.stderr)
        return 2, None
    from pipeline import kubeflow
    path = kubeflow.compile_pipeline(config, args.image, args.output)
    summary = {"pipeline_spec": path, "image": args.image, "profile": config.profile,
               "pipeline_root": config.pipeline_root}
    return 0, _render(args, summary, f"Kubeflow pipeline spec written to {path}")


def cmd_serve(args):
    from serving import server
    if any(a in ("-h", "--help", "--helpfull") for a in args.flags):
        return 0, server.help_text()
    return server.main(args.flags), None


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def _image_paths(arguments) -> list:
    """Image files given, with each folder given replaced by the image files in it."""
    paths = []
    for argument in arguments:
        if os.path.isdir(argument):
            paths += sorted(os.path.join(argument, name) for name in os.listdir(argument)
                            if name.lower().endswith(IMAGE_SUFFIXES))
        else:
            paths.append(argument)
    return paths


def cmd_predict(args):
    from serving.client import ServingClient, ServingClientError
    if args.batch_size < 1:
        print("fashion predict: error: --batch-size must be at least 1", file=sys.stderr)
        return 2, None
    args.images = _image_paths(args.images)
    images, names = [], list(args.images)
    if args.records:
        from trainer.export.records import read_record_images
        try:
            found = read_record_images(args.records, args.limit)
        except (FileNotFoundError, ValueError) as err:
            print(f"fashion predict: error: {err}", file=sys.stderr)
            return 2, None
        names = [name for name, _ in found] + names
        images = [image for _, image in found]
    if not names:
        print("fashion predict: error: give image files or --records", file=sys.stderr)
        return 2, None
    for path in args.images:
        try:
            with open(path, "rb") as handle:
                images.append(handle.read())
        except OSError as err:
            print(f"fashion predict: error: cannot read {path}: {err.strerror}", file=sys.stderr)
            return 2, None
    token = ca = None
    try:
        if args.token_file:
            with open(args.token_file) as handle:
                token = handle.read().strip()
        if args.ca_file:
            with open(args.ca_file, "rb") as handle:
                ca = handle.read()
    except OSError as err:
        print(f"fashion predict: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2, None
    protocol = "rest" if args.rest else "grpc"
    try:
        with ServingClient(args.server, protocol, token, ca, args.timeout) as client:
            if args.wait:
                client.wait_until_available(args.model, args.wait)
            signature, detector_input = _predict_signature(client, args)
            answers, progress = [], _progress("predict", len(images))
            for start in range(0, len(images), args.batch_size):
                batch = images[start:start + args.batch_size]
                if detector_input:
                    answers += client.detect_images(args.model, batch, signature,
                                                    detector_input, args.min_score,
                                                    args.version, args.label)
                else:
                    answers += client.predict_images(args.model, batch, args.top_k, signature,
                                                     args.version, args.label)
                progress(len(answers))
    except (ServingClientError, TimeoutError, OSError) as err:
        print(f"fashion predict: error: {err}", file=sys.stderr)
        return 1, None
    for path, answer in zip(names, answers):
        answer["image"] = path
    if detector_input:
        text = "\n".join(f"{a['image']}: {len(a['detections'])} detections" + "".join(
            f"; {key} {value}" for key, value in a.items() if key not in ("image", "detections"))
            + "".join(
            f"\n  {d['class']} {d['score']:.3f} box [ymin, xmin, ymax, xmax] "
            f"{', '.join(f'{v:.3f}' for v in d['box'])}" + "".join(
                f"; {key} {value}" for key, value in d.items()
                if key not in ("class", "class_id", "score", "box"))
            for d in a["detections"]) for a in answers)
    else:
        text = "\n".join(f"{a['image']}: {a['top_class']} ({a['top_score']:.3f}); top "
                         f"{len(a['top_k'])}: " + ", ".join(f"{c} {p:.3f}"
                                                            for c, p in a["top_k"])
                         for a in answers)
    if args.draw:
        drawn = _draw_answers(args.draw, images, answers)
        text += f"\ndrew {len(drawn)} images: {args.draw}"
    if args.output:
        written = _write_answers(args.output, answers, {"model": args.model,
                                                        "server": args.server})
        text += f"\nwrote {written} answers and summary.json into {args.output}"
    return 0, _render(args, {"model": args.model, "server": args.server,
                             "protocol": protocol, "predictions": answers}, text)


def cmd_search(args):
    """The catalog items nearest to a text or an image: through a server's ``:search`` REST
    extension, or (``--local``) straight from a pushed model folder and its catalog index."""
    if (args.text is None) == (args.image is None):
        print("fashion search: error: give exactly one of --text or --image", file=sys.stderr)
        return 2, None
    image = None
    if args.image is not None:
        try:
            with open(args.image, "rb") as handle:
                image = handle.read()
        except OSError as err:
            print(f"fashion search: error: cannot read {args.image}: {err.strerror}",
                  file=sys.stderr)
            return 2, None
    try:
        if args.local:
            answer = _search_locally(args.local, args.text, image, args.k, args.version)
        else:
            from serving.client import ServingClient
            token = None
            if args.token_file:
                with open(args.token_file) as handle:
                    token = handle.read().strip()
            with ServingClient(args.server, "rest", token, timeout=args.timeout) as client:
                if args.wait:
                    client.wait_until_available(args.model, args.wait)
                answer = client.search(args.model, args.text, image, args.k, args.version,
                                       args.label)
    except (OSError, ValueError, LookupError, RuntimeError, TimeoutError) as err:
        print(f"fashion search: error: {err}", file=sys.stderr)
        return 1, None
    results = answer["results"]
    query = f"text {args.text!r}" if args.text is not None else f"image {args.image}"
    text = f"{len(results)} catalog items nearest to {query} " \
           f"({answer['model_spec']['name']} v{answer['model_spec']['version']}):\n" + \
        "\n".join(f"{rank:3d}. {r['score']:.3f}  {r['id']}  {r.get('uri', '')}"
                  + (f"  “{r['caption']}”" if r.get("caption") else "")
                  for rank, r in enumerate(results, 1))
    if args.draw:
        from trainer.evaluation.plots import contact_sheet
        from trainer.export.records import read_images_at
        images = read_images_at([r.get("uri", "") for r in results])
        shown = [(i, r) for i, r in zip(images, results) if i is not None]
        sheet = contact_sheet([i for i, _ in shown], [f"{r['score']:.2f} {r['id']}"
                                                      for _, r in shown], title=query)
        os.makedirs(os.path.dirname(os.path.abspath(args.draw)), exist_ok=True)
        sheet.save(args.draw)
        text += f"\ndrew {len(shown)} of {len(results)} items: {args.draw}"
    return 0, _render(args, dict(answer, query={"text": args.text, "image": args.image}),
                      text)


def _search_locally(model_dir: str, text, image, k: int, version) -> dict:
    """``fashion search --local``: embeds the query with the pushed model and searches the
    catalog index in its version folder."""
    import tensorflow as tf

    from schemas import catalog_index
    from schemas.serving_api import (EMBEDDING_OUTPUT, latest_version, list_versions,
                                     register_text_ops)
    export_dir = (list_versions(model_dir).get(version) if version is not None
                  else latest_version(model_dir))
    if export_dir is None:
        raise LookupError(f"{model_dir} has no version {version}")
    register_text_ops()
    index = catalog_index.CatalogIndex(catalog_index.index_dir(export_dir))
    signature, input_name, value = catalog_index.query_signature(text, image)
    embedding = tf.saved_model.load(export_dir).signatures[signature](
        **{input_name: tf.constant([value])})
    return {"model_spec": {"name": os.path.basename(os.path.normpath(model_dir)),
                           "version": os.path.basename(export_dir)},
            "results": index.search(embedding[EMBEDDING_OUTPUT].numpy(), k)[0]}

def _predict_signature(client, args) -> tuple:
    """``(signature, detector input name or None)``: ``--signature``, or the classifiers'
    ``serving_images`` when the model has it, else ``serving_default``; a signature answering
    the OD API's detection outputs is called as a detector."""
    from schemas.serving_api import DETECTION_OUTPUTS, SERVING_DEFAULT
    served = client.signatures(args.model, args.version, args.label)
    signature = args.signature or (SERVING_IMAGES if SERVING_IMAGES in served
                                   else SERVING_DEFAULT)
    if signature not in served:
        from serving.client import ServingClientError
        raise ServingClientError("NOT_FOUND", f"model {args.model} has no signature "
                                              f"{signature!r}; it has {sorted(served)}")
    found = served[signature]
    if set(DETECTION_OUTPUTS) <= set(found["outputs"]) and len(found["inputs"]) == 1:
        return signature, found["inputs"][0]
    return signature, None


def _write_answers(folder: str, answers: list, about: dict) -> int:
    """One ``<image>.json`` per answer and a ``summary.json`` in ``folder``; the count."""
    os.makedirs(folder, exist_ok=True)
    files = []
    for index, answer in enumerate(answers):
        stem = os.path.splitext(os.path.basename(str(answer["image"])))[0] or str(index)
        name = f"{index:04d}_{stem}.json"
        with open(os.path.join(folder, name), "w") as handle:
            json.dump(answer, handle, indent=2)
        files.append(name)
    detections = [len(a["detections"]) for a in answers if "detections" in a]
    with open(os.path.join(folder, "summary.json"), "w") as handle:
        json.dump({**about, "images": len(answers), "answers": files,
                   "detections": sum(detections) if detections else None}, handle, indent=2)
    return len(answers)


def _draw_answers(target: str, images: list, answers: list) -> list:
    """Draws each image with its detections (or its top class): into ``target`` itself when it
    names one image file and one image was asked about, else into the folder ``target``; the
    paths."""
    from trainer.evaluation.plots import draw_boxes
    single = len(images) == 1 and target.lower().endswith(IMAGE_SUFFIXES)
    folder = os.path.dirname(target) if single else target
    os.makedirs(folder or ".", exist_ok=True)
    paths = []
    for index, (image, answer) in enumerate(zip(images, answers)):
        found = answer.get("detections", [])
        drawn = draw_boxes(image, [d["box"] for d in found], [d["class"] for d in found],
                           [d["score"] for d in found], width=384,
                           details=[" ".join(str(v) for k, v in d.items() if k not in (
                               "class", "class_id", "score", "box") and v not in ("", []))
                               for d in found])
        if "top_class" in answer:
            from PIL import ImageDraw
            ImageDraw.Draw(drawn).text((4, 4), f"{answer['top_class']} "
                                               f"{answer['top_score']:.2f}", fill=(255, 0, 255))
        stem = os.path.splitext(os.path.basename(str(answer["image"])))[0] or str(index)
        path = target if single else os.path.join(folder, f"{index:03d}_{stem}.png")
        drawn.save(path)
        paths.append(path)
    return paths


def cmd_evaluate(args) -> int:
    from trainer.families import registry
    from trainer.families.spec import resolve
    import inspect
    spec = registry.get(args.family)
    evaluate = resolve(spec.offline_evaluator)
    options = {}
    if args.attribute_families:
        if "attribute_families" not in inspect.signature(evaluate).parameters:
            print(f"fashion evaluate: error: --attribute-families does not apply to "
                  f"{args.family}", file=sys.stderr)
            return 2, None
        options["attribute_families"] = tuple(filter(None, args.attribute_families.split(",")))
    try:
        result = evaluate(args.model, args.data, args.batch_size,
                          progress=_progress("evaluate"), **options)
    except (FileNotFoundError, ValueError) as err:
        print(f"fashion evaluate: error: {err}", file=sys.stderr)
        return 2, None
    result["family"] = args.family
    scalars = {k: v for k, v in result.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    text = [f"{args.family} model {result['model']} on {result['examples']} examples:"]
    quality, baseline = spec.quality_metric, spec.baseline_metric
    if quality in result and baseline in result:
        text.append(f"  {quality} {result[quality]:.4f}  (a model ignoring the image: "
                    f"{baseline} {result[baseline]:.4f})")
    text += [f"  {name} {value:.4f}" if isinstance(value, float) else f"  {name} {value}"
             for name, value in scalars.items() if name not in ("examples", quality, baseline)]
    return 0, _render(args, result, "\n".join(text))


def cmd_weights(args) -> int:
    from trainer import weights
    if args.action == "list":
        rows = weights.preset_rows()
        text = []
        for row in rows:
            text += [f"{row['name']}  (builder {row['builder']}, license {row['license']})",
                     f"  package:    {row['package']}", f"  provenance: {row['provenance']}"]
            text += [f"  note:       {row['note']}"] if row["note"] else []
        text.append("use with --set <family>.weights=<name>; 'none' trains from scratch")
        return 0, _render(args, {"presets": rows}, "\n".join(text))
    if not args.output:
        print("fashion weights convert: error: --output FILE.weights.h5 is required",
              file=sys.stderr)
        return 2, None
    from trainer.backbones import efficientnet_lite
    try:
        preset = weights.resolve_weights(args.preset, "efficientnet-lite0")
        path = efficientnet_lite.convert_torch_checkpoint(preset.path(), args.output)
    except (weights.WeightsUnavailableError, ValueError) as err:
        print(f"fashion weights convert: error: {err}", file=sys.stderr)
        return 2, None
    return 0, _render(args, {"preset": args.preset, "output": path},
                      f"wrote the Keras weights of {args.preset} (full model, ImageNet top) to "
                      f"{path}")


def _family_names() -> tuple:
    from trainer.families import registry
    return registry.family_names()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fashion", description="Fashion imagery → TFX pipeline → served models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def span_options(p):
        p.add_argument("--output", required=True, help="catalog root; a new span-N/ is added")
        p.add_argument("--span", type=int, default=None, help="span number (default: next)")
        p.add_argument("--shards", type=int, default=4, help="TFRecord shards per split")
        p.add_argument("--eval-fraction", type=float, default=0.2,
                       help="fraction of records in the eval split (hash of the source id)")
        p.add_argument("--json", action="store_true", help="print a JSON summary")

    g = sub.add_parser("generate", help="write the synthetic catalog as a new span")
    span_options(g)
    g.add_argument("--num-images", type=int, default=1500)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--image-size", type=int, default=256)
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("convert", help="convert a catalog (CCP, CSV, OD-API TFRecords) to a span")
    c.add_argument("kind", choices=("ccp", "csv", "odapi"))
    c.add_argument("--source", required=True,
                   help="ccp: data set folder; csv: the CSV file; odapi: a TFRecord glob")
    c.add_argument("--limit", type=int, default=None, help="convert at most this many inputs")
    c.add_argument("--allow-outside", action="store_true",
                   help="csv: read image paths outside the CSV's folder (../, absolute)")
    c.add_argument("--read-timeout", type=float, default=60.0,
                   help="csv: seconds to open and read one image before its row is rejected "
                        "as read_timeout (hung network file systems)")
    span_options(c)
    c.set_defaults(func=cmd_convert)

    r = sub.add_parser("run", help="run the whole pipeline locally (generates data if none)")
    r.add_argument("--profile", default="default", help="smoke, default or full")
    r.add_argument("--workspace", default="workspace", help="folder for all outputs")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field, e.g. --set category.epochs=3 (repeatable)")
    r.add_argument("--json", action="store_true", help="print a JSON summary")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("drop", help="convert a new catalog drop into the next span and run the "
                                    "pipeline on it (drift-checked against the last spans)")
    d.add_argument("source", help="a CCP-style folder (photos/), a CSV file (image_path, brand, "
                                  "...) or a TFRecord glob (OD-API records)")
    d.add_argument("--kind", choices=("auto", "ccp", "csv", "odapi"), default="auto")
    d.add_argument("--profile", default="default", help="smoke, default, full or ccp")
    d.add_argument("--workspace", default="workspace", help="the workspace of earlier runs")
    d.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    d.add_argument("--limit", type=int, default=None, help="convert at most this many inputs")
    d.add_argument("--allow-outside", action="store_true",
                   help="csv: read image paths outside the CSV's folder")
    d.add_argument("--read-timeout", type=float, default=60.0,
                   help="csv: seconds to read one image before its row is rejected")
    d.add_argument("--json", action="store_true", help="print a JSON summary")
    d.set_defaults(func=cmd_drop)

    u = sub.add_parser("runs", help="past pipeline runs of a workspace (ML Metadata): spans, "
                                    "times, seconds per component, metrics, blessing, pushes")
    u.add_argument("--workspace", default="workspace")
    u.add_argument("--show", metavar="RUN_ID", help="one run's lineage: every execution with "
                                                   "its input and output artifacts")
    u.add_argument("--limit", type=int, default=10, help="newest runs to list")
    u.add_argument("--no-metrics", action="store_true",
                   help="skip reading each run's evaluation (faster)")
    u.add_argument("--json", action="store_true")
    u.set_defaults(func=cmd_runs)

    k = sub.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines (KFP v2 JSON)")
    k.add_argument("--profile", default="full", help="smoke, default or full")
    k.add_argument("--workspace", required=True,
                   help="workspace reachable from the cluster, e.g. gs://bucket/fashion")
    k.add_argument("--image", required=True, help="container image with this project installed")
    k.add_argument("--output", default="fashion_pipeline.json", help="pipeline spec path")
    k.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    k.add_argument("--json", action="store_true", help="print a JSON summary")
    k.set_defaults(func=cmd_compile)

    s = sub.add_parser("serve", add_help=False,
                       help="serve pushed models with TF Serving's API (tensorflow_model_server "
                            "flags)")
    s.add_argument("flags", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_serve)

    p = sub.add_parser("predict", help="send image files to a served model and print its "
                                       "ranked classes or detections (gRPC or REST)")
    p.add_argument("images", nargs="*",
                   help="encoded image files (JPEG/PNG/GIF/BMP), or folders of them")
    p.add_argument("--records", default=None,
                   help="also send the images of catalog TFRecords matching this glob")
    p.add_argument("--limit", type=int, default=1, help="images to take from --records")
    p.add_argument("--server", default="127.0.0.1:8500",
                   help="host:port of the gRPC API (or of the REST API with --rest)")
    p.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    p.add_argument("--model", default="category", help="served model name")
    p.add_argument("--version", type=int, default=None, help="model version (default: latest)")
    p.add_argument("--label", default=None, help="model version label, e.g. stable")
    p.add_argument("--signature", default=None,
                   help="signature taking the bytes (default: serving_images when the model has "
                        "it, else serving_default); a detector's is recognised by its outputs")
    p.add_argument("--min-score", type=float, default=0.3,
                   help="detectors: list detections scoring at least this")
    p.add_argument("--draw", default=None, metavar="PATH",
                   help="also draw each image with its answer (boxes in the study's colours): "
                        "into PATH.png for one image, else into the folder PATH")
    p.add_argument("--output", default=None, metavar="DIR",
                   help="also write one JSON answer per image and a summary.json into DIR")
    p.add_argument("--batch-size", type=int, default=8, help="images per request")
    p.add_argument("--top-k", type=int, default=5, help="classes to list per image")
    p.add_argument("--wait", type=float, default=0.0,
                   help="wait up to this many seconds for the model to become AVAILABLE")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    p.add_argument("--token-file", default=None, help="file with the server's bearer token")
    p.add_argument("--ca-file", default=None, help="PEM root certificate: use TLS")
    p.add_argument("--json", action="store_true", help="print the answers as JSON")
    p.set_defaults(func=cmd_predict)

    q = sub.add_parser("search", help="the catalog items nearest to a text or an image (an "
                                      "embedding model's catalog index)")
    q.add_argument("--text", default=None, help="a text query, e.g. 'red striped dress'")
    q.add_argument("--image", default=None, help="an image file as the query")
    q.add_argument("-k", "--k", type=int, default=10, help="items to return")
    q.add_argument("--server", default="127.0.0.1:8501", help="host:port of the REST API")
    q.add_argument("--model", default="dual_encoder", help="served embedding model name")
    q.add_argument("--version", type=int, default=None, help="model version (default: latest)")
    q.add_argument("--label", default=None, help="model version label")
    q.add_argument("--local", default=None, metavar="DIR",
                   help="search without a server: the pushed model folder (or version) DIR")
    q.add_argument("--draw", default=None, metavar="PNG",
                   help="also write a contact sheet of the items found")
    q.add_argument("--wait", type=float, default=0.0,
                   help="wait up to this many seconds for the model to become AVAILABLE")
    q.add_argument("--timeout", type=float, default=30.0, help="request timeout (s)")
    q.add_argument("--token-file", default=None, help="file with the server's bearer token")
    q.add_argument("--json", action="store_true", help="print the answer as JSON")
    q.set_defaults(func=cmd_search)

    e = sub.add_parser("evaluate", help="compute a family's metrics for a pushed model")
    families = _family_names()
    e.add_argument("--family", default=families[0], choices=families,
                   help="a registered model family")
    e.add_argument("--model", required=True, help="a SavedModel or a folder of versions")
    e.add_argument("--data", required=True, help="TFRecord glob of contract records")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--attribute-families", default=None,
                   help="attributes only: score just these attribute families, e.g. 'item' "
                        "(attribute families a record does not annotate are masked anyway)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=cmd_evaluate)

    w = sub.add_parser("weights", help="list the pretrained weight presets shipped in packages, "
                                       "or convert one to a Keras .weights.h5")
    w.add_argument("action", choices=("list", "convert"))
    w.add_argument("preset", nargs="?", default="efficientnet-lite0-imagenet",
                   help="convert: the preset to convert (a PyTorch checkpoint)")
    w.add_argument("--output", default=None, help="convert: the .weights.h5 file to write")
    w.add_argument("--json", action="store_true", help="print JSON")
    w.set_defaults(func=cmd_weights)
    return parser


def quiet_known_warnings() -> None:
    """Google's client libraries warn on every import that Python 3.10 is no longer supported
    by them (and that google-cloud-storage is old); TFX 1.16 needs 3.9-3.10 and pins them, so
    the warnings ask for something nobody can do here."""
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning,
                            module=r"google\.api_core\._python_version_support")
    warnings.filterwarnings("ignore", message=r"Support for google-cloud-storage < 3\.0\.0",
                            category=FutureWarning)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_known_warnings()
    if argv[:1] == ["serve"]:
        # tensorflow_model_server's flag syntax (--name=value), parsed by serving.server.
        args = argparse.Namespace(func=cmd_serve, flags=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    with _stdout_to_stderr():
        # Summaries are printed after the work, through the restored stdout.
        code, output = args.func(args)
    if output:
        print(output)
    return code


if __name__ == "__main__":
    sys.exit(main())
