"""The three graphs as data: inputs, outputs, layers, what they share, and the hand-off map."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import keras


@dataclass(frozen=True)
class Port:
    """One input or output of a graph."""

    index: int
    name: str  # an input's name; an output's producing layer and output index: `layer[i]`
    shape: list  # None (any size) written as "batch" first, "None" elsewhere
    dtype: str


@dataclass(frozen=True)
class Graph:
    """One of the three graphs, read from the Keras model."""

    name: str
    inputs: list[Port]
    outputs: list[Port]
    layers: list[str]  # the layers it calls, input layers excluded
    parameters: int


@dataclass(frozen=True)
class Handoff:
    """Where a value goes next: `source` graph's output `output` -> `target`'s input `input`."""

    source: str
    output: int
    output_name: str
    target: str
    input: int
    input_name: str
    shape: list
    passthrough: bool = False  # the decoder returns its input unchanged (the same tensor)


@dataclass(frozen=True)
class Graphs:
    """The graphs, the layers and weights they share (by identity), and the hand-off map."""

    graphs: list[Graph]
    shared_layers: dict[str, list[str]]  # layer name -> the graphs that call that object
    shared_weights: dict[str, list[str]]  # weight path -> the graphs that hold that variable
    handoff: list[Handoff] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _shape(tensor) -> list:
    dims = ["None" if size is None else size for size in tensor.shape]
    return ["batch", *dims[1:]] if dims and dims[0] == "None" else dims


def _output_name(tensor) -> str:
    layer, _, index = tensor._keras_history
    return f"{layer.name}[{index}]"


def _layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def describe(model: keras.Model) -> Graph:
    """One graph's inputs, outputs (names, shapes, dtypes), layers and parameter count."""
    return Graph(
        name=model.name,
        inputs=[Port(i, t.name, _shape(t), str(t.dtype)) for i, t in enumerate(model.inputs)],
        outputs=[
            Port(i, _output_name(t), _shape(t), str(t.dtype)) for i, t in enumerate(model.outputs)
        ],
        layers=[layer.name for layer in _layers(model)],
        parameters=int(sum(int(w.numpy().size) for w in model.weights)),
    )


def _shared(models: dict[str, keras.Model]) -> tuple[dict, dict]:
    """Layers and weights that more than one graph holds, matched by object identity."""
    layers: dict[int, tuple[str, list[str]]] = {}
    weights: dict[int, tuple[str, list[str]]] = {}
    for graph, model in models.items():
        for layer in _layers(model):
            layers.setdefault(id(layer), (layer.name, []))[1].append(graph)
        for weight in model.weights:
            weights.setdefault(id(weight), (weight.path, []))[1].append(graph)
    pick = lambda table: {name: graphs for name, graphs in table.values() if len(graphs) > 1}  # noqa: E731
    return pick(layers), pick(weights)


def _compatible(a, b) -> bool:
    """Two symbolic tensors that one may stand for the other: same rank, dtype, known sizes."""
    if len(a.shape) != len(b.shape) or str(a.dtype) != str(b.dtype):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a.shape, b.shape, strict=True))


def handoff_map(encoder_model: keras.Model, decoder_model: keras.Model) -> list[Handoff]:
    """Read the hand-off from the graphs as a decoding loop uses them.

    The loop feeds `[tokens] + encoder outputs` to the decoder and then `[tokens] + the
    decoder's outputs after its probabilities`; the map pairs each value with the decoder input
    it lands on (by name), checking rank, dtype and sizes, and marks decoder outputs that are
    their input returned unchanged. Extra decoder outputs (attention weights) go nowhere.

    Raises:
        ValueError: when the encoder's outputs do not fit the decoder's state inputs.
    """
    state_inputs = decoder_model.inputs[1:]
    if len(encoder_model.outputs) != len(state_inputs):
        raise ValueError(
            f"encoder_model has {len(encoder_model.outputs)} outputs, decoder_model "
            f"{len(state_inputs)} state inputs"
        )
    handoff = []
    for index, (out, inp) in enumerate(zip(encoder_model.outputs, state_inputs, strict=True)):
        if not _compatible(out, inp):
            raise ValueError(f"encoder output {index} {_shape(out)} does not fit {inp.name}")
        handoff.append(
            Handoff(
                "encoder_model",
                index,
                _output_name(out),
                "decoder_model",
                index + 1,
                inp.name,
                _shape(inp),
            )
        )
    new_states = decoder_model.outputs[1 : 1 + len(state_inputs)]
    for index, (out, inp) in enumerate(zip(new_states, state_inputs, strict=True)):
        if not _compatible(out, inp):
            raise ValueError(f"decoder output {index + 1} {_shape(out)} does not fit {inp.name}")
        handoff.append(
            Handoff(
                "decoder_model",
                index + 1,
                _output_name(out),
                "decoder_model",
                index + 1,
                inp.name,
                _shape(inp),
                passthrough=out is inp,
            )
        )
    token = decoder_model.inputs[0]
    choice = f"the token chosen from {_output_name(decoder_model.outputs[0])}"
    handoff.append(
        Handoff("decoder_model", 0, choice, "decoder_model", 0, token.name, _shape(token))
    )
    return handoff


def read_graphs(training_model, encoder_model, decoder_model) -> Graphs:
    """Describe the three graphs, what they share and the hand-off between them."""
    models = {m.name: m for m in (training_model, encoder_model, decoder_model)}
    shared_layers, shared_weights = _shared(models)
    return Graphs(
        graphs=[describe(m) for m in models.values()],
        shared_layers=shared_layers,
        shared_weights=shared_weights,
        handoff=handoff_map(encoder_model, decoder_model),
    )
