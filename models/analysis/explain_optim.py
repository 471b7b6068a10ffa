"""The image-optimisation methods of ``impasto explain``: ``inversion``, ``deepdream``, ``texture``
and ``gatys``. Each is ``name -> (add_arguments(subparser), run(args) -> figure path)``;
:mod:`impasto.models.analysis.explain` registers them with the common options of
:mod:`impasto.models.analysis.cli_common` (``--image``, ``-o``, ``--seed``, ``--size``).

All four optimise an image through the embedded VGG19 (offline) and default to scikit-image's
bundled photos; default sizes and step counts finish in about two minutes on two CPU cores.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from impasto.models.analysis.cli_common import (
    IMAGE_SIDE,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    Methods,
    Report,
    bounded,
)
from impasto.models.analysis.errors import AnalysisError

# Default image side (longer side, pixels) per method when --size is not given.
DEFAULT_SIZE = {"inversion": 128, "deepdream": 320, "texture": 96, "gatys": 192}
# A colourful, textured bundled photo: the default texture sample and Gatys style.
DEFAULT_TEXTURE = "immunohistochemistry"


# -------------------------------------------------------------------------------------- images

def fit(img, size: int) -> torch.Tensor:
    """PIL RGB -> ``[1, 3, H, W]`` in [0, 1], the longer side resized to ``size`` (up or down)."""
    x = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1)[None] / 255.0
    h, w = x.shape[-2:]
    scale = size / max(h, w)
    new = (max(16, round(h * scale)), max(16, round(w * scale)))
    if new != (h, w):
        x = F.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).contiguous()


def load(specs: Sequence[str] | None, default: Sequence[str], size: int, *, limit: int | None = None):
    """``(names, tensors)`` for files/folders/globs, or the named scikit-image photos when none."""
    from impasto.models.analysis.images import NamedImage, load_images, skimage_photo

    images = load_images(specs, default=[NamedImage(n, skimage_photo(n)) for n in default], limit=limit)
    return [i.name for i in images], [fit(i.image, size) for i in images]


def default_texture(size: int) -> torch.Tensor:
    """The middle third of scikit-image's immunohistochemistry slide: brown cell walls, blue nuclei."""
    from impasto.models.analysis.images import skimage_photo

    img = skimage_photo(DEFAULT_TEXTURE)
    w, h = img.size
    return fit(img.crop((w // 3, h // 3, 2 * w // 3, 2 * h // 3)), size)


def size_of(args) -> int:
    return args.size or DEFAULT_SIZE[args.method]


# ------------------------------------------------------------------------------------ arguments

def _common_optim_arguments(p: argparse.ArgumentParser, steps: int, optimizer: str = "lbfgs"):
    p.add_argument("--steps", type=POSITIVE_INT, default=steps, help=f"optimisation steps (default {steps})")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default=optimizer,
                   help=f"lbfgs (strong-Wolfe line search) or adam (default {optimizer})")
    p.add_argument("--lr", type=POSITIVE_FLOAT, help="step size (default: 1 for lbfgs, 0.02 for adam)")


def _layers(names: Sequence[str]) -> list[str]:
    from impasto.models.features import vgg19_features, vgg_layer_names

    known = vgg_layer_names(vgg19_features())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise AnalysisError(f"unknown VGG19 layer(s) {', '.join(unknown)}; e.g. relu1_1 ... relu5_4, pool1 ... pool5")
    return list(names)


# ------------------------------------------------------------------------------------ inversion

def _inversion_args(p):
    from impasto.models.analysis.synthesis import INVERSION_LAYERS

    p.add_argument("--layers", nargs="+", default=list(INVERSION_LAYERS),
                   help="VGG19 layers to reconstruct from, one figure panel each (default: the last ReLU of each block)")
    p.add_argument("--tv-weight", type=NON_NEGATIVE_FLOAT, default=0.05, help="total-variation regulariser weight")
    _common_optim_arguments(p, steps=100)


def run_inversion(args) -> Path:
    """feature inversion: reconstruct an image from one layer's features"""
    from impasto.models.analysis.figures import sized_figure
    from impasto.models.analysis.synthesis import invert_features

    layers = _layers(args.layers)
    report = Report()
    names, (x,) = load(args.image, ["chelsea"], size_of(args), limit=1)
    report(f"{names[0]} {x.shape[-1]}x{x.shape[-2]}: inverting {', '.join(layers)} from noise "
           f"({args.steps} {args.optimizer} steps each, TV weight {args.tv_weight:g})")
    outputs = [x]
    titles = [names[0]]
    for layer in layers:
        start = time.perf_counter()
        res = invert_features(x, layer, steps=args.steps, tv_weight=args.tv_weight, optimizer=args.optimizer,
                              lr=args.lr, seed=args.seed)
        err = res.history[-1]["features"]
        report(f"{layer}: relative feature error {res.history[0]['features']:.3f} -> {err:.3f}, "
               f"pixel RMSE to the original {(res.image - x).pow(2).mean().sqrt():.3f} "
               f"({time.perf_counter() - start:.0f} s)")
        outputs.append(res.image)
        titles.append(f"from {layer}\nfeature error {err:.3f}")
    fig = sized_figure(outputs, titles, "Feature inversion (VGG19 + TV prior): detail lost with depth",
                       height=2.4)
    return report.finish(args, fig)


# ------------------------------------------------------------------------------------ deepdream

def _deepdream_args(p):
    p.add_argument("--layers", nargs="+", default=["relu3_4", "relu4_2"],
                   help="VGG19 layers to amplify, one figure panel each (default: relu3_4 relu4_2)")
    p.add_argument("--octaves", type=POSITIVE_INT, default=4, help="number of scales (default 4)")
    p.add_argument("--octave-scale", type=bounded(float, above=1), default=1.4, help="size ratio between octaves")
    p.add_argument("--steps", type=POSITIVE_INT, default=10, help="gradient-ascent steps per octave (default 10)")
    p.add_argument("--lr", type=POSITIVE_FLOAT, default=0.006,
                   help="step size of the normalised gradient (default 0.006, the classic 1.5/255)")
    p.add_argument("--jitter", type=NON_NEGATIVE_INT, default=16, help="random shift in pixels at every step")


def run_deepdream(args) -> Path:
    """DeepDream: amplify what a layer sees, with octaves and jitter"""
    from impasto.models.analysis.figures import sized_figure
    from impasto.models.analysis.synthesis import DreamObjective, deepdream
    from impasto.models.features import FeatureExtractor

    layers = _layers(args.layers)
    report = Report()
    names, (x,) = load(args.image, ["chelsea"], size_of(args), limit=1)
    outputs, titles = [x], [names[0]]
    for layer in layers:
        encoder = FeatureExtractor(layers=[layer])
        probe = DreamObjective(encoder, [layer])
        res = deepdream(x, layers=[layer], encoder=encoder, octaves=args.octaves, octave_scale=args.octave_scale,
                        steps=args.steps, lr=args.lr, jitter=args.jitter, seed=args.seed)
        with torch.no_grad():
            before, after = probe.activation(x).item(), probe.activation(res.image).item()
        report(f"{layer}: mean squared activation {before:.4g} -> {after:.4g} "
               f"({args.octaves} octaves x {args.steps} steps)")
        outputs.append(res.image)
        titles.append(f"DeepDream {layer}")
    return report.finish(args, sized_figure(outputs, titles, "DeepDream (VGG19): gradient ascent on ||activation||²",
                                            height=2.6))


# ------------------------------------------------------------------------------------ texture

def _texture_args(p):
    from impasto.models.analysis.synthesis import TEXTURE_LAYERS

    p.add_argument("--layers", nargs="+", default=list(TEXTURE_LAYERS), help="VGG19 layers whose Grams are matched")
    p.add_argument("--scale", type=bounded(float, 0.25, 8), default=2.0,
                   help="output size relative to the sample, 0.25 to 8 (default 2)")
    _common_optim_arguments(p, steps=150)


def run_texture(args) -> Path:
    """Gram-matrix texture synthesis from a sample (Gatys et al. 2015)"""
    from impasto.models.analysis.figures import sized_figure
    from impasto.models.analysis.synthesis import synthesize_texture

    layers = _layers(args.layers)
    report = Report()
    size = size_of(args)
    if args.image:
        names, (sample,) = load(args.image, [], size, limit=1)
    else:
        names, sample = [f"{DEFAULT_TEXTURE} (crop)"], default_texture(size)
    start = time.perf_counter()
    res = synthesize_texture(sample, scale=args.scale, layers=layers, steps=args.steps, optimizer=args.optimizer,
                             lr=args.lr, seed=args.seed)
    h, w = res.image.shape[-2:]
    report(f"{names[0]} {sample.shape[-1]}x{sample.shape[-2]} -> {w}x{h} from noise, Grams of {', '.join(layers)}: "
           f"loss {res.history[0]['total']:.4g} -> {res.history[-1]['total']:.4g} "
           f"({len(res.history)} {args.optimizer} steps, {time.perf_counter() - start:.0f} s)")
    fig = sized_figure([sample, res.image], [f"sample {sample.shape[-1]}x{sample.shape[-2]}", f"synthesised {w}x{h}"],
                       "Texture synthesis by Gram-matrix matching (VGG19)")
    return report.finish(args, fig)


# ------------------------------------------------------------------------------------ gatys

def _gatys_args(p):
    from impasto.models.analysis.style_transfer import CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT

    p.add_argument("--style", nargs="+", metavar="PATH",
                   help=f"style image(s) (default: scikit-image's {DEFAULT_TEXTURE} slide)")
    p.add_argument("--style-weights", nargs="+", type=NON_NEGATIVE_FLOAT, metavar="W",
                   help="one weight per style image: their Gram matrices are averaged with these weights")
    p.add_argument("--style-size", type=IMAGE_SIDE, help="longer side of the style images (default: --size)")
    p.add_argument("--content-layer", default="relu4_2", help="VGG19 content layer (default relu4_2)")
    p.add_argument("--content-weight", type=NON_NEGATIVE_FLOAT, default=CONTENT_WEIGHT)
    p.add_argument("--style-weight", type=NON_NEGATIVE_FLOAT, default=STYLE_WEIGHT)
    p.add_argument("--tv-weight", type=NON_NEGATIVE_FLOAT, default=TV_WEIGHT)
    p.add_argument("--preserve-color", nargs="?", const="luminance", choices=("luminance", "histogram"),
                   help="keep the content's colours: luminance-only transfer (the default when given) "
                        "or style colours matched to the content's")
    p.add_argument("--init", choices=("content", "noise"), default="content", help="start image")
    _common_optim_arguments(p, steps=150)


def run_gatys(args) -> Path:
    """optimisation style transfer (Gatys et al.), several style images, colour preservation"""
    from impasto.models.analysis.figures import sized_figure
    from impasto.models.analysis.style_transfer import STYLE_LAYERS, gatys_transfer

    _layers([args.content_layer])
    report = Report()
    size = size_of(args)
    names, (content,) = load(args.image, ["astronaut"], size, limit=1)
    style_size = args.style_size or size
    if args.style:
        style_names, styles = load(args.style, [], style_size)
    else:
        style_names, styles = [f"{DEFAULT_TEXTURE} (crop)"], [default_texture(style_size)]
    if args.style_weights is not None and len(args.style_weights) != len(styles):
        raise AnalysisError(f"--style-weights needs one weight per style image ({len(styles)})")
    if args.style_weights is not None and not any(args.style_weights):
        raise AnalysisError("--style-weights: at least one weight must be above 0")
    start = time.perf_counter()
    res = gatys_transfer(content, styles, args.style_weights, content_layers={args.content_layer: 1.0},
                         style_layers=STYLE_LAYERS, content_weight=args.content_weight, style_weight=args.style_weight,
                         tv_weight=args.tv_weight, preserve_color=args.preserve_color, init=args.init,
                         steps=args.steps, optimizer=args.optimizer, lr=args.lr, seed=args.seed)
    first, last = res.history[0], res.history[-1]
    blend = ", ".join(f"{n} x{w:g}" for n, w in zip(style_names, args.style_weights or [1.0] * len(styles)))
    report(f"{names[0]} {content.shape[-1]}x{content.shape[-2]} in the style of {blend}")
    report(f"weights: content {args.content_weight:g} ({args.content_layer}), style {args.style_weight:g} "
           f"({', '.join(STYLE_LAYERS)}), TV {args.tv_weight:g}; colour preservation: {args.preserve_color or 'off'}")
    report("loss " + ", ".join(f"{k} {first[k]:.4g} -> {last[k]:.4g}" for k in ("content", "style", "tv", "total"))
           + f" ({len(res.history)} {args.optimizer} steps, {time.perf_counter() - start:.0f} s)")
    panels = [content, *styles, res.image]
    titles = [f"content: {names[0]}", *(f"style: {n}" + (f" x{w:g}" if args.style_weights else "")
                                         for n, w in zip(style_names, args.style_weights or [1] * len(styles))),
              "result" + (f" ({args.preserve_color}-preserving)" if args.preserve_color else "")]
    return report.finish(args, sized_figure(panels, titles, "Optimisation style transfer (Gatys et al., VGG19)"))


METHODS: Methods = {
    "inversion": (_inversion_args, run_inversion),
    "deepdream": (_deepdream_args, run_deepdream),
    "texture": (_texture_args, run_texture),
    "gatys": (_gatys_args, run_gatys),
}
