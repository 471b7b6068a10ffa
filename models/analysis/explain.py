"""``impasto explain METHOD``: CNN analysis and visualisation figures (CS231n lecture 12).

Each method is registered as ``name -> (add_arguments(subparser), run(args) -> figure path)``:
the classifier-based ones here, the optimisation-based ones (inversion, DeepDream, texture, Gatys)
from :mod:`impasto.models.analysis.explain_optim`. Both build on
:mod:`impasto.models.analysis.cli_common`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from impasto.core.errors import ImpastoError
from impasto.models.analysis import explain_optim
from impasto.models.analysis.cli_common import (
    NON_NEGATIVE_FLOAT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    Methods,
    Parser,
    Report,
    check_output_path,
    common_arguments,
)
from impasto.models.analysis.errors import AnalysisError

# ------------------------------------------------------------------------------------ plumbing

def classifier_arguments(p: argparse.ArgumentParser, *, target: bool = True, layer: bool = False,
                         neuron: bool = False):
    p.add_argument("--model", default="efficientnet-lite0",
                   help="efficientnet-lite0 (default, offline) or a torchvision classifier name")
    p.add_argument("--weights", help="local weights file for a torchvision --model")
    if target:
        p.add_argument("--target", help="ImageNet class index or name (default: the predicted class)")
    if layer or neuron:
        p.add_argument("--layer", help="layer name, e.g. blocks.5 or conv_head (EfficientNet), layer4 (ResNet)")
    if neuron:
        p.add_argument("--channel", type=int, help="with --layer: explain this channel (a neuron) instead of a class")


def load_model(args):
    from impasto.models.analysis.classifiers import load_classifier

    torch.manual_seed(args.seed)
    model = load_classifier(args.model, args.weights)
    args.size = args.size or model.input_size
    return model


def load_batch(args, *, default=None, limit: int | None = 6):
    from impasto.models.analysis.images import batch, load_images

    images = load_images(args.image, default=default, limit=limit)
    return images, batch(images, args.size)


def report_predictions(report: Report, model, names, x):
    from impasto.models.analysis.classifiers import format_top_k, top_k

    preds = top_k(model, x, 5)
    for name, p in zip(names, preds):
        report(f"{name}: top-5 {format_top_k(p)}")
    return preds


def targets_for(args, preds) -> list[int]:
    """``--target`` for every image, or each image's own top-1 class."""
    from impasto.models.analysis.classifiers import resolve_class

    if getattr(args, "target", None) is not None:
        return [resolve_class(args.target)] * len(preds)
    return [p[0][0] for p in preds]


def neuron_or_class(args, target_index: int):
    from impasto.models.analysis.objectives import Neuron

    if getattr(args, "channel", None) is None:
        return target_index
    if not args.layer:
        raise AnalysisError("--channel needs --layer")
    return Neuron(args.layer, args.channel)


def describe(target) -> str:
    from impasto.models.analysis.classifiers import class_name
    from impasto.models.analysis.objectives import Neuron

    if isinstance(target, Neuron):
        return f"{target.layer} channel {target.channel}"
    return f"{class_name(target)} ({target})"


# ------------------------------------------------------------------------------------- methods

def _filters_args(p):
    classifier_arguments(p, target=False, layer=True)
    p.add_argument("--max-filters", type=POSITIVE_INT, default=64)


def run_filters(args) -> Path:
    from impasto.models.analysis.figures import grid_figure
    from impasto.models.analysis.filters import conv_filters, first_conv
    from impasto.models.analysis.hooks import layer_name, resolve_layer

    report = Report()
    model = load_model(args)
    conv = resolve_layer(model, args.layer) if args.layer else first_conv(model)
    w = conv_filters(model, conv, max_filters=args.max_filters)
    name = layer_name(model, conv)
    report(f"{args.model} {name}: {tuple(conv.weight.shape)} weights, showing {w.shape[0]} filters "
           "(each normalised to its own min..max)")
    if w.shape[1] == 3:
        fig = grid_figure(list(w), ncols=8, title=f"{args.model} {name}: {w.shape[0]} RGB filters "
                                                     f"{w.shape[-2]}x{w.shape[-1]}", tile_size=0.9)
    else:
        tiles = [w[f, c] for f in range(min(w.shape[0], 16)) for c in range(w.shape[1])]
        fig = grid_figure(tiles, ncols=w.shape[1], tile_size=0.5,
                          row_labels=[f"filter {f}" for f in range(min(w.shape[0], 16))],
                          title=f"{args.model} {name}: filters as grayscale slices (one row per filter)")
    return report.finish(args, fig)


