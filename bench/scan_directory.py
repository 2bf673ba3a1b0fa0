"""A whole directory read in one command: ``bastion scan DIR`` vs picklescan's directory mode.

    .venv/bin/python bench/scan_directory.py              # builds ~290 MB once in bench/.work
    .venv/bin/python bench/scan_directory.py --repeat 7   # more rounds
    .venv/bin/python bench/scan_directory.py --rebuild    # write the directory again

Issue 21, item 7: speed while reading everything. The directory is a team's model workspace,
about 900 files written by the real libraries from one seed and cached under
``bench/.work/scan_directory/`` (every build has the same files, sizes and content; only the
Keras files' save time and the legacy torch files' storage keys, which torch takes from memory
addresses, differ from one build to the next): Hugging Face-style model folders (``config.json``,
tokenizer files, ``model.safetensors``, ``pytorch_model.bin``, ``training_args.bin``, ONNX
exports, READMEs), training runs (``torch.save`` zip checkpoints with AdamW state, Lightning-
style ``.ckpt``, legacy-format ``.pth``, logs, metrics), scikit-learn models (``joblib.dump``
plain and zlib-compressed, ``pickle.dump``), NumPy ``.npy`` / ``.npz``, Parquet, CSV and JSONL
data, Keras 3 ``.keras`` files, PNG and JPEG images, raw float dumps, YAML and JSON configs,
Python sources, and files whose names mislead: pickles named ``.bin``, ``.txt`` or nothing at
all, a torch checkpoint named ``.model``, NumPy arrays named ``.raw``. (Not ``.dat``: picklescan
1.0.5 reads a ``.dat`` as a pickle, and an ``.npy`` so named raises a ValueError that ends its
whole directory scan, so there would be nothing to time.)

Both tools are run as a user runs them, one command on the whole directory, interpreter
start-up and imports included: ``bastion scan DIR --format json --output FILE`` (the JSON report
also gives the count of files read) and ``picklescan --path DIR``. They take turns, one run of
each per round, after one warm-up round (the files are also read once beforehand, so both meet
a warm page cache); the median of ``--repeat`` rounds is reported, the best beside it, and the
median CPU seconds (user + system, Bastion's worker processes included): on a shared machine the
wall time of a two-process scan swings with the neighbours' load, its CPU time much less.

*Files read* is what each tool opened and judged. Bastion decides every file's format by its
content, so it reads every file (the count is the report's top-level files; archive members it
opened are shown beside). picklescan's directory mode opens only names ending in one of its
pickle-like extensions (``.pkl .pickle .joblib .dat .data .bin .pt .pth .ckpt .zip .npz .7z``)
and never looks at the rest: its count is the files with those extensions, computed from
picklescan's own extension sets, with its "Scanned files" line (pickle streams, archive members
included) beside it. picklescan is installed into its own venv under ``bench/.peers/`` (shared
with ``scan_speed.py`` and ``scan_peers.py``) when missing, never into the project's.
"""

from __future__ import annotations

import argparse
import collections
import io
import itertools
import json
import os
import pickle
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "scan_directory"
TREE = WORK / "tree"
STAMP = WORK / "built-v3"
"""Present once the tree is complete; the version changes whenever the builder does."""
PEERS = HERE / ".peers" / "venv"
PYTHON = sys.executable
BASTION_CLI = str(Path(sys.executable).parent / "bastion")
PICKLESCAN_CLI = str(PEERS / "bin" / "picklescan")
SEED = 21
_EPOCH = (2024, 1, 1, 0, 0, 0)
"""The time stamp of the members this script zips itself."""
MB = 1 << 20

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 without TensorFlow, as the tests


# -- the directory ------------------------------------------------------------------------------

