"""``impasto quickstart``: stylise a photo with every style of the bundled model, blend two of
them, and write a contact sheet (no training, runs offline).

    impasto quickstart [--photo PATH|skimage:NAME] [--model M.onnx] [--blend SPEC] [--output-dir DIR]
    impasto quickstart --train [HYDRA_OVERRIDES ...]

``--train`` first trains a network on the embedded defaults (scikit-image photos, embedded VGG19;
extra arguments are Hydra overrides, as for ``impasto train``), exports it to ONNX with a parity
check, and makes the contact sheet with that model instead.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from impasto.core.cli import OneLineParser

DEFAULT_PHOTO = "skimage:astronaut"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = OneLineParser(prog="impasto quickstart", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default=DEFAULT_PHOTO,
                        help=f"photo to stylise: a file or skimage:NAME (default {DEFAULT_PHOTO})")
    parser.add_argument("-m", "--model", help="ONNX model (default: the bundled model)")
    parser.add_argument("--blend", help="blend shown on the sheet, e.g. 'starry_night:0.5,wave:0.5' "
                                        "(default: the first two styles, half each)")
    parser.add_argument("--max-size", type=int, default=512, help="longer side of the photo (default 512)")
    parser.add_argument("--output-dir", help="where to write (default outputs/quickstart/<timestamp>)")
    parser.add_argument("--train", action="store_true",
                        help="train and export a model on the embedded defaults first")
    args, overrides = parser.parse_known_args(argv)
    if overrides and not args.train:
        parser.error(f"unrecognized arguments: {' '.join(overrides)} (Hydra overrides need --train)")
    return args, overrides


def train_and_export(run_dir: Path, overrides: list[str]) -> Path:
    from impasto.core.errors import ImpastoError
    from impasto.training.checkpoint import load_network
    from impasto.training.config import compose_config
    from impasto.training.export import export_onnx, parity_check
    from impasto.training.train import train

    cfg = compose_config([f"paths.output_dir={run_dir}", *overrides])
    print(f"training {cfg.network._target_.rsplit('.', 1)[-1]} on scikit-image photos "
          f"({cfg.trainer.max_steps} steps, {cfg.data.image_size} px) -> {run_dir}")
    result = train(cfg)
    if result["interrupted"]:  # a half-trained network is not what was asked for: stop, resumable
        raise ImpastoError(f"stopped by {result['interrupted']} at step {result['global_step']}; "
                           f"checkpoint: {result['last_ckpt']}")
    network, info = load_network(result["last_ckpt"])
    model_path = export_onnx(network, run_dir / "model.onnx", training_config=info["config_yaml"],
                             style_info=info["style_info"], identity_style=info["identity_style"])
    worst = max(diff for _, diff in parity_check(network, model_path))
    print(f"exported {model_path} (onnxruntime vs PyTorch max abs diff {worst:.1e})")
    print(f"checkpoint: {result['last_ckpt']}")
    return model_path


def style_label(model, name: str) -> str:
    info = model.style_info.get(name, {})
    if name == model.identity_style:
        return f"{name}\n(strength 0)"
    if info.get("title"):
        return info["title"] + "\n" + ", ".join(str(info[k]) for k in ("artist", "year") if info.get(k))
    return name


def blend_label(model, weights) -> str:
    parts = [f"{name} {w:.0%}" for name, w in zip(model.style_names, weights) if w > 0]
    return "blend\n" + " + ".join(parts)


def default_blend(model) -> str | None:
    painted = [n for n in model.style_names if n != model.identity_style]
    return f"{painted[0]}:0.5,{painted[1]}:0.5" if model.blendable and len(painted) >= 2 else None


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(list(sys.argv[1:] if argv is None else argv))

    from impasto.core.errors import ImpastoError
    from impasto.core.imageio import from_array, open_reference, resize_longer, to_array
    from impasto.core.model import StyleModel, default_model_path
    from impasto.training.contact_sheet import contact_sheet

    run_dir = Path(args.output_dir or Path("outputs") / "quickstart" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    try:
        photo = resize_longer(open_reference(args.photo), args.max_size)
        model_path = train_and_export(run_dir, overrides) if args.train else (args.model or default_model_path())
        if model_path is None:
            raise ImpastoError("no model given and none bundled: pass --model MODEL.onnx or use --train")
        model = StyleModel(model_path, device="cpu")
        # (file tag, sheet label, style weights) per stylised image
        specs = [(name, style_label(model, name), model.style_weights(name)) for name in model.style_names]
        blend = args.blend or default_blend(model)
        if blend:
            weights = model.style_weights(blend)
            specs.append(("blend", blend_label(model, weights), weights))
    except ImpastoError as err:
        print(f"impasto quickstart: {err}", file=sys.stderr)
        return 2

    run_dir.mkdir(parents=True, exist_ok=True)
    source = run_dir / "photo.png"
    photo.save(source)
    print(f"stylising {args.photo} ({photo.width}x{photo.height}) with {model.path} "
          f"({len(model.style_names)} styles)")
    pixels = to_array(photo)[None]
    tiles = [("original", photo)]
    for tag, label, weights in specs:
        image = from_array(model.run(pixels, weights[None])[0])
        image.save(run_dir / f"photo_{tag}.png")
        tiles.append((label, image))
    sheet_path = run_dir / "contact_sheet.png"
    contact_sheet(tiles, columns=4).save(sheet_path)
    print()
    print(f"contact sheet: {sheet_path}")
    print(f"each image:    {run_dir}/photo_*.png")
    print(f"next: impasto stylize YOUR_PHOTO.jpg --style {model.style_names[0]}"
          + ("" if args.model is None and not args.train else f" -m {model.path}"))
    return 0