def _activations_args(p):
    classifier_arguments(p, target=False, layer=True)
    p.add_argument("--max-channels", type=POSITIVE_INT, default=63)


def run_activations(args) -> Path:
    from impasto.models.analysis.figures import grid_figure
    from impasto.models.analysis.filters import ActivationMaps, layer_at_stride

    report = Report()
    model = load_model(args)
    images, x = load_batch(args, limit=1)
    report_predictions(report, model, [i.name for i in images], x)
    layer = args.layer or layer_at_stride(model, x, 8)
    maps = ActivationMaps(model, layer)(x)[0]
    report(f"{layer}: {maps.shape[0]} channels of {maps.shape[1]}x{maps.shape[2]}; "
           f"{(maps.amax((1, 2)) <= 1e-6).sum().item()} channels all at the layer minimum")
    tiles = [x[0]] + list(maps[:args.max_channels])
    fig = grid_figure(tiles, ncols=8, tile_size=1.1,
                      title=f"{images[0].name}: activations of {layer} (first tile: input)")
    return report.finish(args, fig)


def _set_args(p):
    classifier_arguments(p, target=False)


def _image_set(args):
    from impasto.models.analysis.images import default_image_set

    return load_batch(args, default=default_image_set(), limit=None)


def _neighbors_args(p):
    _set_args(p)
    p.add_argument("--queries", type=int, nargs="+", help="indices of the query images (default: 4 spread out)")
    p.add_argument("-k", type=POSITIVE_INT, default=4, help="neighbours per query")


def run_neighbors(args) -> Path:
    import numpy as np

    from impasto.models.analysis.figures import neighbors_figure
    from impasto.models.analysis.neighbors import nearest_neighbors, penultimate_features

    report = Report()
    model = load_model(args)
    images, x = _image_set(args)
    names = [i.name for i in images]
    n = len(images)
    queries = args.queries or sorted(set(np.linspace(1, n - 1, min(4, n)).round().astype(int).tolist()))
    if any(not 0 <= q < n for q in queries):
        raise AnalysisError(f"--queries must be in 0..{n - 1}")
    feats = penultimate_features(model, x)
    pixel_nn = nearest_neighbors(x, queries, args.k)
    feat_nn = nearest_neighbors(feats, queries, args.k)
    report(f"{n} images; features: {feats.shape[1]}-d input of the classifier's last linear layer")
    for q, pn, fn in zip(queries, pixel_nn, feat_nn):
        report(f"{names[q]}: pixels -> {', '.join(names[i] for i in pn)} | features -> "
               f"{', '.join(names[i] for i in fn)}")
    fig = neighbors_figure(list(x), names, queries, pixel_nn, feat_nn,
                           title=f"Nearest neighbours: pixel space vs {args.model} feature space")
    return report.finish(args, fig)


def _embedding_args(p):
    _set_args(p)
    p.add_argument("--method", choices=("pca", "tsne"), default="tsne", dest="embedding")


def run_embedding(args) -> Path:
    from impasto.models.analysis.figures import scatter_thumbnails
    from impasto.models.analysis.neighbors import embed_2d, penultimate_features

    report = Report()
    model = load_model(args)
    images, x = _image_set(args)
    feats = penultimate_features(model, x)
    coords = embed_2d(feats, args.embedding, seed=args.seed)
    report(f"{len(images)} images, {feats.shape[1]}-d penultimate features -> 2-D by {args.embedding}")
    fig = scatter_thumbnails(coords, list(x), [i.name for i in images],
                             title=f"{args.embedding.upper()} of {args.model} penultimate features",
                             zoom=44 / args.size)
    return report.finish(args, fig)


def _patches_args(p):
    _set_args(p)
    p.add_argument("--layer", help="layer name (default: the last layer at stride 8)")
    p.add_argument("--channel", type=int, nargs="+", help="channels (default: the 8 with the highest peaks)")
    p.add_argument("-k", type=POSITIVE_INT, default=8, help="patches per channel")


