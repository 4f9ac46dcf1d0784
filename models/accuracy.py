"""Accuracy figures of a classifier's predictions: overall, per class, and the confusion matrix."""


import numpy as np

from qnnflow.base.plots import png_bytes

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def predicted_classes(outputs, num_classes):
    """The class per image from a graph's output: the arg-max of the scores (ties to the lower
    index, as ONNX TopK), or the first column when the graph already ends in class indices."""
    outputs = np.asarray(outputs).reshape(len(outputs), -1)
    if outputs.shape[1] == num_classes:
        return np.argsort(-outputs, axis=1, kind="stable")[:, 0].astype(np.int64)
    return outputs[:, 0].astype(np.int64)


def confusion_matrix(labels, predictions, num_classes):
    """Counts [true class, predicted class]."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def accuracy_report(labels, predictions, stage, dataset):
    """accuracy, images, stage, and per-class accuracy (by class name) as a JSON-ready dict."""
    names = CLASS_NAMES[dataset]
    matrix = confusion_matrix(labels, predictions, len(names))
    per_class = {
        name: (float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None) for i, name in enumerate(names)
    }
    return {
        "stage": stage,
        "dataset": dataset,
        "images": int(len(labels)),
        "correct": int(np.trace(matrix)),
        "accuracy": float(np.trace(matrix) / max(len(labels), 1)),
        "per_class_accuracy": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def confusion_png(report, title) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = CLASS_NAMES[report["dataset"]]
    matrix = np.asarray(report["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black")
    ax.set_title(f"{title}: {100 * report['accuracy']:.2f}% of {report['images']}")
    return png_bytes(fig, dpi=80)
