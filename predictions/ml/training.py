"""Train the gender classifier on UTKFace crops and write ``model.h5`` with its config and a metrics file.

Reproducible by seed on the same machine and library versions. The schedule is fixed by ``epochs`` (cosine decay
over all of them), so a run is comparable to another; ``limit``/``epochs=1`` make the tiny smoke run the test
suite uses. The validation split (never the test split) picks the checkpoint and fits the calibration temperature.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass

import numpy as np

from .classifier import ClassifierConfig, GenderClassifier, file_version, write_config
from .dataset import build_crop_cache, load_crop_cache


@dataclass
class TrainingOptions:
    data: str
    output: str = "model.h5"
    cache_dir: str = ".cache"
    input_size: int = 64
    margin: float = 1.3
    jitter: int = 8  # the cache holds crops this many pixels wider, for random framing
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 3e-3
    width: float = 1.0
    seed: int = 1337
    limit: int | None = None  # train on the first N records only (smoke runs)
    flip_average: bool = True
    init_from: str | None = None  # continue from this model's weights (a second, warm-restarted schedule)
    workers: int = 2
    log: callable = print


def cache_path_for(options: TrainingOptions) -> tuple[str, int, float]:
    size = options.input_size + options.jitter
    margin = options.margin * size / options.input_size
    suffix = f"-limit{options.limit}" if options.limit else ""
    name = f"utkface-crops-{size}-m{margin:.4f}{suffix}.npz"
    return os.path.join(options.cache_dir, name), size, margin


def build_model(input_size: int, width: float = 1.0):
    """A MobileNet-style CNN of built-in layers only (so ``model.h5`` loads without custom objects)."""
    import keras
    from keras import layers

    def filters(n):
        return max(8, int(n * width))

    inputs = keras.Input((input_size, input_size, 3), name="face")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(filters(32), 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    for out, stride in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1), (512, 2), (512, 1)]:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
        x = layers.Conv2D(filters(out), 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(1, name="female_logit")(x)  # a logit: the temperature is applied at serving time
    return keras.Model(inputs, outputs, name="gender_cnn")


def _augmenting_dataset(crops, labels, options: TrainingOptions):
    import tensorflow as tf

    size = options.input_size

    def augment(image, label):
        image = tf.image.random_crop(image, [size, size, 3])
        image = tf.image.random_flip_left_right(image)
        x = tf.cast(image, tf.float32) / 255.0
        x = tf.image.random_brightness(x, 0.15)
        x = tf.image.random_contrast(x, 0.75, 1.3)
        x = tf.image.random_saturation(x, 0.6, 1.4)
        x = tf.image.random_hue(x, 0.03)
        x = tf.clip_by_value(x, 0.0, 1.0)
        # small or blurry faces, as in group photos and phone snapshots
        low = tf.random.uniform([], 16, size, dtype=tf.int32)
        x = tf.cond(tf.random.uniform([]) < 0.25,
                    lambda: tf.image.resize(tf.image.resize(x, [low, low]), [size, size]), lambda: x)
        x = tf.cond(tf.random.uniform([]) < 0.25,
                    lambda: tf.image.random_jpeg_quality(x, 25, 90), lambda: x)
        x = tf.cond(tf.random.uniform([]) < 0.05,
                    lambda: tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)), lambda: x)
        x = tf.reshape(x, [size, size, 3])
        return x * 255.0, label

    ds = tf.data.Dataset.from_tensor_slices((crops, labels.astype(np.float32)))
    ds = ds.shuffle(len(labels), seed=options.seed, reshuffle_each_iteration=True)
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(options.batch_size).prefetch(tf.data.AUTOTUNE)


def centre(crops: np.ndarray, size: int) -> np.ndarray:
    """The serving framing: the centre ``size`` pixels of the wider cached crops."""
    off = (crops.shape[1] - size) // 2
    return crops[:, off:off + size, off:off + size]


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood on held-out data (grid search)."""
    best_t, best_nll = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.3), np.log(5.0), 200)):
        z = logits / t
        nll = np.mean(np.logaddexp(0, z) - labels * z)
        if nll < best_nll:
            best_t, best_nll = float(t), float(nll)
    return best_t


