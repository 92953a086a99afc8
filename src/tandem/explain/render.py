"""An `Explanation` as a terminal summary, JSON, DOT diagrams and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import subprocess
from collections.abc import Sequence

from tandem.explain import Explanation


def to_json(explanation: Explanation) -> str:
    return json.dumps(explanation.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)


def _ports(ports) -> str:
    return ", ".join(f"{p.name} {tuple(p.shape)} {p.dtype}" for p in ports)


def to_text(explanation: Explanation) -> str:
    """The terminal summary: graphs, shared layers, hand-off, the steps, the outcome."""
    graphs, trace = explanation.graphs, explanation.trace
    lines = [f"model: {explanation.model_dir} ({explanation.family})", "", "graphs:"]
    for graph in graphs.graphs:
        lines += [
            f"  {graph.name}: {graph.parameters} parameters, layers {', '.join(graph.layers)}",
            f"    inputs:  {_ports(graph.inputs)}",
            f"    outputs: {_ports(graph.outputs)}",
        ]
    lines.append("shared layers (same objects):")
    lines += [f"  {name}: {', '.join(used)}" for name, used in graphs.shared_layers.items()]
    lines.append(f"shared weights: {len(graphs.shared_weights)} variables")
    lines += ["", "hand-off:"]
    for h in graphs.handoff:
        kept = " (unchanged)" if h.passthrough else ""
        lines.append(
            f"  {h.source} out {h.output} {h.output_name} -> {h.target} in {h.input} "
            f"{h.input_name}{kept}"
        )
    lines += ["", f"decode of {trace.source!r}:"]
    for step in trace.steps:
        top = " ".join(f"{token!r}:{p:.3f}" for token, p in step.top)
        lines.append(f"  {step.index:3d} in {step.token_in!r:10} -> {step.chosen!r:8} top {top}")
    lines.append(f"output: {trace.output!r} (stopped: {trace.stop})")
    forcing = trace.teacher_forcing
    lines.append(f"training feeds: {' '.join(forcing['training_decoder_inputs'])}")
    lines.append(f"inference feeds back: {' '.join(forcing['inference_fed_back'])}")
    if trace.beam is not None:
        lines += ["", f"beam ({len(trace.beam[0].open) if trace.beam else 0}):"]
        for step in trace.beam:
            kept = "; ".join(
                f"{text!r} {score:.3f}" for text, score in step.open if score is not None
            )
            ended = "".join(f" | ended {text!r} {score:.3f}" for text, score in step.finished)
            lines.append(f"  {step.index:3d} {kept}{ended}")
        lines.append(f"beam output: {trace.beam_output!r}")
    lines += ["", "code:", explanation.code]
    return "\n".join(lines)


def dot_texts(models, explanation: Explanation | None = None) -> dict[str, str]:
    """Each graph's DOT text, by graph name (`keras.utils.model_to_dot`), and with an
    explanation its hand-off map's, as HANDOFF."""
    import keras

    # At 72 dpi Graphviz's SVG is drawn at its viewBox's scale (Keras's default of 200 scales
    # the drawing but not the viewBox, so a browser fitting it to the page crops it).
    dots = {
        model.name: keras.utils.model_to_dot(
            model, show_shapes=True, show_dtype=True, dpi=72
        ).to_string()
        for model in models
    }
    if explanation is not None:
        dots[HANDOFF] = handoff_dot(explanation.graphs.handoff)
    return dots


HANDOFF = "handoff"  # the name of the hand-off map's drawing among the diagrams


def handoff_dot(handoff) -> str:
    """The hand-off map as a DOT graph: the encoder's outputs into the decoder's inputs at step
    t, the decoder's outputs at step t into its inputs at step t + 1 (the chosen token dashed)."""

    def node(graph: str, side: str, index: int, name: str, step: str = "") -> str:
        key = f"{graph}_{side}{index}{step.replace(' ', '')}"
        nodes[key] = f"{graph}{step} {side} {index}\\n{name}"
        return key

    nodes: dict[str, str] = {}
    edges = []
    for h in handoff:
        from_step = " (t)" if h.source == "decoder_model" else ""
        to_step = " (t+1)" if h.source == "decoder_model" else " (t)"
        start = node(h.source, "out", h.output, h.output_name, from_step)
        end = node(h.target, "in", h.input, h.input_name, to_step)
        style = ' [style=dashed, label="argmax"]' if "token chosen" in h.output_name else ""
        style = ' [label="unchanged"]' if h.passthrough else style
        edges.append(f'  "{start}" -> "{end}"{style};')
    lines = ["digraph handoff {", "  rankdir=LR;", '  node [shape=box, fontname="sans-serif"];']
    lines += [f'  "{key}" [label="{label}"];' for key, label in nodes.items()]
    return "\n".join(lines + edges + ["}"]) + "\n"


