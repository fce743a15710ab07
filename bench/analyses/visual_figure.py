"""The LFM paper's Visualization figure, regenerated from a config (``figures/visual.json``).

Left: Grad-CAM of two detectors (the paper: NPR and LFM) on one fake and one real image, with the true
label and each predicted label. Right: t-SNE of their pooled features on two generators (the paper:
DALL-E and VQ-Diffusion), real and fake coloured, each panel captioned with its silhouette and 10-NN
accuracy. With the paper's suites under the data root it uses the paper's generators and each detector's
default weights; without them, the config's demo generators and the bundled demo weights, and the figure
says so in its footer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bench.errors import BenchError


def load_config(path: str | Path | None = None) -> dict:
    if path is None:
        text = resources.files("bench.analyses").joinpath("figures/visual.json").read_text()
    else:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise BenchError(f"cannot read figure config {path}: {error.strerror}") from error
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise BenchError(f"figure config {path or 'visual.json'} is not valid JSON: {error}") from error
    for key in ("detectors", "paper", "demo"):
        if key not in config:
            raise BenchError(f"figure config {path or 'visual.json'} has no {key!r}")
    if len(config["paper"]["tsne"]) < 1 or len(config["demo"]["tsne"]) < 1:
        raise BenchError("a figure config needs at least one t-SNE generator per mode")
    return config


def _generator_files(suite_name: str, generator: str, data_root: Path):
    """The generator's files when its suite is on disk, else None."""
    from bench.engine.suites import discover, resolve_suites

    resolved = resolve_suites(suite_name, data_root)[0]
    if not resolved.exists:
        return None
    for found in discover(resolved.root, resolved.suite):
        if found.name == generator:
            return found
    return None


def paper_data_present(config: dict, data_root: Path) -> bool:
    wanted = [config["paper"]["cam"], *config["paper"]["tsne"]]
    return all(_generator_files(w["suite"], w["generator"], data_root) is not None for w in wanted)


@dataclass
class VisualFigure:
    figure: object
    document: dict = field(default_factory=dict)


def build_visual(
    config: dict, *, data_root: Path, weights: str | None = None, results: str | None = None,
    device: str = "auto", fake: Path | None = None, real: Path | None = None, force_demo: bool = False,
    seed: int = 0, method: str | None = None, limit: int | None = None,
) -> VisualFigure:
    from bench.analyses.embeddings import compute_embeddings
    from bench.analyses.explain import explain_images
    from bench.analyses.separation import separation, tsne_2d
    from bench.engine.config import EvalConfig
    from bench.engine.evaluation import select_suites, weights_per_detector
    from bench.engine.inference import pick_device
    from bench.engine.store import ResultsStore
    from bench.engine.suites import resolve_suites
    from detectors import get_detectors, load_detector

    demo = force_demo or not paper_data_present(config, data_root)
    mode = config["demo" if demo else "paper"]
    suite_names = list(dict.fromkeys([mode["cam"]["suite"], *(t["suite"] for t in mode["tsne"])]))
    detectors = get_detectors(",".join(config["detectors"]))
    chosen = weights_per_detector(weights, detectors)  # a bad --weights is exit 2 before the data is built
    selection = select_suites(",".join(suite_names), data_root)  # builds the demo data when needed
    default = mode.get("weights")
    loaded = [load_detector(d, w or default) for d, w in zip(detectors, chosen)]
    names = [item.detector.name for item in loaded]
    method = method or config.get("method", "gradcam")

    cam_files = _generator_files(mode["cam"]["suite"], mode["cam"]["generator"], selection.data_root)
    if cam_files is None and (fake is None or real is None):
        raise BenchError(f"{mode['cam']['suite']}/{mode['cam']['generator']} not found under {selection.data_root}")
    fake = Path(fake) if fake else cam_files.fake[0]
    real = Path(real) if real else cam_files.real[0]
    # a config names suites by name or by folder: each spec -> the suite it resolves to
    resolved = {spec: resolve_suites(spec, selection.data_root)[0].suite for spec in suite_names}
    cam_suite = resolved[mode["cam"]["suite"]]
    explanations = list(explain_images(loaded, [fake, real], resize=cam_suite.resize, method=method,
                                       device=pick_device(device)))
    for explanation in explanations:
        if explanation.reasons:
            raise BenchError(f"{explanation.path}: {'; '.join(f'{k}: {v}' for k, v in explanation.reasons.items())}")

    eval_config = EvalConfig(data_root=str(selection.data_root), output=results, device=device, limit=limit,
                             progress=True)
    embeddings = compute_embeddings(loaded, selection.suites, config=eval_config,
                                    generators=sorted({t["generator"] for t in mode["tsne"]}),
                                    store=ResultsStore(results))
    by_key = {(e.detector, e.suite, e.generator): e for e in embeddings}
    tsne_panels, records = [], []
    for row in mode["tsne"]:
        for name in names:
            embedding = by_key[(name, resolved[row["suite"]].name, row["generator"])]
            numbers = separation(embedding.features, embedding.labels, seed=seed)
            points = tsne_2d(embedding.features, seed=seed)
            tsne_panels.append((row, name, points, embedding.labels, numbers))
            records.append({"detector": name, "suite": resolved[row["suite"]].name, "generator": row["generator"],
                            **numbers.as_dict()})

    if demo:
        from bench.demo import DEMO_NOTE

        note = (f"Demo: {DEMO_NOTE}; weights {', '.join(item.weights.label for item in loaded)}. "
                f"The paper's figure uses DALL-E and VQ-Diffusion, not found under {selection.data_root}.")
    else:
        note = f"Weights: {', '.join(item.weights.label for item in loaded)}."
    figure = draw_visual(loaded, explanations, tsne_panels, mode, method, note, demo)
    document = {
        "figure": "visual", "demo": demo, "note": note, "method": method, "seed": seed,
        "detectors": {item.detector.name: {"weights": item.weights.label, "sha256": item.weights.sha256,
                                           "cam_target_layer": item.detector.cam_target_layer,
                                           "feature_layer": item.detector.feature_layer} for item in loaded},
        "cam_images": [{"path": str(e.path), "truth": e.truth,
                        "predictions": {n: {"logit": m.logit, "prob": m.prob} for n, m in e.maps.items()}}
                       for e in explanations],
        "tsne": records,
    }
    return VisualFigure(figure, document)


