"""The run configuration of `tic train`: a TOML file, overridden by flags.

    data = "out/demo/world-curated"      # a folder after `tic evalsets` (its manifest.json names the benchmark)
    method = "cumulative-all"            # see tic_train.mixture
    samples_per_step = 20000             # C; default: the benchmark's [compute] samples_per_step
    batch_size = 256
    model = "tic-tiny"                   # any open_clip architecture, or a shipped tiny config
    lr = 5e-4
    warmup_first = 50                    # optimizer steps of the first step (from random init)
    warmup_later = 0                     # of every warm-started step (ml-tic-clip: 0)
    weight_decay = 0.2
    precision = "fp32"                   # fp32, or bf16 (autocast; GPU)
    seed = 0
    out = "out/runs/cumulative-all"
    report_to = "tensorboard"            # also scalars in RUN/tensorboard/ (pip install 'tic[tensorboard]')
    val = true                           # score the step's held-out retrieval set at the end of each step
    val_every = 5000                     # ... and every 5,000 samples of a step (implies val)
    warn_epochs = 4.0                    # warn when a step repeats a bucket more often (tic_train.data_use)

Every key is also a flag (`--batch-size 128`); `--set key=value` sets any key. `tic train` needs the
method from a flag, the config or a preset (`required`); the library's default is sequential.
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ticdata.errors import UserError
from tic_train.data_use import WARN_EPOCHS
from tic_train.methods import DATA_RULES, METHODS

PRECISIONS = ("fp32", "bf16")
PRESETS = "tic_train.presets"  # the package holding the shipped run configs (folder presets/)
REPORT_TO = ("none", "tensorboard")  # open_clip_train's --report-to, less wandb


class MissingKeys(UserError):
    """A key the caller requires was set by no flag, config file or preset (`required`)."""


@dataclass(frozen=True)
class RunConfig:
    data: str = ""
    out: str = ""
    method: str = "sequential"
    samples_per_step: int = 0  # 0: the benchmark's [compute] samples_per_step
    batch_size: int = 256
    model: str = "tic-tiny"
    lr: float = 5e-4
    warmup_first: int = 50  # warmup optimizer steps of a step trained from random init (the first; Restart, Oracle)
    warmup_later: int = 0  # of a warm-started step: ml-tic-clip runs its later steps with --warmup 0 (medium, large)
    warmup: int | None = None  # both at once (earlier configs' single key): sets warmup_first and warmup_later
    weight_decay: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    precision: str = "fp32"
    seed: int = 0
    workers: int = 2
    device: str = "auto"  # auto: cuda when available, else cpu
    accum_freq: int = 1  # gradient accumulation: micro-batches per optimizer step
    grad_checkpointing: bool = False
    buffer: int = 0  # replay buffer size of cumulative-exp/-equal; 0: buffer_factor x |D_t|
    buffer_factor: float = 2.0  # the paper's arithmetic: old data of twice the new step's size
    lwf_weight: float = 1.0
    lwf_data: str = "sequential"  # the paper's LwF trains on the new data only; cumulative-* are options
    lwf_temperature: float = 1.0
    patching_alpha: float = 0.5  # weight of the newly fine-tuned model in the interpolation
    checkpoint_every: int = 0  # optimizer steps between in-step (resume) checkpoints; 0: about every 5 minutes
    log_every: int = 10  # optimizer steps per log line
    steps: tuple[str, ...] = ()  # train only these benchmark steps (names); default all
    deterministic: bool = False  # CPU: torch.use_deterministic_algorithms, fixed thread count
    threads: int = 0  # torch intra-op threads; 0: torch's default
    progress: bool = True
    report_to: str = ""  # "tensorboard": scalars also in RUN/tensorboard/ (open_clip_train's --report-to); "" or "none": off
    val: bool = False  # score the step's held-out retrieval set at the end of each step (log.jsonl, TensorBoard)
    val_every: int = 0  # ... and every this many samples of a step (implies val); 0: only `val`
    # warn when a step repeats a bucket more than this many epochs: Muennighoff et al. 2023, "Scaling
    # Data-Constrained Language Models", find up to ~4 epochs of repeats nearly as good as new data
    warn_epochs: float = WARN_EPOCHS
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.warmup is not None:  # the single key of earlier configs means every step
            object.__setattr__(self, "warmup_first", self.warmup)
            object.__setattr__(self, "warmup_later", self.warmup)

    @property
    def validates(self) -> bool:
        return self.val or self.val_every > 0

    @property
    def tensorboard(self) -> bool:
        return self.report_to == "tensorboard"

    def warmup_for(self, warm_started: bool) -> int:
        return self.warmup_later if warm_started else self.warmup_first

    def to_json(self) -> dict:
        d = asdict(self)
        d["steps"] = list(self.steps)
        return d


_TYPES = {f.name: f.type for f in fields(RunConfig)}


def _coerce(key: str, value, where: str):
    t = _TYPES[key].removesuffix(" | None")
    try:
        if t in ("int",):
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if t == "float":
            return float(value)
        if t == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if t.startswith("tuple"):
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(str(v) for v in value)
        return str(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {key} = {value!r} is not a valid {t}")


def preset_names() -> list[str]:
    """Shipped presets as BENCHMARK/SCALE (file presets/BENCHMARK-SCALE.toml)."""
    return sorted("/".join(f.name[: -len(".toml")].rsplit("-", 1)) for f in resources.files(PRESETS).iterdir() if f.name.endswith(".toml"))


def _preset_text(name: str) -> tuple[str, str]:
    res = resources.files(PRESETS).joinpath(f"{name.replace('/', '-')}.toml")
    if "/" in name.replace("/", "", 1) or not res.is_file():
        raise UserError(f"--preset {name!r}: no such preset; choose one of {', '.join(preset_names())}")
    return str(res), res.read_text()


def _toml_values(where: str, text: str) -> dict:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{where}: not valid TOML ({e})")
    values = {}
    for k, v in raw.items():
        if k not in _TYPES or k == "extra":
            raise UserError(f"{where}: unknown key {k!r}; known keys: {', '.join(sorted(k for k in _TYPES if k != 'extra'))}")
        values[k] = _coerce(k, v, where)
    return values


def _merge(values: dict, new: dict) -> dict:
    """`new` over `values`; a single `warmup` replaces both warmups set earlier, and vice versa."""
    if "warmup" in new:
        values = {k: v for k, v in values.items() if k not in ("warmup_first", "warmup_later")}
    elif {"warmup_first", "warmup_later"} & set(new) and "warmup" in values:
        w = values.pop("warmup")
        values = {"warmup_first": w, "warmup_later": w} | values
    return values | new


def load_config(path: str | None, overrides: dict, preset: str | None = None, required: tuple[str, ...] = ()) -> RunConfig:
    """The config: a shipped preset (optional), then a TOML file (optional), then `overrides`; checked.
    A key in `required` must be set by one of them (MissingKeys), whatever RunConfig's default."""
    values: dict = {}
    if preset:
        values = _merge(values, _toml_values(*_preset_text(preset)))
    if path:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise UserError(f"{p}: cannot read the run config ({e.strerror})")
        values = _merge(values, _toml_values(str(p), text))
        if "data" in values and not Path(values["data"]).is_absolute():
            values["data"] = str((p.parent / values["data"]).resolve()) if (p.parent / values["data"]).exists() else values["data"]
    flags = {}
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in _TYPES or k == "extra":
            raise UserError(f"--set {k}=...: unknown key; known keys: {', '.join(sorted(k for k in _TYPES if k != 'extra'))}")
        flags[k] = _coerce(k, v, f"--{k.replace('_', '-')}")
    values = _merge(values, flags)
    missing = [k for k in required if k not in values]
    if missing:
        choices = f" (choose from {', '.join(METHODS)})" if "method" in missing else ""
        raise MissingKeys(f"the following arguments are required: {', '.join('--' + k.replace('_', '-') for k in missing)}"
                          f"{choices}, unless --config or --preset sets {', '.join(missing)}")
    cfg = RunConfig(**values)
    check(cfg)
    return cfg


