"""What scripts/setup.sh promises beyond the packages: progress bars render in Jupyter, and
JupyterLab is configured not to reach for the network."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_progress_bars_render_as_widgets_in_jupyter():
    import tqdm.notebook

    assert tqdm.notebook.IProgress is not None, "ipywidgets missing: tqdm prints 'IProgress not found' in Jupyter"


def test_jupyterlab_never_fetches_news():
    installed = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(installed.read_text())["@jupyterlab/apputils-extension:notification"]
    assert settings == {"checkForUpdates": False, "fetchNews": "false"}
    assert installed.read_text() == (ROOT / "scripts" / "jupyterlab-overrides.json").read_text()