def draw_visual(loaded, explanations, tsne_panels, mode, method, note, demo):
    from matplotlib.figure import Figure

    from bench.outputs.drawing import Verdict, draw_cam_row, draw_tsne, overlay

    names = [item.detector.name for item in loaded]
    display = {item.detector.name: item.detector.display_name for item in loaded}
    rows = mode["tsne"]
    figure = Figure(figsize=(4.2 + 2.9 * len(names) + 2.7 * len(names), 6.5), layout="constrained")
    body, footer = figure.subfigures(2, 1, height_ratios=[14, 1])
    left, right = body.subfigures(1, 2, width_ratios=[1 + len(names), len(names)], wspace=0.03)

    cam_axes = left.subplots(len(explanations), 1 + len(names), squeeze=False)
    for r, explanation in enumerate(explanations):
        first = explanation.maps[names[0]]
        overlays = [overlay(explanation.maps[n].pixels, explanation.maps[n].cam) for n in names]
        verdicts = [Verdict(display[n], explanation.maps[n].prob) for n in names]
        draw_cam_row(cam_axes[r], first.pixels, overlays, explanation.truth, verdicts,
                     column_titles=r == len(explanations) - 1)
    left.suptitle(f"{method.replace('gradcam', 'Grad-CAM')} visualisation ({mode['cam']['suite']}/"
                  f"{mode['cam']['generator']})", fontsize=12)

    tsne_axes = right.subplots(len(rows), len(names), squeeze=False)
    for row, name, points, labels, numbers in tsne_panels:
        r, c = rows.index(row), names.index(name)
        ax = tsne_axes[r][c]
        caption = []
        if numbers.silhouette is not None:
            caption.append(f"silhouette {numbers.silhouette:.2f}")
        if numbers.knn_accuracy is not None:
            caption.append(f"{numbers.knn_k}-NN {100 * numbers.knn_accuracy:.0f}% ({numbers.folds}-fold)")
        draw_tsne(ax, points, labels, title=", ".join(caption), legend=r == 0 and c == len(names) - 1)
        if c == len(names) - 1:
            ax.yaxis.set_label_position("right")
            ax.set_ylabel(row.get("label", row["generator"]), fontsize=11, rotation=270, labelpad=14)
        if r == len(rows) - 1:
            ax.set_xlabel(f"TSNE-x1\n{display[name]}", fontsize=10)
    right.suptitle("t-SNE of the pooled features", fontsize=12)
    footer.text(0.01, 0.75, "Grad-CAM frames: solid red = true fake, dashed gold = true real; a red caption = a wrong "
                "prediction (p = the detector's probability of fake). t-SNE captions: silhouette and k-NN accuracy "
                "(k and folds as used) in the original feature space.", fontsize=8, color="dimgray", va="center")
    footer.text(0.01, 0.25, note, fontsize=8, color="darkred" if demo else "dimgray", va="center")
    return figure


def write_visual_figure(name: str = "visual", *, output: str | Path = "figures", config: str | None = None,
                        data_root: str | None = None, weights: str | None = None, results: str | None = None,
                        device: str = "auto", fake: str | None = None, real: str | None = None,
                        demo: bool = False, seed: int = 0, method: str | None = None,
                        limit: int | None = None) -> tuple[dict, list[Path]]:
    """Regenerate the paper's Visualization figure into `output` as `<name>.pdf`, `.png` and `.json`;
    returns the figure's numbers (the JSON's content) and the files written."""
    from bench.engine.store import atomic_write_json, json_safe
    from bench.engine.suites import default_data_root
    from bench.outputs.drawing import save

    built = build_visual(load_config(config), data_root=Path(data_root) if data_root else default_data_root(),
                         weights=weights, results=results, device=device, fake=fake and Path(fake),
                         real=real and Path(real), force_demo=demo, seed=seed, method=method, limit=limit)
    output = Path(output)
    pdf = save(built.figure, output / f"{name}.pdf")
    png = save(built.figure, output / f"{name}.png", dpi=130)
    document = json_safe(built.document)
    atomic_write_json(output / f"{name}.json", document)
    return document, [pdf, png, output / f"{name}.json"]