def check(cfg: RunConfig) -> None:
    if not cfg.data:
        raise UserError("no data folder: give it (tic train DATA --out RUN --method M; DATA: a folder after tic evalsets) or set data = \"...\" in the config")
    if not cfg.out:
        raise UserError("no output folder: set out = RUN in the config or pass --out RUN")
    if cfg.method not in METHODS:
        raise UserError(f"method {cfg.method!r}: choose one of {', '.join(METHODS)}")
    if cfg.lwf_data not in DATA_RULES:
        raise UserError(f"lwf_data {cfg.lwf_data!r}: choose sequential, cumulative-all, cumulative-exp or cumulative-equal")
    if cfg.precision not in PRECISIONS:
        raise UserError(f"precision {cfg.precision!r}: choose one of {', '.join(PRECISIONS)}")
    for k in ("batch_size", "accum_freq", "log_every"):
        if getattr(cfg, k) < 1:
            raise UserError(f"{k} = {getattr(cfg, k)}: must be at least 1")
    if cfg.batch_size % cfg.accum_freq:
        raise UserError(f"batch_size {cfg.batch_size} is not a multiple of accum_freq {cfg.accum_freq}")
    if cfg.report_to not in ("",) + REPORT_TO:
        raise UserError(f"report_to {cfg.report_to!r}: choose one of {', '.join(REPORT_TO)} (tic writes TensorBoard, not wandb)")
    for k in ("samples_per_step", "buffer", "warmup_first", "warmup_later", "seed", "workers", "checkpoint_every", "threads",
              "val_every"):
        if getattr(cfg, k) < 0:
            raise UserError(f"{k} = {getattr(cfg, k)}: must not be negative")
    for k in ("lr", "weight_decay", "beta1", "beta2", "eps", "lwf_weight", "lwf_temperature", "patching_alpha", "buffer_factor",
              "warn_epochs"):
        if not math.isfinite(float(getattr(cfg, k))) or float(getattr(cfg, k)) < 0:
            raise UserError(f"{k} = {getattr(cfg, k)}: must be a finite number, not negative")
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise UserError(f"device {cfg.device!r}: choose auto, cpu, cuda or cuda:N")
    for k in ("beta1", "beta2"):
        if not 0.0 <= getattr(cfg, k) < 1.0:
            raise UserError(f"{k} = {getattr(cfg, k)}: AdamW's betas lie in [0, 1)")
    if cfg.eps <= 0 or cfg.lwf_temperature <= 0:
        raise UserError(f"eps = {cfg.eps}, lwf_temperature = {cfg.lwf_temperature}: both must be positive")
    if not 0.0 <= cfg.patching_alpha <= 1.0:
        raise UserError(f"patching_alpha {cfg.patching_alpha}: must be between 0 and 1")
