"""Write tests/data/mnist1d_reference.npz: datasets made by the original `mnist1d` package, which
tests/test_mnist1d.py compares engine/mnist1d.py's port against.

The package is not a dependency of the app (it needs scipy, requests and matplotlib, 70 MB of the installer), so
run this in a separate environment, with the versions the port was made from:

    python3.11 -m venv /tmp/mnist1d-ref
    /tmp/mnist1d-ref/bin/pip install numpy==2.4.6 scipy==1.17.1 mnist1d==0.0.2.post1
    /tmp/mnist1d-ref/bin/python scripts/mnist1d_reference.py
"""
from pathlib import Path

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

# (num_samples, seed): small enough to keep in the repository; 333 does not divide by ten (the package drops the rest).
CASES = [(200, 0), (333, 42)]
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "mnist1d_reference.npz"


def main() -> None:
    arrays = {}
    for num_samples, seed in CASES:
        args = get_dataset_args()
        args.num_samples, args.seed = num_samples, seed
        data = make_dataset(args)
        for key in ("x", "y", "x_test", "y_test"):
            arrays[f"n{num_samples}_seed{seed}_{key}"] = data[key]
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