def run_patches(args) -> Path:
    from impasto.models.analysis.figures import grid_figure
    from impasto.models.analysis.filters import layer_at_stride
    from impasto.models.analysis.patches import MaxActivatingPatches, crop

    report = Report()
    model = load_model(args)
    images, x = _image_set(args)
    layer = args.layer or layer_at_stride(model, x, 8)
    method = MaxActivatingPatches(model, layer)
    found = method(x, args.channel, k=args.k)
    rf = method.receptive_field(x.shape[-2:])
    report(f"{layer}: receptive field {rf.size[0]:g}x{rf.size[1]:g} px, stride {rf.jump[0]:g} px "
           f"(from the architecture); {len(images)} images")
    tiles, labels = [], []
    for ch, patches in found.items():
        report(f"channel {ch}: " + ", ".join(f"{images[p.image].name}@({p.y},{p.x})={p.value:.2f}" for p in patches))
        tiles += [crop(x[p.image], p.box) for p in patches] + [torch.full((3, 4, 4), 1.0)] * (args.k - len(patches))
        labels.append(f"ch {ch}")
    fig = grid_figure(tiles, ncols=args.k, tile_size=1.0, row_labels=labels,
                      title=f"Maximally activating patches, {args.model} {layer}")
    return report.finish(args, fig)


def _single_args(p, *, layer=False, neuron=False):
    classifier_arguments(p, layer=layer, neuron=neuron)


def _per_image(args, title, make_row, *, limit=4) -> Path:
    """Common shape of the per-image methods: predictions, one figure row per image."""
    from impasto.models.analysis.figures import panels_figure

    report = Report()
    model = load_model(args)
    images, x = load_batch(args, limit=limit)
    preds = report_predictions(report, model, [i.name for i in images], x)
    targets = targets_for(args, preds)
    rows = [make_row(model, images[i].name, x[i:i + 1], targets[i], report) for i in range(len(images))]
    return report.finish(args, panels_figure(rows, title))


def _occlusion_args(p):
    _single_args(p)
    p.add_argument("--window", type=POSITIVE_INT, help="occluder side in pixels (default: size/7)")
    p.add_argument("--stride", type=POSITIVE_INT, help="occluder step in pixels (default: window/2)")


