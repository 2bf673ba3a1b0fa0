"""Format scanners' cost follows structure, not tensor bytes: Bastion vs each format's own reader.

    .venv/bin/python bench/scan_formats_speed.py          # ~1.3 GB under bench/.work, deleted after
    .venv/bin/python bench/scan_formats_speed.py --small  # 1/8 of the sizes

For each format, a file with large tensors is written by the real library, then timed and
measured (peak RSS of a fresh process) in the same run: ``bastion.scan.scan(digest=True)`` as
the catalog runs it (sniffing and the SHA-256 of the whole file included), Bastion's format
scanner alone, and the baseline that merely *parses* the file with the format's reference reader:
``onnx.load(..., load_external_data=False)``, safetensors' ``safe_open`` listing its tensors,
``gguf.GGUFReader`` (memory-mapped), ``h5py`` + ``json`` on a Keras ``.h5``'s ``model_config``.
The baselines check nothing; they show what reading costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "scan_formats_speed"
MB = 1 << 20

# VmHWM (peak RSS of this process image); ru_maxrss would carry the parent's over across exec.
MEASURE = textwrap.dedent("""
    import sys, time
    exec(sys.argv[1])  # imports, not timed
    start = time.perf_counter()
    exec(sys.argv[2])
    elapsed = time.perf_counter() - start
    status = open("/proc/self/status").read()
    peak_kb = int(status.split("VmHWM:")[1].split()[0])
    print(elapsed, peak_kb / 1024)
""")

# (imports, timed call) per tool. The catalog's scan also hashes every file (SHA-256, results are
# bound to content), so the format scanner alone is timed too.
BASTION = ("from bastion.scan import scan", "scan({path!r}, digest=True)")
SCANNER = (
    "import os, h5py\nfrom bastion.findings import Location\n"
    "from bastion.scan.formats import SCANNERS\n"
    "from bastion.scan.interface import Format, ScanLimits, Source",
    "p = {path!r}; list(SCANNERS[Format({fmt!r})].scan(Source(Location(p), os.path.getsize(p), "
    "lambda: open(p, 'rb')), ScanLimits()))",
)
FORMATS = {"onnx": "onnx", "safetensors": "safetensors", "gguf": "gguf", "keras-h5": "hdf5"}
BASELINES = {
    "onnx": ("import onnx", "onnx.load({path!r}, load_external_data=False)"),
    "safetensors": ("from safetensors import safe_open",
                    "with safe_open({path!r}, 'np') as f: list(f.keys())"),
    "gguf": ("import gguf", "r = gguf.GGUFReader({path!r}); len(r.fields); len(r.tensors)"),
    "keras-h5": ("import h5py, json",
                 "with h5py.File({path!r}) as f: json.loads(f.attrs['model_config'])"),
}


def build(scale: float) -> dict[str, Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    n = int(scale * 128 * MB)  # float32 elements: 512 MB at scale 1
    out = {}

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((n // 1024, 1024), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])] +
        [helper.make_node("Relu", ["y"], [f"r{i}"]) for i in range(2000)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n // 1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1024])], [weight])
    out["onnx"] = WORK / "model.onnx"
    onnx.save(helper.make_model(graph), out["onnx"])
    del weight, graph

    from safetensors.numpy import save_file

    out["safetensors"] = WORK / "model.safetensors"
    save_file({f"layer{i}.weight": np.ones(n // 512, np.float32) for i in range(512)},
              out["safetensors"])

    import gguf

    out["gguf"] = WORK / "model.gguf"
    writer = gguf.GGUFWriter(out["gguf"], "llama")
    writer.add_token_list([f"tok{i}" for i in range(150_000)])
    writer.add_token_scores([0.0] * 150_000)
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    writer.add_tensor("w", np.ones(n // 2, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import warnings

    import keras

    layers = [keras.Input((2048,))] + [keras.layers.Dense(2048) for _ in range(int(16 * scale)
                                                                             or 1)]
    out["keras-h5"] = WORK / "model.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras.Sequential(layers).save(out["keras-h5"])
    return out


def measure(setup: str, code: str) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", MEASURE, setup, code], capture_output=True,
                          text=True,
                          check=True, env={**os.environ, "KERAS_BACKEND": "torch"})
    seconds, peak = done.stdout.split()[-2:]
    return float(seconds), float(peak)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1/8 of the sizes")
    args = parser.parse_args()
    try:
        files = build(0.125 if args.small else 1.0)
        print(f"{'format':<13}{'size MB':>9}{'engine s':>10}{'scanner s':>11}{'peak MB':>9}"
              f"{'baseline s':>12}{'peak MB':>9}{'baseline/scanner':>18}")
        for fmt, path in files.items():
            ours = measure(BASTION[0], BASTION[1].format(path=str(path)))
            alone = measure(SCANNER[0], SCANNER[1].format(path=str(path), fmt=FORMATS[fmt]))
            base = measure(BASELINES[fmt][0], BASELINES[fmt][1].format(path=str(path)))
            print(f"{fmt:<13}{path.stat().st_size / MB:>9.0f}{ours[0]:>10.3f}{alone[0]:>11.3f}"
                  f"{max(ours[1], alone[1]):>9.0f}{base[0]:>12.3f}{base[1]:>9.0f}"
                  f"{base[0] / alone[0]:>17.1f}x")
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print("\nTimes exclude imports; peak MB is the whole process (imports included); the ratio "
          "is the baseline's time over the scanner's (>1: Bastion faster).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