class _Writer:
    """Writes files under the tree, each through one seeded generator."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rng = np.random.default_rng(SEED)
        self.count = 0

    def path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        self.count += 1
        return p

    def bytes(self, rel: str, data: bytes) -> None:
        self.path(rel).write_bytes(data)

    def text(self, rel: str, text: str) -> None:
        self.path(rel).write_text(text, encoding="utf-8")

    def json(self, rel: str, obj: object, indent: int | None = 2) -> None:
        self.text(rel, json.dumps(obj, indent=indent))

    def words(self, n: int) -> str:
        vocab = _VOCAB
        return " ".join(vocab[i] for i in self.rng.integers(0, len(vocab), n))


_VOCAB = [
    "model", "training", "loss", "accuracy", "layer", "weight", "bias", "tensor", "gradient",
    "optimizer", "dataset", "batch", "epoch", "token", "attention", "head", "embedding",
    "vector", "learning", "rate", "schedule", "warmup", "checkpoint", "evaluation", "metric",
    "precision", "recall", "inference", "latency", "deploy", "serve", "the", "a", "of", "to",
    "and", "in", "is", "for", "with", "on", "by", "this", "that", "we", "our", "results",
    "table", "figure",
]


def _mlp(torch: Any, sizes: list[int]) -> Any:
    layers: list[Any] = []
    for a, b in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def _cnn(torch: Any, width: int) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 10),
    )


def _transformer(torch: Any, d: int, layers: int, vocab: int) -> Any:
    nn = torch.nn

    class TinyLM(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, d)
            layer = nn.TransformerEncoderLayer(d, 4, 4 * d, batch_first=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # nested tensor advice
                self.encoder = nn.TransformerEncoder(layer, layers)
            self.head = nn.Linear(d, vocab)

    return TinyLM()


def _net(torch: Any, kind: int, scale: float) -> Any:
    """A small real network; ``scale`` (about 1) sets its width."""
    if kind == 0:
        h = int(256 * scale)
        return _mlp(torch, [128, h, h, h, 10])
    if kind == 1:
        return _cnn(torch, max(8, int(32 * scale)))
    return _transformer(torch, max(16, int(96 * scale) // 4 * 4), 2, int(2000 * scale))


def _trained(torch: Any, model: Any) -> tuple[Any, Any]:
    """The model after one AdamW step, and its optimizer (real optimizer state)."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()
    return model, opt


