"""The encoder and decoder-step graphs converted to ONNX by jax2onnx, with tandem's names and
shape symbols, and the state layout that joins them."""

from __future__ import annotations

import contextlib
import importlib
import logging
import types
from pathlib import Path

import numpy as np
from keras import ops

from tandem.models import EncoderDecoder

# The shape symbols of the exported graphs: every input that has a batch or a source-length
# axis shares its symbol, so ONNX Runtime checks that memory and mask agree.
BATCH, SOURCE = "batch", "source_steps"
OPSET = 23
ENCODER_FILE, DECODER_FILE = "encoder.onnx", "decoder_step.onnx"
TOKENS_INPUT, SOURCE_INPUT = "decoder_inputs", "encoder_inputs"
PROBABILITIES, ATTENTION = "decoder_outputs", "attention_weights"


def export_graphs(model: EncoderDecoder, directory: Path) -> dict:
    """Write ENCODER_FILE and DECODER_FILE into `directory`; -> the manifest's description of
    both graphs and of the state that goes from one to the other.

    The graphs are the model's `encoder_model` and `decoder_model`, with two changes that
    leave their arithmetic as it is: both read ids (the one-hot expansion of the seed's
    graphs happens inside, as in its `fit_model`), and the decoder step reads one token per
    sequence and returns only what changes (its probabilities, the states it updates and,
    with attention, the attention weights): the inputs it only passes through (the encoder's
    memory and mask) are the runtime's to keep.
    """
    encoder, decoder = model.encoder_model, model.decoder_model
    state_inputs = decoder.inputs[1:]
    # The decoder graph returns each state input's new value at the same place, after the
    # probabilities; an output that is its input unchanged is memory, kept by the runtime.
    updated = [decoder.outputs[1 + i] is not tensor for i, tensor in enumerate(state_inputs)]
    attention = len(decoder.outputs) > 1 + len(state_inputs)
    state = [
        {
            "decoder_input": tensor.name,
            "encoder_output": tensor.name.replace("_input", ""),
            "decoder_output": tensor.name.replace("_input", "_output") if changes else None,
        }
        for tensor, changes in zip(state_inputs, updated, strict=True)
    ]

    def encode(source_ids):  # (batch, source_steps) -> the decoder's first states
        inputs = _one_hot(model, source_ids, model.dims.num_encoder_tokens)
        return _distinct(_as_list(encoder(inputs, training=False)))

    def step(tokens, *states):  # tokens (batch, 1), states -> probs (batch, 1, vocab), ...
        inputs = _one_hot(model, tokens, model.dims.num_decoder_tokens)
        outputs = _as_list(decoder([inputs, *states], training=False))
        new_states = [outputs[1 + i] for i, changes in enumerate(updated) if changes]
        return (outputs[0], *new_states, *outputs[1 + len(states) :])

    encoder_spec = [_input_spec(tensor, SOURCE_INPUT) for tensor in encoder.inputs]
    step_spec = [_input_spec(decoder.inputs[0], TOKENS_INPUT, steps=1)]
    step_spec += [_input_spec(tensor, tensor.name) for tensor in state_inputs]
    step_outputs = [PROBABILITIES] + [s["decoder_output"] for s in state if s["decoder_output"]]
    step_outputs += [ATTENTION] if attention else []
    encoder_outputs = [s["encoder_output"] for s in state]
    with _forward_scans():
        _convert(encode, encoder_spec, encoder_outputs, directory / ENCODER_FILE)
    with _unrolled(model):
        _convert(step, step_spec, step_outputs, directory / DECODER_FILE)
    return {
        "encoder": {"file": ENCODER_FILE, **_signature(directory / ENCODER_FILE)},
        "decoder_step": {"file": DECODER_FILE, **_signature(directory / DECODER_FILE)},
        "state": state,
        "decoder_probabilities": PROBABILITIES,
        "attention_weights": ATTENTION if attention else None,
        "opset": OPSET,
    }


def _one_hot(model: EncoderDecoder, ids, width: int):
    return ops.one_hot(ids, width) if model.one_hot else ids


