"""The trainer and evaluator of tic (`tic train`, `tic eval`, `tic report`). The folder train/ is
installed as the package `tic_train` (pyproject.toml: [tool.setuptools.package-dir])."""
