"""`python manage.py trainmodel`: train the classifier and write model.h5 (thin wrapper over the ML core)."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictions.ml.training import TrainingOptions, train

DEFAULT_DATA = "../shared/data/utkface/UTKFace.zip"


class Command(BaseCommand):
    help = "Train the gender classifier on UTKFace and write model.h5 plus model.metrics.json beside it."

    def add_arguments(self, parser):
        defaults = TrainingOptions(data=DEFAULT_DATA)
        parser.add_argument("--data", default=DEFAULT_DATA, help="UTKFace.zip (read in place, never extracted)")
        parser.add_argument("--output", default=str(settings.MODEL_PATH))
        parser.add_argument("--cache-dir", default=defaults.cache_dir, help="where detected face crops are cached")
        parser.add_argument("--epochs", type=int, default=defaults.epochs)
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
        parser.add_argument("--input-size", type=int, default=defaults.input_size)
        parser.add_argument("--width", type=float, default=defaults.width, help="channel multiplier")
        parser.add_argument("--margin", type=float, default=defaults.margin,
                            help="crop side as a multiple of the detector's box (serving reads it from model.h5)")
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--init-from", default=None,
                            help="start from this model's weights (a warm restart: a second cosine schedule)")
        parser.add_argument("--limit", type=int, default=None, help="use only the first N images (smoke runs)")

    def handle(self, *args, **opts):
        import os

        if not os.path.exists(opts["data"]):
            raise CommandError(f"Training data not found: {opts['data']} (see ../shared/data/README.md)")
        options = TrainingOptions(
            data=opts["data"], output=opts["output"], cache_dir=opts["cache_dir"], epochs=opts["epochs"],
            batch_size=opts["batch_size"], learning_rate=opts["learning_rate"], input_size=opts["input_size"],
            width=opts["width"], margin=opts["margin"], seed=opts["seed"], limit=opts["limit"], init_from=opts["init_from"],
            log=lambda line: self.stdout.write(line))
        train(options)
