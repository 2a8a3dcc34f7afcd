#!/usr/bin/env python3
"""Build tiny ONNX test fixtures with onnx.helper (no torch needed).

Writes, under tests/fixtures/zoo/ (relative to the repository root), one
model folder each (the model.yaml manifests beside them are written by hand):

  typed/typed.onnx       one input `in_<t>` [batch,3] -> Identity -> `out_<t>` per
                   element type t in float, double, float16, int8, int16,
                   int32, int64, uint8, uint16, uint32, uint64, bool, string
  typed-bf16/typed_bf16.onnx  in_bfloat16 [batch,3] -> Identity -> out_bfloat16
  add/add.onnx     x FLOAT [batch,4] -> y = x + 1 (Add with an initializer)

All models use opset 17 and IR version 8 so that older runtimes load them.
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
PRODUCER = "effserve-zoo-fixtures"

TYPED = [
    ("float", TensorProto.FLOAT),
    ("double", TensorProto.DOUBLE),
    ("float16", TensorProto.FLOAT16),
    ("int8", TensorProto.INT8),
    ("int16", TensorProto.INT16),
    ("int32", TensorProto.INT32),
    ("int64", TensorProto.INT64),
    ("uint8", TensorProto.UINT8),
    ("uint16", TensorProto.UINT16),
    ("uint32", TensorProto.UINT32),
    ("uint64", TensorProto.UINT64),
    ("bool", TensorProto.BOOL),
    ("string", TensorProto.STRING),
]

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(SCRIPT_DIR))
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "zoo")


def finish(graph, path):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)
    # Re-load and check the file as written.
    onnx.checker.check_model(onnx.load(path), full_check=True)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def identity_graph(name, types, width):
    inputs, outputs, nodes = [], [], []
    for tname, elem in types:
        i, o = f"in_{tname}", f"out_{tname}"
        inputs.append(helper.make_tensor_value_info(i, elem, ["batch", width]))
        outputs.append(helper.make_tensor_value_info(o, elem, ["batch", width]))
        nodes.append(helper.make_node("Identity", [i], [o], name=f"identity_{tname}"))
    return helper.make_graph(nodes, name, inputs, outputs)


def add_graph():
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="one")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    node = helper.make_node("Add", ["x", "one"], ["y"], name="add_one")
    return helper.make_graph([node], "add_one", [x], [y], initializer=[one])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)

    finish(identity_graph("typed_identity", TYPED, 3), os.path.join(out, "typed", "typed.onnx"))
    finish(
        identity_graph("typed_identity_bf16", [("bfloat16", TensorProto.BFLOAT16)], 3),
        os.path.join(out, "typed-bf16", "typed_bf16.onnx"),
    )
    finish(add_graph(), os.path.join(out, "add", "add.onnx"))


if __name__ == "__main__":
    main()
