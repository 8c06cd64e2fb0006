"""`python -m export --model SRC --out DIR`: a clipsearch model folder from a CLIP or SigLIP
checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export.errors import ExportError, ExportExit

EPILOG = """\
families (detected from config.json's model_type):
  clip     transformers CLIPModel of any size (OpenAI, LAION, DataComp; patch 14/16/32, 224/336 px)
  siglip   transformers SiglipModel, including fixed-resolution SigLIP 2 (Gemma tokenizer);
           SigLIP 2 NaFlex (model_type siglip2) is not supported

output folder (manifest.json is written last, after verification):
  vision.onnx, text.onnx            fp32 towers: pixel_values -> image_embeds, the tokenizer's
                                    outputs (input_ids [+ attention_mask]) -> text_embeds
                                    (not normalised)
  vision.int8.onnx, text.int8.onnx  int8 towers (onnxruntime.quantization, 7-bit weights): the
                                    image tower with static activation scales calibrated on
                                    --calibration DIR (else generated samples), so an image's
                                    vector does not depend on its batch; the text tower dynamic
  vision.int8.openvino.onnx         written when OpenVINO is installed: OpenVINO's own int8 image
                                    tower (same calibration, symmetric int8 activations), gated
                                    on OpenVINO (left out if below --min-int8-cosine: OpenVINO
                                    then runs vision.int8.onnx); ONNX Runtime runs vision.int8.onnx
  tokenizer.json, preprocessor_config.json, manifest.json

verification: the runtime's tokenizer and preprocessing must reproduce the checkpoint's own
(ids, mask and pixels); every tower at both precisions embeds generated images and fixed
captions and is compared with PyTorch fp32, row by row (cosine). The export fails when the smallest cosine is
below --min-fp32-cosine (fp32 graphs) or --min-int8-cosine (int8 graphs).

exit codes:
  0 ok, 1 other error, 2 usage, 3 checkpoint not found / not downloadable / not CLIP or SigLIP,
  4 verification failed (fidelity below thresholds), 130 interrupted

examples:
  python -m export --model openai/clip-vit-base-patch32 --out models/clip-vit-b32
  python -m export --model google/siglip2-base-patch16-224 --out models/siglip2-b16
  python -m export --model ./my-finetuned-clip --out models/mine --overwrite
"""


def parser() -> argparse.ArgumentParser:
    from export.convert import OPSET
    from export.verify import MIN_FP32_COSINE, MIN_INT8_COSINE

    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a CLIP or SigLIP checkpoint (Hugging Face Hub id or local transformers "
        "folder) to ONNX fp32 + int8 with tokenizer and manifest, and verify it against PyTorch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="SRC",
        help="hub id (e.g. openai/clip-vit-base-patch32) or a folder with config.json, weights, "
        "preprocessor_config.json and tokenizer.json or vocab.json + merges.txt",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="model folder to write")
    p.add_argument(
        "--revision",
        default=None,
        help="hub branch, tag or commit (default: main); the resolved commit sha is recorded",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace DIR if it exists and is not empty"
    )
    p.add_argument(
        "--min-fp32-cosine",
        type=float,
        default=MIN_FP32_COSINE,
        metavar="C",
        help="smallest acceptable per-row cosine, fp32 graphs vs PyTorch (default: %(default)s)",
    )
    p.add_argument(
        "--min-int8-cosine",
        type=float,
        default=MIN_INT8_COSINE,
        metavar="C",
        help="smallest acceptable per-row cosine, int8 graphs vs PyTorch (default: %(default)s)",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        metavar="DIR",
        help="pictures to calibrate the int8 image tower's activation scales on (up to 64 "
        "spread over the folder; photos like those you will index are best; default: the "
        "export's generated sample images)",
    )
    p.add_argument(
        "--opset", type=int, default=OPSET, help="ONNX opset of the graphs (default: %(default)s)"
    )
    p.add_argument(
        "--keep-failed",
        action="store_true",
        help="on failure, keep the partial output (a hidden folder beside DIR) for inspection",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        from export.build import export_model
        from export.verify import Thresholds

        data = export_model(
            args.model,
            args.out,
            revision=args.revision,
            calibration_dir=args.calibration,
            thresholds=Thresholds(fp32=args.min_fp32_cosine, int8=args.min_int8_cosine),
            opset=args.opset,
            overwrite=args.overwrite,
            keep_failed=args.keep_failed,
        )
    except ExportError as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("export: interrupted; nothing was written to the output folder", file=sys.stderr)
        return int(ExportExit.INTERRUPTED)
    print(args.out)
    print(
        f"export: wrote {args.out} ({data['family']}, D={data['embedding_dim']}, "
        f"S={data['image_size']}, "
        f"default precision {data['default_precision']})",
        file=sys.stderr,
    )
    return int(ExportExit.OK)


if __name__ == "__main__":
    sys.exit(main())
