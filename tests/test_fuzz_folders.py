"""Seeded fuzzing of the folders the verbs after curate read (issue 17): for each document, uid
file, tar and checkpoint of a small complete folder (`small_run`), cut the file at a random length
or flip bytes at random offsets, run the verb that reads it, and require an answer: exit 0 (the
damage did not matter, or was counted), or exit 2 with one line naming a file. Never a traceback,
never a hang (each run is bounded by an alarm). The seed is fixed, so a failure reproduces; set
TIC_FUZZ_SEED to explore other damage."""

from __future__ import annotations

import os
import random
import signal

import pytest

from ticdata.cli import main

from worldfolder import copy_small_run

SEED = int(os.environ.get("TIC_FUZZ_SEED", "17"))
MUTATIONS = 3  # per file: one cut, two flips of a few bytes
BOUND_S = 90  # a verb that takes longer on this small folder is taken to hang
B = "2014-2016"
CLS = f"cur/eval/{B}/classification"

# file (relative to the copy) -> the verbs that read it
TARGETS = {
    "cur/manifest.json": [["uids", "export", "{cur}", "--out", "{tmp}/u"], ["audit", "{cur}", "--out", "{tmp}/a", "--executor", "inline"]],
    "cur/manifest/year=2015/part-00000.parquet": [["uids", "export", "{cur}", "--out", "{tmp}/u"]],
    "uids/2014-2016.npy": [["uids", "import", "{cur}", "{uids}/2014-2016.npy", "--out", "{tmp}/imp"]],
    f"cur/shards/{B}/00000000.tar": [["reshard", "{cur}/shards", "--out", "{tmp}/rs", "--manifest", "{cur}", "--executor", "inline"]],
    f"cur/train/shards/{B}/00000000.tar": [["train", "--data", "{cur}", "--out", "{tmp}/run2", "--samples-per-step", "16",
                                            "--batch-size", "16", "--workers", "0", "--steps", B, "--warmup", "1", "--device", "cpu",
                                            "--method", "sequential"]],
    f"cur/train/shards/{B}/sizes.json": [["train", "--data", "{cur}", "--out", "{tmp}/run2", "--samples-per-step", "16",
                                          "--batch-size", "16", "--workers", "0", "--steps", B, "--warmup", "1", "--device", "cpu",
                                          "--method", "sequential"]],
    f"{CLS}/test/0.tar": [["eval", "{run}", "--device", "cpu"]],
    f"{CLS}/classnames.txt": [["eval", "{run}", "--device", "cpu"]],
    f"{CLS}/zeroshot_classification_templates.txt": [["eval", "{run}", "--device", "cpu"]],
    f"cur/eval/{B}/retrieval/test/0.tar": [["eval", "{run}", "--device", "cpu"]],
    "run/run.json": [["eval", "{run}", "--device", "cpu"], ["report", "{run}", "--out", "{tmp}/rep"]],
    "run/checkpoints/step-00-2014-2016/open_clip_config.json": [["eval", "{run}", "--device", "cpu"]],
    "run/checkpoints/step-00-2014-2016/open_clip_model.safetensors": [["eval", "{run}", "--device", "cpu"]],
    "run/eval/matrix.json": [["report", "{run}", "--out", "{tmp}/rep"]],
}


def _mutations(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    out = [(f"cut at {(n := rng.randrange(len(data)))}", data[:n])]
    for _ in range(MUTATIONS - 1):
        b = bytearray(data)
        offsets = sorted(rng.randrange(len(b)) for _ in range(3))
        for o in offsets:
            b[o] ^= 1 << rng.randrange(8)
        out.append((f"bits flipped at {offsets}", bytes(b)))
    return out


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def _run(argv: list[str], capsys) -> tuple[int, str]:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(BOUND_S)
    try:
        code = main(["-q", *argv])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_damaged_files_get_an_answer_never_a_traceback_or_a_hang(small_run, tmp_path_factory, capsys, target):
    rng = random.Random(f"{SEED}:{target}")
    seen = []
    probe = copy_small_run(small_run, tmp_path_factory.mktemp("orig"))
    main(["-q", "uids", "export", str(probe[0]), "--out", str(probe[0].parent / "uids")])
    original = (probe[0].parent / target).read_bytes()
    capsys.readouterr()
    for label, data in _mutations(original, rng):
        for argv in TARGETS[target]:
            root = tmp_path_factory.mktemp("fuzz")
            cur, run = copy_small_run(small_run, root)
            uids = root / "uids"
            main(["-q", "uids", "export", str(cur), "--out", str(uids)])
            work = root / "work"
            work.mkdir()
            capsys.readouterr()
            (root / target).write_bytes(data)
            filled = [a.format(cur=cur, run=run, tmp=work, uids=uids) for a in argv]
            try:
                code, err = _run(filled, capsys)
            except Hang:
                pytest.fail(f"{target} ({label}): `tic {' '.join(argv[:2])}` ran past {BOUND_S} s")
            except BaseException as e:  # noqa: BLE001 - any escape from main() is the failure this test looks for
                pytest.fail(f"{target} ({label}): `tic {' '.join(argv[:2])}` raised {type(e).__name__}: {e}")
            lines = [x for x in err.splitlines() if x.strip()]
            assert code in (0, 2), (target, label, argv[:2], code, err[-2000:])
            if code == 2:
                assert len(lines) == 1 and lines[0].startswith("tic: error: ") and str(root) in lines[0], (target, label, err)
            seen.append(code)
    assert len(seen) == MUTATIONS * len(TARGETS[target])
