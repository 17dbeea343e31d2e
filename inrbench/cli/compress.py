"""Command-line entry points of the compression tools (hooked into ``inrbench.cli``):

    inrbench compress RUN_DIR [--bits B] [--method ptq|qat|none] [--layers hidden[,first,last]]
                      [--biases] [--scheme affine|symmetric] [--coding range|fixed] [--out F]
    inrbench decompress FILE [--out recon.png] [--width W --layers D] [--max-pixels N] [--json]
    inrbench codecs IMAGE_OR_RUN_DIR --out DIR [--codecs jpeg,jpeg2000,webp,avif]
"""

from __future__ import annotations

import json
from pathlib import Path

from inrbench.errors import ConfigError

#: ``decompress --max-pixels``'s default (``inrbench.compress.MAX_PIXELS``, not imported here:
#: building the parser loads no model)
MAX_PIXELS = 2**28


def add_commands(sub) -> None:
    c = sub.add_parser("compress", help="quantize a finished run into a .inrb bitstream and "
                       "score the network decoded from it")
    c.add_argument("run_dir", help="a finished run folder (config.yaml, checkpoints/last.ckpt)")
    c.add_argument("--bits", type=int, help="bit width of the quantized tensors (PTQ default "
                   "8; QAT runs: the trained width)")
    c.add_argument("--method", choices=["ptq", "qat", "none"], help="ptq (default for a "
                   "full-precision run), qat (default for a run trained with task.quant_bits), "
                   "none (every tensor float32)")
    c.add_argument("--layers", default="hidden", help="quantized layers (PTQ): comma-separated "
                   "hidden, first, last, other, or all; ANI's default is hidden, Table 4 adds "
                   "first or last")
    c.add_argument("--biases", action="store_true", help="quantize the biases too (PTQ)")
    c.add_argument("--scheme", default="affine", choices=["affine", "symmetric"],
                   help="PTQ: affine (Jacob et al., ANI) or symmetric (Strümpler et al.)")
    c.add_argument("--coding", default="range", choices=["range", "fixed"],
                   help="symbols range-coded with constriction (default) or fixed-length")
    c.add_argument("--out", help="output file (default RUN_DIR/compressed/<method><bits>.inrb)")
    c.add_argument("--json", action="store_true", help="print the record as JSON")
    c.add_argument("--model", metavar="MODULE:CLASS", help="the module:Class of your own that "
                   "the run was trained with (a reference in a run's config.yaml is imported "
                   "only when given on the command line too)")

    d = sub.add_parser("decompress", help="rebuild the network from a .inrb file alone and "
                       "render it")
    d.add_argument("file", help="a .inrb file written by inrbench compress")
    d.add_argument("--out", help="image to write (PNG)")
    d.add_argument("--width", type=int, help="once-for-all file: sub-network width")
    d.add_argument("--layers", type=int, help="once-for-all file: hidden layers of the "
                   "sub-network")
    d.add_argument("--json", action="store_true", help="print the record as JSON")
    d.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse a file that declares a signal of more than N samples (pixels, "
                   f"voxels) before decoding it (default 2^28 = {MAX_PIXELS:,})")
    d.add_argument("--model", metavar="MODULE:CLASS", help="the module:Class of your own that "
                   "the file's header names (a reference in a file is imported only when "
                   "given on the command line too)")

    k = sub.add_parser("codecs", help="JPEG / JPEG 2000 / WebP / AVIF rate-distortion sweep "
                       "of one image (imagecodecs)")
    k.add_argument("image", help="an image file, or a run folder (its data)")
    k.add_argument("--out", required=True, help="folder for codecs.json / codecs.csv")
    k.add_argument("--codecs", default="jpeg,jpeg2000,webp,avif", help="comma-separated")


def _bpp_line(r: dict, key: str = "bpp") -> str:
    ani = r[key.replace("bpp", "bpp_ani")]
    return f"{r[key]:.4f} bpp (bits/(H*W)), {ani:.4f} (ANI: bits/(H*W*C))"


def cmd_compress(args) -> int:
    from inrbench.compress import compress_run

    rec = compress_run(Path(args.run_dir), bits=args.bits, method=args.method,
                       layers=args.layers, biases=args.biases, scheme=args.scheme,
                       coding=args.coding, out=Path(args.out) if args.out else None)
    if args.json:
        print(json.dumps(rec, indent=1))
        return 0
    print(f"{rec['model']} {rec['method']} {rec['bits']}-bit ({rec['scheme']}, "
          f"{len(rec['quantized_tensors'])} quantized tensors) -> {rec['file']}")
    print(f"  file: {rec['file_bits']:,} bits ({rec['coding']} coding; header "
          f"{rec['header_bits']:,}, symbol frequencies {rec['histogram_bits']:,})")
    print(f"  entropy-coded (range, {rec['file_bits_range']:,} bits): {_bpp_line(rec)}")
    print(f"  fixed-length ({rec['file_bits_fixed']:,} bits): {_bpp_line(rec, 'bpp_fixed')}")
    print(f"  ANI's count (weights only, no header/steps/entropy coding): "
          f"{rec['ani_count_bits']:,} bits = {rec['bpp_ani_count']:.3f} bpp (ANI)")
    line = f"  decoded from the file: PSNR {rec['psnr']:.2f} dB"
    if "psnr_8bit" in rec:
        line += f" ({rec['psnr_8bit']:.2f} dB as 8-bit PNG)"
    if "ssim" in rec:
        line += f", SSIM {rec['ssim']:.3f}"
    print(line)
    return 0


def cmd_decompress(args) -> int:
    from inrbench.compress import decompress

    if args.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be >= 1, got {args.max_pixels}")
    rec = decompress(Path(args.file), Path(args.out) if args.out else None, args.width,
                     args.layers, max_pixels=args.max_pixels)
    if args.json:
        print(json.dumps(rec, indent=1))
        return 0
    sub = f" sub-network {args.width}x{args.layers}" if args.width or args.layers else ""
    print(f"{rec['model']}{sub}: {rec['params']:,} params, {rec['read_bits']:,} of "
          f"{rec['file_bits']:,} bits read = {_bpp_line(rec)}; rendered in "
          f"{rec['seconds'] * 1000:.0f} ms" + (f" -> {rec['out']}" if rec["out"] else ""))
    return 0


def cmd_codecs(args) -> int:
    from inrbench.codecs import sweep_image

    names = [c.strip() for c in args.codecs.split(",") if c.strip()]
    if not names:
        raise ConfigError("--codecs needs at least one of jpeg,jpeg2000,webp,avif")
    rows = sweep_image(Path(args.image), Path(args.out), names)
    for name in names:
        pts = [r for r in rows if r["codec"] == name]
        if pts:
            print(f"{name}: {len(pts)} points, {min(r['bpp'] for r in pts):.3f}.."
                  f"{max(r['bpp'] for r in pts):.3f} bpp, {min(r['psnr'] for r in pts):.2f}.."
                  f"{max(r['psnr'] for r in pts):.2f} dB")
    print(f"results: {args.out}/codecs.json, {args.out}/codecs.csv")
    from inrbench.reports.ratedistortion import codec_deltas_markdown

    for line in codec_deltas_markdown(Path(args.image), rows):  # a run's files vs the sweep
        print(line)
    return 0


COMMANDS = {"compress": cmd_compress, "decompress": cmd_decompress, "codecs": cmd_codecs}