def render_svgs(dots: dict[str, str]) -> dict[str, str] | None:
    """Each DOT text drawn as SVG by Graphviz's `dot`; None when `dot` is not on PATH."""
    program = shutil.which("dot")
    if program is None:
        return None
    return {
        name: subprocess.run(
            [program, "-Tsvg"], input=text, capture_output=True, text=True, check=True
        ).stdout
        for name, text in dots.items()
    }


def render_pngs(dots: dict[str, str]) -> dict[str, bytes] | None:
    """Each DOT text drawn as PNG by Graphviz's `dot`; None when `dot` is not on PATH."""
    program = shutil.which("dot")
    if program is None:
        return None
    return {
        name: subprocess.run(
            [program, "-Tpng"], input=text.encode("utf-8"), capture_output=True, check=True
        ).stdout
        for name, text in dots.items()
    }


def heatmap_png(explanation: Explanation) -> bytes | None:
    """The attention weights (generated tokens x source tokens) as a PNG; None without them."""
    trace = explanation.trace
    if not trace.attention:
        return None
    return attention_png(
        trace.source_tokens, [step.chosen for step in trace.steps], trace.attention
    )


def attention_png(
    source_tokens: Sequence[str],
    generated_tokens: Sequence[str],
    weights: Sequence[Sequence[float]],
) -> bytes:
    """Attention weights (generated steps, source steps) drawn as a heatmap, as PNG bytes.

    Rows past `source_tokens` (padding) are cut off. Uses matplotlib's Agg canvas directly,
    so the caller's pyplot backend stays as it was (training draws these between epochs).

    Example:
        >>> png = attention_png(["a", "b"], ["x", "<end>"], [[0.9, 0.1], [0.2, 0.8]])
        >>> png[:4]
        b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sources = len(source_tokens)
    rows = [list(row[: max(1, sources)]) for row in weights]
    figure = Figure(figsize=(1 + 0.4 * sources, 1 + 0.35 * len(rows)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(rows, cmap="viridis", aspect="auto", vmin=0.0)
    axes.set_xticks(range(sources), list(source_tokens))
    axes.set_yticks(range(len(rows)), list(generated_tokens))
    axes.set_xlabel("source")
    axes.set_ylabel("generated")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _data_uri(kind: str, payload: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(payload).decode('ascii')}"


def _table(header: list[str], rows: list[list]) -> str:
    cells = lambda tag, row: "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in row)  # noqa: E731
    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><tr>{cells('th', header)}</tr>{body}</table>"


def to_html(explanation: Explanation, svgs: dict[str, str] | None, dots: dict[str, str]) -> str:
    """One self-contained page: images inline as data: URIs, no scripts, no network."""
    graphs, trace = explanation.graphs, explanation.trace
    parts = [f"<h1>tandem explain: {html.escape(explanation.model_dir)}</h1>", "<h2>Graphs</h2>"]
    parts.append(
        _table(
            ["graph", "inputs", "outputs", "layers", "parameters"],
            [[g.name, _ports(g.inputs), _ports(g.outputs), ", ".join(g.layers), g.parameters]
             for g in graphs.graphs],
        )
    )  # fmt: skip
    parts.append(
        _table(
            ["shared layer", "graphs"], [[n, ", ".join(u)] for n, u in graphs.shared_layers.items()]
        )
    )
    parts.append("<h2>Diagrams</h2>")
    for name in dots:
        if name != HANDOFF:
            parts.append(f"<h3>{name}</h3>" + _diagram(name, svgs, dots))
    parts.append("<h2>Hand-off</h2>")
    if HANDOFF in dots:
        parts.append(_diagram(HANDOFF, svgs, dots))
    parts.append(_handoff_table(graphs.handoff))
    parts += [f"<h2>Decode of {html.escape(repr(trace.source))}</h2>", _steps_table(trace)]
    parts.append(f"<p>output: {html.escape(repr(trace.output))}, stopped: {trace.stop}</p>")
    forcing = trace.teacher_forcing
    parts.append(
        _table(
            ["", "decoder inputs"],
            [["training (teacher forcing)", " ".join(forcing["training_decoder_inputs"])],
             ["inference (fed back)", " ".join(forcing["inference_fed_back"])]],
        )
    )  # fmt: skip
    png = heatmap_png(explanation)
    if png is not None:
        uri = _data_uri("image/png", png)
        parts.append(f'<h2>Attention</h2><img alt="attention weights" src="{uri}">')
    if trace.beam is not None:
        parts += [f"<h2>Beam</h2><p>output: {html.escape(repr(trace.beam_output))}</p>"]
        rows = [
            [s.index, "; ".join(f"{t!r} {v:.3f}" for t, v in s.open if v is not None),
             ", ".join(map(str, s.parents)), "; ".join(f"{t!r} {v:.3f}" for t, v in s.finished)]
            for s in trace.beam
        ]  # fmt: skip
        parts.append(_table(["step", "open (kept)", "from beam", "ended"], rows))
    parts += ["<h2>Code</h2>", f"<pre>{html.escape(explanation.code)}</pre>"]
    style = (
        "body{font-family:sans-serif;max-width:80em;margin:1em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
        # Graphviz draws at its own scale: fit each diagram to the page, whole.
        "img{max-width:100%;height:auto}img.diagram{max-height:36em;object-fit:contain}"
        "pre{background:#f4f4f4;padding:.5em;overflow:auto}"
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>tandem explain</title>'
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def _diagram(name: str, svgs: dict[str, str] | None, dots: dict[str, str]) -> str:
    """A drawing inline, or its DOT text where Graphviz did not draw it."""
    if svgs is None:
        return f"<pre>{html.escape(dots[name])}</pre>"
    uri = _data_uri("image/svg+xml", svgs[name].encode("utf-8"))
    return f'<img class="diagram" alt="{name}" src="{uri}">'


def _handoff_table(handoff) -> str:
    rows = [
        [f"{h.source}[{h.output}] {h.output_name}", f"{h.target}[{h.input}] {h.input_name}",
         tuple(h.shape), "unchanged" if h.passthrough else ""]
        for h in handoff
    ]  # fmt: skip
    return _table(["from", "to", "shape", ""], rows)


def _steps_table(trace) -> str:
    rows = [
        [s.index, s.token_in, " ".join(f"{t!r}:{p:.3f}" for t, p in s.top), s.chosen,
         " ".join(f"{n}={v:.2f}" for n, v in s.state_norms.items())]
        for s in trace.steps
    ]  # fmt: skip
    return _table(["step", "fed in", "top 5", "chosen", "state norms"], rows)


def save(explanation: Explanation, models, directory) -> bool:
    """Write explain.json, explain.txt, explain.html, each graph's and the hand-off map's .dot
    and, when Graphviz's `dot` is on PATH, its .svg and .png (and attention.png for attention models) into
    `directory`.
    Returns whether `dot` drew the diagrams."""
    from pathlib import Path

    from tandem.files import write_atomically, write_text_atomically

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dots = dot_texts(models, explanation)
    svgs = render_svgs(dots)
    write_text_atomically(directory / "explain.json", to_json(explanation) + "\n")
    write_text_atomically(directory / "explain.txt", to_text(explanation) + "\n")
    write_text_atomically(directory / "explain.html", to_html(explanation, svgs, dots))
    pngs = render_pngs(dots) if svgs is not None else None
    for name, text in dots.items():
        write_text_atomically(directory / f"{name}.dot", text)
        if svgs is not None:
            write_text_atomically(directory / f"{name}.svg", svgs[name])
            write_atomically(
                directory / f"{name}.png", lambda path, name=name: path.write_bytes(pngs[name])
            )
    png = heatmap_png(explanation)
    if png is not None:
        (directory / "attention.png").write_bytes(png)
    return svgs is not None
