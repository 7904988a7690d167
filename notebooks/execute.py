"""Executes every notebook in this folder headless against a run folder and fails on the
first cell error: python notebooks/execute.py RUN_DIR (the test suite does this)."""
import os
import pathlib
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    run = pathlib.Path(sys.argv[1]).resolve()
    os.environ["CLIENTSEG_RUN"] = str(run)
    here = pathlib.Path(__file__).parent
    books = sorted(here.glob("*.ipynb"))
    if not books:
        print("no notebooks found")
        return 1
    for path in books:
        nb = nbformat.read(path, as_version=4)
        if any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
            print(f"{path.name}: committed with outputs; clear them before committing")
            return 1
        client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(here)}})
        try:
            client.execute()
        except CellExecutionError as e:
            print(f"{path.name}: a cell failed:\n{e}")
            return 1
        print(f"{path.name}: {len(nb.cells)} cells ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