def _hub(w: _Writer, torch: Any, n: int) -> None:
    """Hugging Face-style model folders."""
    from safetensors.torch import save_file

    for i in range(n):
        base = f"hub/org-{i % 5}/model-{i:02d}"
        kind = i % 3
        model = _net(torch, kind, float(w.rng.uniform(0.6, 2.2)))
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        w.json(f"{base}/config.json", {
            "architectures": [["MLP", "SmallCNN", "TinyLM"][kind]], "model_type": "custom",
            "hidden_size": int(w.rng.integers(64, 1024)), "num_layers": 2,
            "torch_dtype": "float32", "transformers_version": "4.44.0",
            "id2label": {str(j): f"LABEL_{j}" for j in range(10)},
        })
        save_file(state, str(w.path(f"{base}/model.safetensors")),
                  metadata={"format": "pt"})
        if i % 3 == 0:
            torch.save(state, w.path(f"{base}/pytorch_model.bin"))
        if i % 4 == 0:
            torch.save({"learning_rate": 5e-5, "num_train_epochs": 3, "seed": i,
                        "output_dir": f"runs/{i}", "fp16": False},
                       w.path(f"{base}/training_args.bin"))
        w.text(f"{base}/README.md", f"---\nlicense: apache-2.0\ntags: [custom]\n---\n# model-{i}"
               f"\n\n{w.words(int(w.rng.integers(100, 1500)))}\n")
        w.text(f"{base}/.gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n"
               "*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
        if kind == 2:
            vocab_n = int(w.rng.integers(8000, 40000))
            vocab = {f"tok{j}": j for j in range(vocab_n)}
            merges = [f"t{j % 97} k{j % 89}" for j in range(vocab_n // 2)]
            w.json(f"{base}/tokenizer.json", {
                "version": "1.0", "truncation": None, "padding": None,
                "added_tokens": [{"id": 0, "content": "<s>", "special": True}],
                "normalizer": None, "pre_tokenizer": {"type": "ByteLevel"},
                "model": {"type": "BPE", "vocab": vocab, "merges": merges},
            }, indent=None)
            w.json(f"{base}/tokenizer_config.json", {
                "bos_token": "<s>", "eos_token": "</s>", "model_max_length": 2048,
                "tokenizer_class": "PreTrainedTokenizerFast",
                "chat_template": "{% for m in messages %}<|{{ m['role'] }}|>\n"
                                 "{{ m['content'] }}</s>\n{% endfor %}"
                                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
            })
            w.json(f"{base}/special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>"})
            w.json(f"{base}/generation_config.json", {"max_new_tokens": 256, "do_sample": True,
                                                      "temperature": 0.7})
        else:
            w.json(f"{base}/preprocessor_config.json", {"do_normalize": True, "size": 224,
                                                        "image_mean": [0.5, 0.5, 0.5]})
        if i % 5 == 1:
            _onnx_mlp(w, f"{base}/onnx/model.onnx", int(w.rng.integers(64, 512)))


def _onnx_mlp(w: _Writer, rel: str, hidden: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dims = [128, hidden, hidden, 10]
    nodes, inits = [], []
    prev = "x"
    for j, (a, b) in enumerate(itertools.pairwise(dims)):
        inits += [numpy_helper.from_array(w.rng.standard_normal((a, b), np.float32), f"W{j}"),
                  numpy_helper.from_array(np.zeros(b, np.float32), f"b{j}")]
        nodes += [helper.make_node("MatMul", [prev, f"W{j}"], [f"m{j}"]),
                  helper.make_node("Add", [f"m{j}", f"b{j}"], [f"a{j}"])]
        prev = f"a{j}"
        if j < len(dims) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{j}"]))
            prev = f"r{j}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, w.path(rel))


def _runs(w: _Writer, torch: Any, runs: int, epochs: int) -> None:
    """Training runs: zip checkpoints with optimizer state, a .ckpt, legacy .pth, logs."""
    for r in range(runs):
        base = f"experiments/run-{r:02d}"
        model, opt = _trained(torch, _net(torch, r % 3, float(w.rng.uniform(0.5, 1.4))))
        log = []
        for e in range(epochs):
            loss = float(2.0 / (e + 1) + w.rng.uniform(0, 0.1))
            log.append(f"epoch={e} step={(e + 1) * 500} loss={loss:.4f} lr=3e-4")
            torch.save({"epoch": e, "model": model.state_dict(),
                        "optimizer": opt.state_dict(), "loss": loss},
                       w.path(f"{base}/checkpoints/epoch_{e:02d}.pt"))
        torch.save({"state_dict": model.state_dict(), "epoch": epochs, "global_step": 500,
                    "pytorch-lightning_version": "2.4.0", "hyper_parameters": {"lr": 3e-4},
                    "optimizer_states": [opt.state_dict()], "lr_schedulers": []},
                   w.path(f"{base}/last.ckpt"))
        w.text(f"{base}/train.log", "\n".join(log * 40) + "\n")
        w.json(f"{base}/metrics.json", {"loss": [float(x) for x in w.rng.random(50)],
                                        "accuracy": float(w.rng.uniform(0.7, 0.99))})
        w.text(f"{base}/hparams.yaml", f"lr: 0.0003\nbatch_size: {32 << (r % 3)}\n"
               f"epochs: {epochs}\noptimizer: adamw\nseed: {r}\n")
    for k in range(20):
        model = _net(torch, k % 2, float(w.rng.uniform(0.4, 1.2)))
        torch.save(model.state_dict(), w.path(f"legacy/weights_{k:02d}.pth"),
                   _use_new_zipfile_serialization=False)


def _sklearn(w: _Writer) -> None:
    """scikit-learn models: joblib (plain and zlib-compressed) and pickle."""
    import joblib
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    x = w.rng.standard_normal((600, 20))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    makers: list[Callable[[int], Any]] = [
        lambda s: LogisticRegression(max_iter=200, C=1.0 + s),
        lambda s: RandomForestClassifier(n_estimators=10 + 5 * (s % 6), random_state=s),
        lambda s: make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)),
        lambda s: GradientBoostingClassifier(n_estimators=20, random_state=s),
        lambda s: DecisionTreeClassifier(max_depth=4 + s % 6, random_state=s),
        lambda s: KMeans(n_clusters=4 + s % 5, n_init=2, random_state=s),
        lambda s: make_pipeline(StandardScaler(), PCA(5), LogisticRegression(max_iter=200)),
    ]
    for s in range(50):
        model = makers[s % len(makers)](s).fit(x, y)
        name = type(model).__name__.lower()
        if s % 5 == 4:
            joblib.dump(model, w.path(f"sklearn/{name}_{s:02d}_compressed.joblib"), compress=3)
        elif s % 2 == 0:
            joblib.dump(model, w.path(f"sklearn/{name}_{s:02d}.joblib"))
        else:
            with w.path(f"sklearn/{name}_{s:02d}.pkl").open("wb") as f:
                pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)


