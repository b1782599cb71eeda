"""`python manage.py evaluatemodel`: print the model's figures (thin wrapper over predictions.ml.evaluation)."""
import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictions.ml.evaluation import evaluate_photos, evaluate_test_split, format_report
from predictions.ml.pipeline import GenderPipeline
from predictions.ml.training import TrainingOptions, cache_path_for
from predictions.ml.dataset import build_crop_cache, load_crop_cache

DEFAULT_DATA = "../shared/data/utkface/UTKFace.zip"
DEFAULT_PHOTOS = "../shared/data/portraits-dev"


class Command(BaseCommand):
    help = "Accuracy on the UTKFace TEST split (overall, per group, calibration) and end to end on photos."

    def add_arguments(self, parser):
        parser.add_argument("--model", default=str(settings.MODEL_PATH))
        parser.add_argument("--data", default=DEFAULT_DATA, help="UTKFace.zip; '' to skip")
        parser.add_argument("--photos", default=DEFAULT_PHOTOS, help="folder with male/ and female/; '' to skip")
        parser.add_argument("--cache-dir", default=".cache")
        parser.add_argument("--json", dest="json_path", default=None, help="also write the figures as JSON here")
        parser.add_argument("--plots", default=None, help="write reliability/confusion/age PNGs to this folder")
        parser.add_argument("--show-errors", action="store_true", help="list the photos classified wrongly")

    def handle(self, *args, **opts):
        if not os.path.exists(opts["model"]):
            raise CommandError(f"Model not found: {opts['model']}")
        pipeline = GenderPipeline.load(opts["model"], max_pixels=settings.MAX_IMAGE_PIXELS)
        config = pipeline.classifier.config
        test = photos = None
        if opts["data"]:
            if not os.path.exists(opts["data"]):
                raise CommandError(f"UTKFace not found: {opts['data']}")
            options = TrainingOptions(data=opts["data"], cache_dir=opts["cache_dir"], input_size=config.input_size,
                                      margin=config.margin)
            cache, size, margin = cache_path_for(options)
            data = load_crop_cache(cache) if os.path.exists(cache) else build_crop_cache(
                opts["data"], cache, size, margin)
            test = evaluate_test_split(pipeline.classifier, data)
        if opts["photos"]:
            if not os.path.isdir(opts["photos"]):
                raise CommandError(f"Photo folder not found: {opts['photos']}")
            photos = evaluate_photos(pipeline, opts["photos"])
        self.stdout.write(f"model {pipeline.model_version} ({opts['model']})")
        self.stdout.write(format_report(test, photos))
        if photos and opts["show_errors"]:
            for o in photos["errors"]:
                self.stdout.write(f"  wrong: {o.path}: truth {o.truth}, predicted {o.predicted} ({o.confidence})")
        if test and opts["plots"]:
            from predictions.ml.evaluation import write_plots

            for path in write_plots(test, opts["plots"]):
                self.stdout.write(f"wrote {path}")
        if opts["json_path"]:
            if photos:
                photos = {k: v for k, v in photos.items() if k != "errors"}
            with open(opts["json_path"], "w") as handle:
                json.dump({"model_version": pipeline.model_version, "test_split": test, "photos": photos},
                          handle, indent=2)
