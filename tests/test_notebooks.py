"""Check that every notebook is stored without outputs and runs top to bottom.

The execution tests are marked slow (2 to 12 seconds per notebook on 2 CPU cores).
Each notebook runs in a fresh kernel of the interpreter that runs pytest, with the
notebooks/ folder as its working directory, as Jupyter runs it for a reader.
"""

import json
import os
import pathlib
import sys
import time

import pytest

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

# Seconds allowed for each cell and for each whole notebook. The notebooks are meant to
# finish in about 30 seconds on a CPU, so this leaves a factor of two for slow machines.
TIMEOUT = 60

KERNEL_NAME = "nptransformer-pytest"
INSTALL_HINT = "install the dev extras: pip install -e '.[dev]'"


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_has_no_outputs(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    with_outputs = [i for i, cell in enumerate(cells) if cell.get("outputs")]
    with_counts = [
        i for i, cell in enumerate(cells) if cell.get("execution_count") is not None
    ]
    fix = f"strip them with `nbstripout {path.relative_to(NOTEBOOK_DIR.parent)}`"
    assert not with_outputs, f"cells {with_outputs} (0-based) have outputs; {fix}"
    assert not with_counts, (
        f"cells {with_counts} (0-based) have execution counts; {fix}"
    )


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory):
    """Write a kernel spec for this interpreter and return its Jupyter data folder.

    A kernel registered as "python3" may belong to another Python. This spec names
    sys.executable, so the notebooks import the same nptransformer as pytest.
    """
    pytest.importorskip("ipykernel", reason=INSTALL_HINT)
    data_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.executable})",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return data_dir


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs(path, kernel_dir, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason=INSTALL_HINT)
    nbformat = pytest.importorskip("nbformat", reason=INSTALL_HINT)
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    # OpenBLAS threads spin while they wait for a core. On 2 cores shared with other
    # jobs, 300 training steps of the notebooks' model took 58 to 106 s with the default
    # threads and 7 to 10 s with one thread, so the kernel gets one unless set otherwise.
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, os.environ.get(variable, "1"))

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=TIMEOUT,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    started = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - started

    assert elapsed <= TIMEOUT, (
        f"{path.name} took {elapsed:.1f} s, more than {TIMEOUT} s; "
        "shorten its training or its gradient checks"
    )
