"""Copies the data folders (prompts/, baselines/, reports/) into the wheel as mibench/_data/."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_FOLDERS = ("prompts", "baselines", "reports")


class BuildWithData(build_py):
    def run(self):
        super().run()
        root = Path(__file__).parent
        for name in DATA_FOLDERS:
            target = Path(self.build_lib) / "mibench" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(root / name, target)


setup(cmdclass={"build_py": BuildWithData})