def train(options: TrainingOptions) -> dict:
    import keras
    import tensorflow as tf

    log = options.log
    started = time.time()
    keras.utils.set_random_seed(options.seed)
    cache, size, margin = cache_path_for(options)
    if os.path.exists(cache):
        data = load_crop_cache(cache)
        log(f"crops: loaded {cache}")
    else:
        log(f"crops: detecting and cropping {options.data} into {cache} ...")
        data = build_crop_cache(options.data, cache, size, margin, workers=options.workers, limit=options.limit)
    train_mask = ~data["test"] & ~data["validation"]
    val_mask = ~data["test"] & data["validation"]
    x_train, y_train = data["crops"][train_mask], data["gender"][train_mask]
    x_val, y_val = centre(data["crops"][val_mask], options.input_size), data["gender"][val_mask]
    log(f"data: {train_mask.sum()} train, {val_mask.sum()} validation, {data['test'].sum()} test (held out); "
        f"face found by the detector in {data['detected'].mean():.2%} of chips")

    model = build_model(options.input_size, options.width)
    if options.init_from:
        model.load_weights(options.init_from)
        log(f"weights: starting from {options.init_from}")
    steps = max(1, int(np.ceil(len(y_train) / options.batch_size))) * options.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        options.learning_rate / 10, steps, alpha=0.01,
        warmup_target=options.learning_rate, warmup_steps=min(steps // 10, 500))
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=5e-5),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])
    os.makedirs(options.cache_dir, exist_ok=True)
    best_weights = os.path.join(options.cache_dir, "best.weights.h5")

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"epoch {epoch + 1}/{options.epochs}: loss {logs.get('loss', 0):.4f} "
                f"acc {logs.get('accuracy', 0):.4f} val_loss {logs.get('val_loss', 0):.4f} "
                f"val_acc {logs.get('val_accuracy', 0):.4f} ({time.time() - started:.0f} s)")

    history = model.fit(
        _augmenting_dataset(x_train, y_train, options),
        validation_data=(x_val.astype(np.float32), y_val.astype(np.float32)),
        epochs=options.epochs, verbose=0,
        callbacks=[EpochLog(), keras.callbacks.ModelCheckpoint(
            best_weights, monitor="val_loss", save_best_only=True, save_weights_only=True)])
    model.load_weights(best_weights)

    def logits_of(x):
        x = x.astype(np.float32)
        z = model.predict(x, batch_size=256, verbose=0)[:, 0]
        if options.flip_average:
            z = (z + model.predict(x[:, :, ::-1], batch_size=256, verbose=0)[:, 0]) / 2
        return z

    val_logits = logits_of(x_val)
    temperature = fit_temperature(val_logits, y_val.astype(np.float64))
    val_acc = float(np.mean((val_logits > 0) == (y_val == 1)))
    elapsed = time.time() - started
    report = {
        "data": os.path.basename(options.data), "seed": options.seed, "epochs": options.epochs,
        "learning_rate": options.learning_rate, "init_from": options.init_from,
        "best_epoch": int(np.argmin(history.history["val_loss"])) + 1,
        "train_images": int(train_mask.sum()), "validation_images": int(val_mask.sum()),
        "split": "test = sha1(basename)[0] < 26 (held out); validation = sha1(basename)[1] < 26",
        "validation_accuracy": round(val_acc, 4), "temperature": round(temperature, 4),
        "parameters": int(model.count_params()), "training_seconds": round(elapsed),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "tensorflow": tf.__version__,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    config = ClassifierConfig(input_size=options.input_size, margin=options.margin, temperature=temperature,
                              flip_average=options.flip_average, report=report)
    model.save(options.output)
    write_config(options.output, config)
    report["model_version"] = file_version(options.output)
    metrics_path = os.path.splitext(options.output)[0] + ".metrics.json"
    with open(metrics_path, "w") as handle:
        json.dump({"training": report}, handle, indent=2)
    log(f"saved {options.output} ({report['model_version']}), metrics in {metrics_path}")
    log(json.dumps(report, indent=2))
    return report


def load_trained(path: str) -> GenderClassifier:
    return GenderClassifier.load(path)
