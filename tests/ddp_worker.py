"""What the tests start with torchrun: 09_distributed.py's main() with small knobs, in every process.

    torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py KNOBS.json RESULT.json

KNOBS.json holds main()'s keyword arguments; process 0 writes what main() returned (the numbers,
not the models) to RESULT.json. With "die": RANK in KNOBS.json, that process kills itself
(SIGKILL, no goodbye) as its first training epoch starts, as a crashed machine would.
"""

import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conftest import script as load  # noqa: E402  (tests/ is this file's folder: the tests' one loader)
from mnist_common import friendly_errors  # noqa: E402


def plain(value):
    """main()'s results as JSON can hold them: numbers, words, lists; models and tensors left out."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items() if key != "model"}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


def main() -> None:
    knobs, result_path = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    script = load("09_distributed.py")
    die = knobs.pop("die", None)
    if die is not None and int(os.environ["RANK"]) == die:
        real = script.train_one_epoch

        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        script.train_one_epoch = killed
    if "parts" in knobs:
        knobs["parts"] = tuple(knobs["parts"])
    with friendly_errors():
        result = script.main(**knobs)
    if os.environ["RANK"] == "0":
        result_path.write_text(json.dumps(plain(result), indent=1))


if __name__ == "__main__":
    main()
