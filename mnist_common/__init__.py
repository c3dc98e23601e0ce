"""Shared code of the MNIST learning journey: `from mnist_common import ...` is all a script needs.

Each module holds one kind of thing; everything is re-exported here.

  runtime.py      paths, learner-friendly errors, device, precision, seeds
  data.py         fetching and verifying MNIST, loading it as tensors, mini-batches
  networks.py     SimpleNN (Phase 2), CNN (Phase 5), DeepCNN and Ensemble (06), build_model
  training.py     settings records, the training loop, evaluation, fit, the 03, 04 and 06 recipes
  augment.py      shifting, turning and resizing whole batches (data augmentation)
  robustness.py   accuracy on moved and turned test digits
  handwriting.py  reading your own image files and preparing them as MNIST's digits
  checkpoints.py  saving and loading models, and never replacing a good one by accident
  experiments.py  the experiment log, models/experiments.csv
  figures.py      save_figure, and the figures several scripts draw

Run `python -m mnist_common` to fetch and verify the data and nothing else.
"""

from .augment import affine, random_affine, rotate, shift
from .checkpoints import (
    atomic_save,
    describe_arch,
    load_checkpoint,
    load_model,
    load_weights,
    missing_model_message,
    previous_path,
    save_checkpoint,
    save_run,
)
from .data import (
    CLASS_NAMES,
    MNIST_FILES,
    SOURCES,
    MnistSplits,
    batches,
    count_batches,
    ensure_mnist,
    load_mnist,
    normalize,
    pixel_stats,
    read_idx,
    sha256_of,
)
from .experiments import EXPERIMENT_LOG, log_experiment, print_best_runs, read_experiments
from .figures import plot_curves, save_figure
from .handwriting import predict_views, prepare_digit, read_image
from .networks import (
    ACTIVATIONS,
    CNN,
    IMAGE_PIXELS,
    NUM_CLASSES,
    DeepCNN,
    Ensemble,
    SimpleNN,
    build_model,
    count_parameters,
    dead_channels,
)
from .robustness import robustness_table, rotated_accuracy, shifted_accuracy
from .runtime import (
    DATA_DIR,
    MODELS_DIR,
    ROOT,
    VIS_DIR,
    LearnerError,
    autocast,
    cpu_bf16_feature,
    cpu_has_native_bf16,
    ensure_writable,
    friendly_errors,
    pick_device,
    pick_precision,
    plural,
    say,
    set_seed,
    shown,
)
from .training import (
    AT_CHANCE,
    AugmentedCNNSettings,
    CNNSettings,
    DivergedError,
    EpochStats,
    History,
    MLPSettings,
    TrainedRun,
    TrainingSettings,
    evaluate,
    fit,
    make_optimizer,
    one_cycle,
    predict_logits,
    start_training,
    train_cnn,
    train_mlp,
    train_one_epoch,
)

__all__ = [
    "ACTIVATIONS",
    "AT_CHANCE",
    "CLASS_NAMES",
    "CNN",
    "DATA_DIR",
    "EXPERIMENT_LOG",
    "IMAGE_PIXELS",
    "MNIST_FILES",
    "MODELS_DIR",
    "NUM_CLASSES",
    "ROOT",
    "SOURCES",
    "VIS_DIR",
    "AugmentedCNNSettings",
    "CNNSettings",
    "DeepCNN",
    "DivergedError",
    "Ensemble",
    "EpochStats",
    "History",
    "LearnerError",
    "MLPSettings",
    "MnistSplits",
    "SimpleNN",
    "TrainedRun",
    "TrainingSettings",
    "affine",
    "atomic_save",
    "autocast",
    "batches",
    "build_model",
    "count_batches",
    "count_parameters",
    "cpu_bf16_feature",
    "cpu_has_native_bf16",
    "dead_channels",
    "describe_arch",
    "ensure_mnist",
    "ensure_writable",
    "evaluate",
    "fit",
    "friendly_errors",
    "load_checkpoint",
    "load_mnist",
    "load_model",
    "load_weights",
    "log_experiment",
    "make_optimizer",
    "missing_model_message",
    "normalize",
    "one_cycle",
    "pick_device",
    "pick_precision",
    "pixel_stats",
    "plot_curves",
    "plural",
    "predict_logits",
    "predict_views",
    "prepare_digit",
    "previous_path",
    "print_best_runs",
    "random_affine",
    "read_experiments",
    "read_idx",
    "read_image",
    "robustness_table",
    "rotate",
    "rotated_accuracy",
    "save_checkpoint",
    "save_figure",
    "save_run",
    "say",
    "set_seed",
    "sha256_of",
    "shift",
    "shifted_accuracy",
    "shown",
    "start_training",
    "train_cnn",
    "train_mlp",
    "train_one_epoch",
]