def run_occlusion(args) -> Path:
    from impasto.models.analysis.figures import Panel
    from impasto.models.analysis.occlusion import Occlusion

    def row(model, name, x, target, report):
        window = args.window or max(4, args.size // 7)
        stride = args.stride or max(1, window // 2)
        if window > min(x.shape[-2:]):
            raise AnalysisError(f"--window {window} is larger than the {args.size}-px image")
        res = Occlusion(model)(x, target, window=window, stride=stride)
        report(f"{name}: p({describe(target)}) = {res.base[0]:.3f}; largest drop {res.drops.max():.3f} "
               f"({window}px grey patch, stride {stride})")
        return [Panel(name, x[0]), Panel(f"drop in p({describe(target)})", res.drops[0], "map", cmap="jet"),
                Panel("overlay", res.pixels[0], "overlay", under=x[0])]

    return _per_image(args, "Occlusion: where hiding the image hurts the class probability", row)


def run_saliency(args) -> Path:
    from impasto.models.analysis.figures import Panel
    from impasto.models.analysis.saliency import Saliency

    def row(model, name, x, target, report):
        sal = Saliency(model)(x, target)[0]
        report(f"{name}: saliency of {describe(target)}, max |grad| {sal.max():.3g}")
        return [Panel(name, x[0]), Panel(f"saliency: {describe(target)}", sal, "map", cmap="hot"),
                Panel("overlay", sal, "overlay", under=x[0], cmap="hot")]

    return _per_image(args, "Vanilla gradient saliency max_c |dS/dI|", row)


def run_grabcut(args) -> Path:
    from impasto.models.analysis.figures import Panel
    from impasto.models.analysis.saliency import Saliency, grabcut_from_saliency

    def row(model, name, x, target, report):
        sal = Saliency(model)(x, target)[0]
        mask = grabcut_from_saliency(x[0], sal)
        report(f"{name}: {describe(target)}: GrabCut foreground {mask.mean():.0%} of the image")
        return [Panel(name, x[0]), Panel("saliency", sal, "map", cmap="hot"),
                Panel("GrabCut mask", mask.astype(float), "map"),
                Panel("segmented", x[0] * torch.from_numpy(mask)[None] + 1.0 * torch.from_numpy(~mask)[None])]

    return _per_image(args, "Saliency-seeded GrabCut segmentation", row)


def _guided_args(p):
    _single_args(p, neuron=True)
    p.add_argument("--rule", choices=("guided", "deconvnet", "backprop"), default="guided")


def run_guided(args) -> Path:
    from impasto.models.analysis.figures import Panel, gradient_to_rgb
    from impasto.models.analysis.guided import GuidedBackprop

    def row(model, name, x, target, report):
        target = neuron_or_class(args, target)
        grad = GuidedBackprop(model, args.rule)(x, target)[0]
        report(f"{name}: {args.rule} gradient of {describe(target)}")
        return [Panel(name, x[0]), Panel(f"{args.rule}: {describe(target)}", gradient_to_rgb(grad)),
                Panel("positive part", grad.clamp_min(0).amax(0), "map")]

    return _per_image(args, f"{args.rule} backpropagation to the image", row)


def run_cam(args) -> Path:
    from impasto.models.analysis.cam import CAM
    from impasto.models.analysis.figures import Panel

    def row(model, name, x, target, report):
        cam = CAM(model, args.layer)(x, target, upsample_to_input=True)[0]
        report(f"{name}: CAM of {describe(target)}")
        return [Panel(name, x[0]), Panel(f"CAM: {describe(target)}", cam, "map", cmap="jet"),
                Panel("overlay", cam, "overlay", under=x[0])]

    return _per_image(args, "Class activation mapping (global-average-pool + linear head)", row)


def _gradcam_args(p):
    _single_args(p, neuron=True)
    p.add_argument("--guided", action="store_true", help="also show Guided Grad-CAM")


def run_gradcam(args) -> Path:
    from impasto.models.analysis.cam import GradCAM, upsample
    from impasto.models.analysis.figures import Panel, gradient_to_rgb
    from impasto.models.analysis.guided import GuidedBackprop

    def row(model, name, x, target, report):
        target = neuron_or_class(args, target)
        cam = GradCAM(model, args.layer)(x, target)
        report(f"{name}: Grad-CAM of {describe(target)} at {args.layer or 'the last feature map'} "
               f"({cam.shape[-2]}x{cam.shape[-1]})")
        up = upsample(cam, x.shape[-2:])[0]
        panels = [Panel(name, x[0]), Panel(f"Grad-CAM: {describe(target)}", up, "map", cmap="jet"),
                  Panel("overlay", up, "overlay", under=x[0])]
        if args.guided:
            guided = GuidedBackprop(model)(x, target)[0] * up / up.max().clamp_min(1e-12)
            panels.append(Panel("Guided Grad-CAM", gradient_to_rgb(guided)))
        return panels

    return _per_image(args, "Grad-CAM", row)


def _class_viz_args(p):
    classifier_arguments(p, target=False, neuron=True)
    p.add_argument("--target", nargs="+", default=["flamingo", "tarantula", "goldfinch"],
                   help="ImageNet classes (indices or names)")
    p.add_argument("--steps", type=POSITIVE_INT, default=200)
    p.add_argument("--lr", type=POSITIVE_FLOAT, default=0.02)
    p.add_argument("--l2", type=NON_NEGATIVE_FLOAT, default=1e-4)


def run_class_viz(args) -> Path:
    from impasto.models.analysis.class_viz import ClassVisualization
    from impasto.models.analysis.classifiers import resolve_class
    from impasto.models.analysis.figures import Panel, panels_figure

    report = Report()
    model = load_model(args)
    targets = [neuron_or_class(args, 0)] if args.channel is not None else [resolve_class(t) for t in args.target]
    viz = ClassVisualization(model, steps=args.steps, lr=args.lr, l2=args.l2, progress=True)
    panels = []
    for target in targets:
        res = viz(target, args.size, seed=args.seed)
        report(f"{describe(target)}: score {res.scores[0]:.2f} -> {res.scores[-1]:.2f} in {args.steps} steps")
        panels.append(Panel(describe(target), res.image))
    if args.channel is None:
        from impasto.models.analysis.classifiers import format_top_k, top_k

        for target, p in zip(targets, top_k(model, torch.stack([p.data for p in panels]), 5)):
            report(f"visualisation of {describe(target)}: top-5 {format_top_k(p)}")
    return report.finish(args, panels_figure([panels], "Class visualisation by regularised gradient ascent",
                                             panel_size=3.0))


def _adversarial_args(p):
    classifier_arguments(p)
    p.add_argument("--attack", choices=("fooling", "fgsm", "pgd"), default="pgd")
    p.add_argument("--eps", type=NON_NEGATIVE_FLOAT, default=4.0, help="L-inf budget in 1/255 units (fgsm, pgd)")
    p.add_argument("--steps", type=POSITIVE_INT, default=10, help="iterations (pgd, fooling: at most)")


def run_adversarial(args) -> Path:
    from impasto.models.analysis.adversarial import FGSM, PGD, fooling_image
    from impasto.models.analysis.classifiers import class_name, resolve_class
    from impasto.models.analysis.figures import Panel, normalize_map

    if args.attack == "fooling" and args.target is None:
        args.target = "stingray"

    def row(model, name, x, _target, report):
        target = resolve_class(args.target) if args.target is not None else None
        eps = args.eps / 255
        if args.attack == "fooling":
            res = fooling_image(model, x, target, max_steps=max(args.steps, 100))
        elif args.attack == "fgsm":
            res = FGSM(model, eps)(x, target, targeted=target is not None)
        else:
            res = PGD(model, eps, steps=args.steps, seed=args.seed)(x, target, targeted=target is not None)
        diff = res.adversarial[0] - x[0]
        before, after = int(res.original[0]), int(res.predicted[0])
        report(f"{name}: {args.attack}: {class_name(before)} -> {class_name(after)} "
               f"({'fooled' if res.success[0] else 'not fooled'}; max |diff| {diff.abs().max() * 255:.1f}/255, "
               f"{res.steps} steps)")
        return [Panel(f"{name}\n{class_name(before)}", x[0]), Panel(f"adversarial\n{class_name(after)}", res.adversarial[0]),
                Panel("difference", normalize_map(diff.permute(1, 2, 0))),
                Panel("10x difference", (0.5 + 10 * diff).clamp(0, 1))]

    return _per_image(args, f"Adversarial example ({args.attack})", row)


CLASSIFIER_METHODS: Methods = {
    "filters": (_filters_args, run_filters),
    "activations": (_activations_args, run_activations),
    "neighbors": (_neighbors_args, run_neighbors),
    "embedding": (_embedding_args, run_embedding),
    "patches": (_patches_args, run_patches),
    "occlusion": (_occlusion_args, run_occlusion),
    "saliency": (_single_args, run_saliency),
    "grabcut": (_single_args, run_grabcut),
    "guided-backprop": (_guided_args, run_guided),
    "cam": (lambda p: _single_args(p, layer=True), run_cam),
    "gradcam": (_gradcam_args, run_gradcam),
    "class-viz": (_class_viz_args, run_class_viz),
    "adversarial": (_adversarial_args, run_adversarial),
}
HELP = {
    "filters": "conv filters as an image grid (default: the first layer)",
    "activations": "activation maps of a layer as a grid",
    "neighbors": "nearest neighbours in pixel vs feature space",
    "embedding": "PCA / t-SNE of penultimate features with thumbnails",
    "patches": "maximally activating patches of a layer's channels",
    "occlusion": "occlusion sensitivity map",
    "saliency": "vanilla gradient saliency map",
    "grabcut": "segmentation by GrabCut seeded from saliency",
    "guided-backprop": "guided backprop / deconvnet image gradients",
    "cam": "class activation map (GAP + linear heads)",
    "gradcam": "Grad-CAM (and Guided Grad-CAM with --guided)",
    "class-viz": "class or neuron visualisation by gradient ascent",
    "adversarial": "fooling images, FGSM and PGD",
}


METHODS: Methods = {**CLASSIFIER_METHODS, **explain_optim.METHODS}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="impasto explain", description="CNN analysis and visualisation figures.")
    sub = parser.add_subparsers(dest="method", metavar="METHOD", required=True)
    for name, (add_arguments, run) in METHODS.items():
        doc = HELP.get(name) or ((run.__doc__ or "").strip().splitlines() or [""])[0]
        p = sub.add_parser(name, help=doc, description=doc)
        common_arguments(p)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one method. Errors in the caller's input (:class:`ImpastoError`: bad options, images,
    layers, classes, missing weights) are one line on stderr and exit status 2; any other exception
    is a bug and propagates with its traceback."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse already printed its one-line error / help
        return int(exit_.code or 0)
    try:
        check_output_path(args)
        args.run(args)
    except ImpastoError as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"impasto explain {args.method}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