def _data(w: _Writer) -> None:
    """Arrays, tables and text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = w.rng
    for k in range(60):
        shape = (int(rng.integers(10, 400)), int(rng.integers(8, 256)))
        np.save(w.path(f"data/arrays/feat_{k:02d}.npy"), rng.standard_normal(shape, np.float32))
    for k in range(30):
        with w.path(f"data/arrays/split_{k:02d}.npz").open("wb") as f:
            arrays = {"x": rng.standard_normal((int(rng.integers(50, 500)), 32), np.float32),
                      "y": rng.integers(0, 10, 300)}
            (np.savez_compressed if k % 2 else np.savez)(f, **arrays)
    for k in range(60):
        n = int(rng.integers(50, 3000))
        rows = "\n".join(f"{j},{rng.random():.6f},{rng.integers(0, 10)},{_VOCAB[j % 40]}"
                         for j in range(n))
        w.text(f"data/tables/table_{k:02d}.csv", "id,score,label,word\n" + rows + "\n")
    for k in range(30):
        lines = [json.dumps({"prompt": w.words(20), "completion": w.words(40)})
                 for _ in range(int(rng.integers(20, 400)))]
        w.text(f"data/text/train_{k:02d}.jsonl", "\n".join(lines) + "\n")
    for k in range(20):
        n = int(rng.integers(1000, 20000))
        table = pa.table({"id": np.arange(n), "score": rng.random(n),
                          "label": rng.integers(0, 10, n)})
        pq.write_table(table, w.path(f"data/tables/part_{k:02d}.parquet"))
    for k in range(30):
        w.text(f"data/text/notes_{k:02d}.txt", w.words(int(rng.integers(100, 4000))) + "\n")
    for k in range(15):  # raw float dumps, the kind of ".bin" a C++ loader reads
        w.bytes(f"data/embeddings/emb_{k:02d}.bin",
                rng.standard_normal(int(rng.integers(20_000, 400_000)), np.float32).tobytes())


def _images(w: _Writer) -> None:
    from matplotlib import image

    for k in range(80):
        h, wd = int(w.rng.integers(32, 256)), int(w.rng.integers(32, 256))
        pixels = w.rng.random((h, wd, 3))
        ext = "png" if k % 2 else "jpg"
        image.imsave(w.path(f"images/sample_{k:02d}.{ext}"), pixels)


def _keras(w: _Writer) -> None:
    import keras

    keras.utils.set_random_seed(SEED)
    for k in range(10):
        width = int(w.rng.integers(32, 256))
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(width, "relu"),
                                  keras.layers.Dropout(0.1), keras.layers.Dense(width, "relu"),
                                  keras.layers.Dense(10, "softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(w.path(f"keras/classifier_{k:02d}.keras"))


def _configs_and_code(w: _Writer) -> None:
    import yaml

    rng = w.rng
    for k in range(60):
        cfg = {"model": {"name": f"net{k}", "hidden": int(rng.integers(64, 1024)),
                         "dropout": round(float(rng.random()), 3)},
               "data": {"path": f"data/tables/part_{k % 20:02d}.parquet", "batch_size": 64},
               "trainer": {"max_epochs": int(rng.integers(1, 50)), "precision": "bf16-mixed",
                           "devices": 1},
               "optimizer": {"name": "adamw", "lr": float(rng.choice([1e-3, 3e-4, 1e-4]))}}
        w.text(f"configs/exp_{k:02d}.yaml", yaml.safe_dump(cfg, sort_keys=False))
    for k in range(30):
        w.json(f"configs/sweep_{k:02d}.json",
               {"trials": [{"lr": float(rng.random()), "wd": float(rng.random())}
                           for _ in range(int(rng.integers(5, 200)))]})
    for k in range(40):
        body = "\n".join(f"def step_{j}(batch, model):\n    loss = model(batch).mean()\n"
                         f"    return loss * {j}\n" for j in range(int(rng.integers(5, 80))))
        w.text(f"src/pkg/module_{k:02d}.py", f'"""Training helpers {k}."""\n\n{body}\n')
    for k in range(20):
        w.text(f"docs/page_{k:02d}.md", f"# Page {k}\n\n{w.words(int(rng.integers(200, 3000)))}\n")
    w.text("README.md", "# Workspace\n\n" + w.words(800) + "\n")
    w.text("requirements.txt", "torch>=2.2\nscikit-learn>=1.4\nsafetensors\nkeras>=3\n")


def _misleading(w: _Writer, torch: Any) -> None:
    """Names that do not say what the file is (loaders read content, not names)."""
    rng = w.rng
    for k in range(10):  # a plain pickle called .bin (torch.load reads it; so does pickle)
        obj = {"step": k, "weights": rng.standard_normal((64, 64)), "names": list(_VOCAB)}
        w.bytes(f"cache/state_{k:02d}.bin", pickle.dumps(obj, protocol=4))
    for k in range(5):  # no extension at all
        w.bytes(f"cache/blob{k}", pickle.dumps(collections.OrderedDict(a=rng.random(500)), 2))
    for k in range(5):  # a pickle named .txt
        w.bytes(f"cache/readme_{k}.txt", pickle.dumps([rng.random(100), {"k": k}], 3))
    for k in range(5):  # a torch zip checkpoint named .model
        torch.save(_net(torch, 0, 0.5).state_dict(), w.path(f"cache/encoder_{k}.model"))
    for k in range(5):  # an .npy named .raw (named .dat, picklescan's whole run stops on it)
        buf = io.BytesIO()
        np.save(buf, rng.standard_normal((100, 50)))
        w.bytes(f"cache/matrix_{k}.raw", buf.getvalue())
    with zipfile.ZipFile(w.path("cache/bundle.zip"), "w") as z:  # a zip of mixed content
        z.writestr(zipfile.ZipInfo("weights.pkl", _EPOCH), pickle.dumps({"w": rng.random(1000)}, 4))
        z.writestr(zipfile.ZipInfo("notes.txt", _EPOCH), w.words(500))


def build(rebuild: bool) -> Path:
    """The directory (written once; the same seed gives the same files)."""
    if STAMP.exists() and not rebuild:
        return TREE
    import torch

    print("building", TREE, "(once)", file=sys.stderr)
    shutil.rmtree(WORK, ignore_errors=True)
    torch.manual_seed(SEED)
    w = _Writer(TREE)
    _hub(w, torch, 36)
    _runs(w, torch, 5, 6)
    _sklearn(w)
    _data(w)
    _images(w)
    _keras(w)
    _configs_and_code(w)
    _misleading(w, torch)
    STAMP.write_text(f"{w.count} files\n")
    return TREE


# -- the tools ----------------------------------------------------------------------------------

def ensure_picklescan() -> None:
    """picklescan and NumPy in the peers' venv (never in the project's): picklescan imports
    NumPy to read the arrays in an ``.npz`` or a checkpoint, and stops without it."""
    python = PEERS / "bin" / "python"
    if Path(PICKLESCAN_CLI).exists() and subprocess.run(
            [str(python), "-c", "import numpy"], capture_output=True, check=False).returncode == 0:
        return
    print("installing picklescan and numpy into", PEERS, file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    subprocess.run([str(PEERS / "bin" / "pip"), "install", "-q", "picklescan", "numpy"],
                   check=True)


def compile_bastion() -> None:
    """Byte-compile Bastion as ``pip install`` does for the peers (see ``scan_speed.py``)."""
    import compileall

    import bastion

    compileall.compile_dir(Path(bastion.__file__).parent, quiet=1)


def warm(root: Path) -> tuple[int, int]:
    """Read every file once (both tools then meet a warm page cache): files and bytes."""
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                while chunk := f.read(16 * MB):
                    size += len(chunk)
            files += 1
    return files, size


_PICKLESCAN_OPENS = """
import os, sys
from picklescan import scanner as s
exts = s._zip_file_extensions | s._pickle_file_extensions | s._pytorch_file_extensions
from importlib.metadata import version
print(sum(os.path.splitext(n)[1] in exts for _, _, ns in os.walk(sys.argv[1]) for n in ns),
      version("picklescan"))
