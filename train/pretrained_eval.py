"""`tic eval --data DIR --model ARCH --pretrained P --out FOLDER`: an existing open_clip model (a
local weights file, or a pretrained tag already in the local cache) scored on every dynamic eval
set of a curated folder, without a training run: the paper's first finding (OpenAI's CLIP against
newer OpenCLIP models on recent data) needs exactly this.

A frozen model is the model after every step, so its eval matrix has one identical row per step
and the transfer metrics read as for any method (its in-domain score is the mean over the steps'
sets). FOLDER gets a run.json (method `frozen-<label>`) and eval/matrix.json, so `tic report` puts
it beside trained runs of the same data. Nothing is downloaded: a tag whose weights are not in the
cache is refused by name."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from ticdata.benchmarks import benchmark_from_manifest, bucket_names
from ticdata.errors import UserError
from ticdata.layout import CuratedFolder, RunFolder, check_apart
from ticdata.manifest import load_manifest_json
from ticdata.storage import check_output_folder, write_json_atomic
from tic_train.cells import cell_path, read_cell, write_cell

FROZEN = "frozen"


def frozen_method(label: str) -> str:
    return f"{FROZEN}-{re.sub(r'[^A-Za-z0-9._=+-]', '-', label).strip('-')[:80] or 'model'}"


def resolve_pretrained(arch: str, pretrained: str, cache_dir: str | None = None, flag: str = "--pretrained") -> Path:
    """A local weights file for (arch, pretrained): the path itself, or the cached download of an
    open_clip pretrained tag. Never a download: an uncached tag is a UserError saying what to do."""
    import open_clip

    if Path(pretrained).is_file():
        return Path(pretrained)
    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not cfg:
        raise UserError(f"{flag} {pretrained!r}: neither a file nor an open_clip tag of {arch} "
                        f"({', '.join(open_clip.list_pretrained_tags_by_model(arch)) or 'it has none'})")
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)
        for name in ([filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]):
            hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
    url = cfg.get("url", "")
    if url:
        local = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.is_file():
            return local
    raise UserError(f"{flag} {pretrained!r}: the weights of {arch} {pretrained} are not in the local cache and tic "
                    "downloads nothing at run time; fetch them once (open_clip.create_model_and_transforms("
                    f"{arch!r}, pretrained={pretrained!r})) or pass a local file")


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def evaluate_pretrained(data: Path, arch: str, pretrained: str, out: Path, device: str = "auto", batch: int = 256,
                        cache_dir: str | None = None, label: str | None = None) -> dict:
    """Score the model on every dynamic set of DATA; write OUT/run.json and OUT/eval/matrix.json."""
    import open_clip

    from tic_train.evaluate import TASK_NAME, _preprocess_all, dynamic_sets, evaluate_set
    from tic_train.results import result_rows, write_results
    from tic_train.matrix import PRIMARY, step_matrix
    from tic_train.tiny import quiet_model_creation, register_configs

    register_configs()
    if ":" in arch or "/" in arch or open_clip.get_model_config(arch) is None:
        raise UserError(f"--model {arch[:80]!r}: not a local open_clip config (tic loads only local models)")
    weights = resolve_pretrained(arch, pretrained, cache_dir)
    data, out = Path(data), Path(out)
    doc = load_manifest_json(data)
    where = CuratedFolder(data).manifest_json
    buckets, bench = bucket_names(doc, where), benchmark_from_manifest(doc, where)
    sets = dynamic_sets(data, buckets)
    check_apart(out, {"data folder": data})
    check_output_folder(out)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    method = frozen_method(label or f"{arch}-{Path(pretrained).stem if Path(pretrained).is_file() else pretrained}")
    folder = RunFolder(out).cells("pretrained")
    fp = _fingerprint(weights)
    model = preprocess = tokenizer = None
    scores: dict[str, dict] = {}
    paths = {es.key: cell_path(folder, es.key, arch) for es in sets}
    for es in sets:
        cell = read_cell(paths[es.key], f"{fp}-{es.fingerprint}")
        if cell is None:
            if model is None:
                try:
                    with quiet_model_creation():
                        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(weights), device=dev)
                except Exception as e:  # noqa: BLE001 - open_clip, torch and safetensors each raise their own kinds
                    raise UserError(f"{weights}: not weights of a {arch} model tic can load ({type(e).__name__})") from None
                model.eval()
                tokenizer = open_clip.get_tokenizer(arch)
            cell = {"dataset": f"wds/{es.key}", "model": arch, "pretrained": str(weights), "task": TASK_NAME[es.kind],
                    "metrics": evaluate_set(model, tokenizer, _preprocess_all(es, preprocess), es, dev, batch), "language": "en",
                    "tic": {"eval_set": str(es.folder), "bucket": es.bucket, "samples": len(es.images)}}
            cell = write_cell(paths[es.key], es.key, cell, f"{fp}-{es.fingerprint}")
        scores[es.key] = cell
    run_doc = {"config": {"method": method, "model": arch, "pretrained": str(weights)}, "data": str(data.resolve()),
               "benchmark": bench.to_json(), "buckets": {b: 0 for b in buckets}, "steps": {}}
    write_json_atomic(RunFolder(out).run_json, run_doc)
    rows = [Path(f"step-{i:02d}-{b}") for i, b in enumerate(buckets)]  # the same model after every step
    matrix = step_matrix(out, run_doc, rows, sets, {(r.name, k): c for r in rows for k, c in scores.items()})
    matrix["rows"] = [{"checkpoint": "pretrained", "step": i} for i in range(len(buckets))]
    matrix["cells"] = {f"pretrained/{k}": str(p.relative_to(out)) for k, p in paths.items()}
    matrix["pretrained"] = {"weights": str(weights), "tag": pretrained, "metrics": list(PRIMARY.values())}
    write_json_atomic(RunFolder(out).matrix_json, matrix)
    write_results(out, result_rows(method, [("pretrained", None, None)], sets, {("pretrained", k): c for k, c in scores.items()}))
    return matrix