def _distinct(outputs: list) -> tuple:
    """Outputs with a copy wherever one array is returned twice (the Transformer's empty
    caches): an ONNX value has one name."""
    return tuple(
        ops.copy(x) if any(x is y for y in outputs[:i]) else x for i, x in enumerate(outputs)
    )


def _as_list(outputs) -> list:
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]


def _input_spec(tensor, name: str, steps: int | None = None) -> dict:
    """A Keras input -> {name, dtype, shape} with tandem's symbols; ids where the graph reads
    one-hot vectors (the seed's), `steps` fixing the second axis when given."""
    shape = list(tensor.shape)
    dtype = str(tensor.dtype)
    if name in (SOURCE_INPUT, TOKENS_INPUT):
        shape, dtype = shape[:2], "int32"  # ids, not one-hot vectors
        if steps is not None:
            shape[1] = steps
    symbols = [BATCH if axis == 0 else SOURCE for axis in range(len(shape))]
    shape = [symbols[axis] if size is None else size for axis, size in enumerate(shape)]
    return {"name": name, "dtype": dtype, "shape": shape}


def _convert(fn, specs: list[dict], output_names: list[str], path: Path) -> None:
    import jax
    import jax2onnx

    inputs = [jax.ShapeDtypeStruct(tuple(s["shape"]), np.dtype(s["dtype"])) for s in specs]
    # onnx_ir warns of every value whose type it leaves to ONNX Runtime's inference.
    serde = logging.getLogger("onnx_ir.serde")
    level = serde.level
    serde.setLevel(logging.ERROR)
    try:
        jax2onnx.to_onnx(
            fn,
            inputs=inputs,
            input_names=[s["name"] for s in specs],
            output_names=output_names,
            model_name=path.stem,
            opset=OPSET,
            return_mode="file",
            output_path=str(path),
        )
    finally:
        serde.setLevel(level)
    _inline_weights(path)


def _inline_weights(path: Path) -> None:
    """Move the weights that jax2onnx writes beside a large graph (PATH.data) into it: one
    file per graph to ship (ONNX's protobuf holds up to 2 GiB)."""
    import onnx

    external = path.with_name(path.name + ".data")
    if not external.exists():
        return
    graph = onnx.load(str(path))  # reads the external weights too
    onnx.save_model(graph, str(path), save_as_external_data=False)
    external.unlink()


def _signature(path: Path) -> dict:
    """The inputs and outputs of the ONNX graph at `path`, in order, with their shapes."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        return {"name": value.name, "dtype": dtype, "shape": shape}

    return {
        "inputs": [describe(value) for value in graph.input],
        "outputs": [describe(value) for value in graph.output],
    }


@contextlib.contextmanager
def _unrolled(model: EncoderDecoder):
    """The decoder's recurrent layers unrolled while the one-step graph is converted: the same
    arithmetic as their loop of one step, without an ONNX Loop around it (slow to run)."""
    layers = [
        layer
        for name, layer in model.layers.items()
        if name.startswith("decoder_") and hasattr(layer, "unroll")
    ]
    for layer in layers:
        layer.unroll = True
    try:
        yield
    finally:
        for layer in layers:
            layer.unroll = False


@contextlib.contextmanager
def _forward_scans():
    """Keras's JAX recurrent loop with every reverse scan (a bidirectional encoder's backward
    half) run as a forward scan over the reversed sequence, which jax2onnx can convert: the
    same arithmetic, in the same order."""
    import jax

    # The module, not the function of the same name that keras.src.backend.jax exports.
    rnn = importlib.import_module("keras.src.backend.jax.rnn")
    lax = rnn.lax

    def scan(f, init, xs, reverse=False, **kwargs):
        if not reverse:
            return lax.scan(f, init, xs, **kwargs)
        flip = lambda tree: jax.tree_util.tree_map(lambda x: jax.numpy.flip(x, 0), tree)  # noqa: E731
        carry, ys = lax.scan(f, init, flip(xs), **kwargs)
        return carry, flip(ys)

    rnn.lax = types.SimpleNamespace(**{**vars(lax), "scan": scan})
    try:
        yield
    finally:
        rnn.lax = lax