"""
"""How many files picklescan's directory mode opens: its own test, on its own extension sets."""


@dataclass
class Tool:
    name: str
    argv: list[str]
    times: list[float] = field(default_factory=list)
    """Wall seconds of each timed run."""
    cpu: list[float] = field(default_factory=list)
    """CPU seconds (user + system, worker processes included) of each timed run."""
    read: int = 0
    """Top-level files the tool opened and judged."""
    note: str = ""


def run_once(tool: Tool, report: Path) -> tuple[float, float]:
    """One run of the tool's command: wall and CPU seconds (its children's included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(tool.argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode not in (0, 1):  # 1: findings (bastion) / dangerous globals (picklescan)
        output = (done.stdout + done.stderr).strip()
        # picklescan exits 2 after any file it could not parse (it goes on with the rest)
        if not (tool.name.startswith("picklescan") and "SCAN SUMMARY" in output):
            raise SystemExit(f"{tool.name} failed ({done.returncode}): {output[-500:]}")
    if tool.name == "bastion":
        files = json.loads(report.read_text())["summary"]["files"]
        top = sum(f["member"] is None for f in files)
        tool.read = top
        tool.note = f"+{len(files) - top} archive members"
    elif tool.name.startswith("picklescan"):
        scanned = re.search(r"Scanned files: (\d+)", done.stdout)
        tool.note = f'"Scanned files: {scanned.group(1) if scanned else "?"}", exit ' \
                    f"{done.returncode}"
    return seconds, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (at least 3)")
    parser.add_argument("--rebuild", action="store_true", help="write the directory again")
    args = parser.parse_args(argv)
    repeat = max(3, args.repeat)
    ensure_picklescan()
    compile_bastion()
    root = build(args.rebuild)
    files, size = warm(root)
    report = WORK / "bastion-report.json"
    bare = Tool("python -c pass", [PYTHON, "-c", "pass"])
    tools = [
        Tool("bastion", [BASTION_CLI, "scan", str(root), "--format", "json", "--output",
                         str(report), "--fail-on", "critical"]),
        Tool("picklescan", [PICKLESCAN_CLI, "--path", str(root)]),
    ]
    opens, peer_version = subprocess.run([str(PEERS / "bin" / "python"), "-c", _PICKLESCAN_OPENS,
                                          str(root)], capture_output=True, text=True,
                                         check=True).stdout.split()
    tools[1].read = int(opens)
    tools[1].name = f"picklescan {peer_version}"
    elapsed = []
    for round_ in range(repeat + 1):  # round 0 warms up, untimed
        for tool in (bare, *tools):
            seconds, cpu = run_once(tool, report)
            if round_:
                tool.times.append(seconds)
                tool.cpu.append(cpu)
        elapsed.append(json.loads(report.read_text())["summary"]["elapsed_s"])

    print(f"\n{files} files, {size / MB:.0f} MB in {root.relative_to(HERE.parent)}; "
          f"{len(os.sched_getaffinity(0))} cores; median of {repeat} rounds after a warm-up; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    header = (f"{'tool':18}{'median s':>10}{'best s':>9}{'CPU s':>8}{'files read':>12}"
              f"{'files/s':>9}{'ms/file':>9}  notes")
    print(header)
    print("-" * len(header))
    for tool in tools:
        med = statistics.median(tool.times)
        print(f"{tool.name:18}{med:10.3f}{min(tool.times):9.3f}{statistics.median(tool.cpu):8.3f}"
              f"{tool.read:12d}{tool.read / med:9.0f}{med / tool.read * 1000:9.2f}  {tool.note}")
    ours, peer = (statistics.median(t.times) for t in tools)
    per_ours, per_peer = ours / tools[0].read, peer / tools[1].read
    print(f"\nbastion / picklescan time: {ours / peer:.2f} by medians, "
          f"{min(tools[0].times) / min(tools[1].times):.2f} by bests: "
          f"{'bastion faster' if ours < peer else 'bastion SLOWER'} "
          f"({abs(peer - ours) * 1000:.0f} ms), reading {tools[0].read} files to picklescan's "
          f"{tools[1].read}")
    print(f"time per file read: bastion {per_ours * 1000:.2f} ms, picklescan "
          f"{per_peer * 1000:.2f} ms (bastion {per_peer / per_ours:.1f}x faster per file)")
    print(f"bastion's scan alone (the report's elapsed_s, start-up and report excluded): "
          f"median {statistics.median(elapsed[1:]):.3f} s; bare interpreter start-up "
          f"{statistics.median(bare.times) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
