"""`tic eval RUN`: every checkpoint of a run on every bucket's held-out sets, and on static sets.

Dynamic tasks: DATA/eval/<bucket>/retrieval and DATA/eval/<bucket>/classification (`tic evalsets`),
one column per benchmark step (the buckets are the steps: years fold into steps as the benchmark
definition says, e.g. 2014-2016 into TiC-DataComp's first step). Static tasks: any folder in
CLIP_benchmark's `wds/` layout given with `--static NAME=PATH`, read offline.

Each (checkpoint, eval set) cell is computed once: its CLIP_benchmark-shaped JSON is written to
RUN/eval/cells/<checkpoint>/<set>.<model>.json with a fingerprint of the checkpoint's weights and of
the eval set inside (tic_train.cells), so a rerun reads it back and evaluates nothing; a retrained
checkpoint or a rebuilt eval set is scored again. RUN/eval/matrix.json holds E[i][j] per task (model
after step i, eval set of step j), the transfer metrics (tic_train.transfer), the static scores per
checkpoint and the run's compute; RUN/eval/results.csv and results.jsonl hold every score as one
row (CLIP_benchmark's `build` table, long form: tic_train.results).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ticdata.errors import UserError
from ticdata.layout import CuratedFolder, RunFolder
from ticdata.storage import write_json_atomic
from ticdata.tars import IMAGE_EXTS
from tic_train.cells import cell_path, read_cell, write_cell
from tic_train.checkpoint import CONFIG, WEIGHTS
from tic_train.documents import load_run_doc
from tic_train.matrix import PRIMARY, format_matrix, step_matrix  # noqa: F401 - format_matrix: the CLI's
from tic_train.metrics import classifier_weights, retrieval, zero_shot
from tic_train.results import result_rows, write_results

log = logging.getLogger(__name__)
TASK_NAME = {"retrieval": "zeroshot_retrieval", "classification": "zeroshot_classification"}


@dataclass
class EvalSet:
    key: str  # "dyn-<bucket>-<kind>" or "static-<name>"
    kind: str  # retrieval | classification
    folder: Path
    bucket: str | None
    images: list[bytes] = field(default_factory=list)
    captions: list[list[str]] = field(default_factory=list)  # retrieval: captions per image
    labels: list[int] = field(default_factory=list)
    classnames: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # "<tar>: sample <key>" per image, for error messages
    keys: list[str] = field(default_factory=list)  # the sample key (the uid) per image
    metric: str | None = None  # the score the matrix reads (static DataComp tasks: theirs); None: PRIMARY[kind]
    fingerprint: str = ""


def _text_lines(path: Path, what: str) -> list[str]:
    """The non-empty lines of a required text file of an eval set; missing or not UTF-8: refused."""
    try:
        lines = [x.strip() for x in path.read_bytes().decode("utf-8").splitlines() if x.strip()]
    except OSError as e:
        raise UserError(f"{path}: cannot read the eval set's {what} ({e.strerror or type(e).__name__}); rebuild the eval set") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); rebuild the eval set") from None
    if not lines:
        raise UserError(f"{path}: lists no {what}; rebuild the eval set")
    return lines


def _label(data: bytes, tar: Path, key: str, classes: int) -> int:
    try:
        label = int(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        label = -1
    if not 0 <= label < classes:
        raise UserError(f"{tar}: sample {key!r}: class label {data[:20]!r} is not an index into classnames.txt "
                        f"(0..{classes - 1}); rebuild the eval set")
    return label


def read_wds_set(folder: Path, key: str, bucket: str | None = None) -> EvalSet:
    """An eval set in CLIP_benchmark's wds layout (test split), read through tic's guarded tar
    reader. A classification set needs classnames.txt and zeroshot_classification_templates.txt
    (CLIP_benchmark's wds sets carry both; no default template is put in their place); a set
    without samples, or a label outside the class list, is refused with the file named."""
    from ticdata.wds import iter_samples

    folder = Path(folder)
    try:
        kind = (folder / "dataset_type.txt").read_text().strip().lower() if (folder / "dataset_type.txt").exists() else "classification"
        n = int((folder / "test" / "nshards.txt").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{folder}: not an eval set in CLIP_benchmark's wds layout (test/nshards.txt: {e})") from None
    if kind not in ("retrieval", "classification"):
        raise UserError(f"{folder}/dataset_type.txt: {kind[:40]!r}; tic evaluates retrieval and classification sets")
    if not 0 < n <= 1_000_000:
        raise UserError(f"{folder}/test/nshards.txt: {n} shards; an eval set has 1 or more; rebuild the eval set")
    es = EvalSet(key, kind, folder, bucket)
    if kind == "classification":
        es.classnames = _text_lines(folder / "classnames.txt", "class names")
        es.templates = _text_lines(folder / "zeroshot_classification_templates.txt", "prompt templates")
        if not any("{c}" in t for t in es.templates):
            raise UserError(f"{folder / 'zeroshot_classification_templates.txt'}: no template holds {{c}} (the class name); "
                            "rebuild the eval set")
    h = hashlib.sha256()
    for i in range(n):
        tar = folder / "test" / f"{i}.tar"
        if not tar.exists():
            raise UserError(f"{tar}: missing (nshards.txt says {n})")
        st = tar.stat()
        h.update(f"{tar.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        for skey, members in iter_samples(str(tar), [0], "rebuild the eval set"):
            m = {e.lower(): d for e, d in members}
            img = next((m[e] for e in IMAGE_EXTS if e in m), None)
            if img is None:
                continue
            if kind == "retrieval":
                if "txt" not in m:
                    continue
                es.captions.append([c for c in m["txt"].decode("utf-8", "replace").splitlines() if c.strip()])
            else:
                if "cls" not in m:
                    continue
                es.labels.append(_label(m["cls"], tar, skey, len(es.classnames)))
            es.images.append(img)
            es.sources.append(f"{tar}: sample {skey!r}")
            es.keys.append(skey)
    if not es.images:
        raise UserError(f"{folder}: the eval set holds no usable samples (an image with its {'txt' if kind == 'retrieval' else 'cls'}); "
                        "rebuild it")
    if kind == "retrieval" and not any(es.captions):
        raise UserError(f"{folder}: no sample has a caption; rebuild the eval set")
    h.update(("\n".join(es.classnames) + "\n".join(es.templates)).encode())
    es.fingerprint = h.hexdigest()[:16]
    return es


def dynamic_sets(data: Path, buckets: list[str]) -> list[EvalSet]:
    out = []
    for b in buckets:
        for kind in ("retrieval", "classification"):
            folder = CuratedFolder(data).eval_set(b, kind)
            if not folder.exists():
                raise UserError(f"{folder}: missing; run `tic evalsets {data}` first")
            out.append(read_wds_set(folder, f"dyn-{b}-{kind}", b))
    return out


def _checkpoint_fingerprint(folder: Path) -> str:
    try:
        st = (folder / WEIGHTS).stat()
    except OSError:
        raise UserError(f"{folder / WEIGHTS}: missing; the checkpoint is incomplete: delete {folder} and rerun "
                        "`tic train` with the run's config (it retrains that step)") from None
    return hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def checkpoint_architecture(folder: Path) -> str:
    """The architecture a checkpoint names, checked: a run folder is untrusted input, so only a
    model config known locally (open_clip's own or tic's) is accepted, never a remote reference
    (`hf-hub:`, a URL) that would make open_clip download something."""
    import open_clip

    from tic_train.tiny import register_configs

    register_configs()
    path = Path(folder) / CONFIG
    try:
        arch = json.loads(path.read_text())["architecture"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: cannot read the checkpoint's architecture ({type(e).__name__}: {e}); re-create the checkpoint") from None
    if not isinstance(arch, str) or ":" in arch or "/" in arch or open_clip.get_model_config(arch) is None:
        raise UserError(f"{path}: architecture {str(arch)[:80]!r} is not a local open_clip config; tic loads only local "
                        "models (a remote reference such as hf-hub: is refused)")
    return arch


def check_checkpoint(folder: Path) -> str:
    """The architecture of a step checkpoint whose config names a local model and whose weights
    file is whole (its safetensors header and size agree); checked for every checkpoint before the
    first cell is scored, so a damaged run fails before anything is written."""
    from safetensors import safe_open

    arch = checkpoint_architecture(folder)
    weights = Path(folder) / WEIGHTS
    if not weights.is_file():
        raise UserError(f"{weights}: missing; the checkpoint is incomplete: delete {folder} and rerun `tic train` with "
                        "the run's config (it retrains that step)")
    try:
        with safe_open(str(weights), framework="pt") as f:
            f.keys()
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error kinds
        raise UserError(f"{weights}: not a whole safetensors file ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__}); "
                        f"delete {folder} and rerun `tic train` with the run's config (it retrains that step)") from None
    return arch


def load_model(folder: Path, device: torch.device):
    import open_clip

    from tic_train.tiny import quiet_model_creation, register_configs

    register_configs()
    arch = checkpoint_architecture(folder)
    try:
        with quiet_model_creation():
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(folder / WEIGHTS), device=device)
    except Exception as e:  # noqa: BLE001 - safetensors, torch and open_clip each raise their own kinds
        raise UserError(f"{folder / WEIGHTS}: not weights of a {arch} model tic can load ({type(e).__name__}); the file is "
                        f"damaged: delete {folder} and rerun `tic train` with the run's config (it retrains that step)") from None
    return model.eval(), preprocess, open_clip.get_tokenizer(arch), arch


def _preprocess_all(es: EvalSet, preprocess, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """The pixels of images start..stop of the set (default all), through `preprocess`."""
    from PIL import Image

    out = []
    for data, source in zip(es.images[start:stop], es.sources[start:stop]):
        try:
            out.append(preprocess(Image.open(io.BytesIO(data)).convert("RGB")))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise UserError(f"{source}: the image does not decode ({type(e).__name__}); rebuild the eval set") from None
    return torch.stack(out)


@torch.no_grad()
def encode_set_images(model, es: EvalSet, preprocess, device, batch: int = 256) -> torch.Tensor:
    """_encode_images of the whole set, decoded `batch` images at a time (the same batches, so the
    same features), without holding every image's pixels at once: validation during training."""
    return torch.cat([_encode_images(model, _preprocess_all(es, preprocess, a, a + batch), device, batch)
                      for a in range(0, len(es.images), batch)])


@torch.no_grad()
def _encode_images(model, pixels: torch.Tensor, device, batch: int) -> torch.Tensor:
    out = [torch.nn.functional.normalize(model.encode_image(pixels[a : a + batch].to(device)).float(), dim=-1)
           for a in range(0, len(pixels), batch)]
    return torch.cat(out).cpu()


@torch.no_grad()
def _encode_texts(model, tokenizer, texts: list[str], device, batch: int) -> torch.Tensor:
    out = [torch.nn.functional.normalize(model.encode_text(tokenizer(texts[a : a + batch]).to(device)).float(), dim=-1)
           for a in range(0, len(texts), batch)]
    return torch.cat(out).cpu()


def evaluate_set(model, tokenizer, pixels: torch.Tensor, es: EvalSet, device, batch: int = 256) -> dict:
    return score_images(model, tokenizer, _encode_images(model, pixels, device, batch), es, device, batch)


def score_images(model, tokenizer, img: torch.Tensor, es: EvalSet, device, batch: int = 256) -> dict:
    """The set's metrics from its images' normalized features (recall@k both ways, or zero-shot)."""
    if es.kind == "retrieval":
        texts = [c for cs in es.captions for c in cs]
        owner = torch.tensor([i for i, cs in enumerate(es.captions) for _ in cs])
        txt = _encode_texts(model, tokenizer, texts, device, batch)
        m = retrieval(img, txt, owner)
        m["retrieval_recall@1"] = (m["image_retrieval_recall@1"] + m["text_retrieval_recall@1"]) / 2
        return m
    clf = classifier_weights(model, tokenizer, es.classnames, es.templates, device).cpu()
    return zero_shot(img, clf, torch.tensor(es.labels))




def evaluate_run(run: Path, static: dict[str, Path] | None = None, device: str = "auto", batch: int = 256,
                 progress: bool = True, patching_alphas: list[float] | None = None, static_root: Path | None = None,
                 columns: str = "step") -> dict:
    """Fill every missing cell of RUN, then write and return RUN/eval/matrix.json (with a Patching
    run's alpha curve when `patching_alphas` is given: tic_train.patching_eval)."""
    run = Path(run)
    doc = load_run_doc(run)
    data = Path(doc["data"])
    buckets = list(doc["buckets"])
    ckpts = RunFolder(run).step_checkpoints()
    if not ckpts:
        raise UserError(f"{run}/checkpoints: no step checkpoints; train first (tic train ... --out {run})")
    archs = {ckpt.name: check_checkpoint(ckpt) for ckpt in ckpts}
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    sets = dynamic_sets(data, buckets)
    from tic_train.static_tasks import metric_of, static_sets_under

    static, skipped = dict(static or {}), {}
    if static_root is not None:
        found, skipped = static_sets_under(Path(static_root))
        static = found | static
    for name, path in static.items():
        es = read_wds_set(Path(path), f"static-{name}")
        es.metric = metric_of(name)
        sets.append(es)
    year_columns = None
    if columns == "year":
        from tic_train.year_columns import by_year

        if patching_alphas:
            raise UserError("--patching-alpha scores step columns; run it without --columns year")
        sets, year_columns, _ = by_year(sets, data, buckets)
    started = time.monotonic()
    computed = 0
    pixels_cache: dict[tuple[str, str], torch.Tensor] = {}
    cells: dict[tuple[str, str], dict] = {}
    paths: dict[tuple[str, str], Path] = {}
    for ckpt in ckpts:
        todo = []
        fp = _checkpoint_fingerprint(ckpt)
        for es in sets:
            p = paths[(ckpt.name, es.key)] = cell_path(RunFolder(run).cells(ckpt.name), es.key, archs[ckpt.name])
            cell = read_cell(p, f"{fp}-{es.fingerprint}")
            if cell is not None:
                cells[(ckpt.name, es.key)] = cell
            else:
                todo.append(es)  # never scored, scored from other weights or another set, or damaged: score it (again)
        if not todo:
            continue
        model, preprocess, tokenizer, arch = load_model(ckpt, dev)
        for es in todo:
            sig = (es.key, repr(preprocess))
            if sig not in pixels_cache:
                pixels_cache[sig] = _preprocess_all(es, preprocess)
            metrics = evaluate_set(model, tokenizer, pixels_cache[sig], es, dev, batch)
            cell = {"dataset": f"wds/{es.key}", "model": arch, "pretrained": str(ckpt / WEIGHTS),
                    "task": TASK_NAME[es.kind], "metrics": metrics, "language": "en",
                    "tic": {"checkpoint": ckpt.name, "eval_set": str(es.folder), "bucket": es.bucket,
                            "samples": len(es.images), "fingerprint": es.fingerprint, "checkpoint_fingerprint": fp}}
            cells[(ckpt.name, es.key)] = write_cell(paths[(ckpt.name, es.key)], es.key, cell, f"{fp}-{es.fingerprint}")
            computed += 1
        log.info("%s: %d eval sets scored", ckpt.name, len(todo))
    matrix = step_matrix(run, doc, ckpts, sets, cells, year_columns, paths)
    if patching_alphas:
        from tic_train.patching_eval import score_alphas

        matrix["patching_alpha"] = score_alphas(run, ckpts, sets, buckets, cells, patching_alphas, dev, batch, pixels_cache)
    if skipped:
        matrix["static_skipped"] = skipped
    matrix["computed_cells"] = computed
    matrix["seconds"] = round(time.monotonic() - started, 1)
    write_json_atomic(RunFolder(run).matrix_json, matrix)
    write_results(run, result_rows(doc["config"]["method"], ckpts, sets, cells))
    return matrix
