"""ftrecipe's console is ftrecipe's: what the installed libraries write about themselves is collected
(a run's libraries.log), restated in ftrecipe's words where it changes what the user gets, and
bitsandbytes is not imported where nothing is quantised. Run with whatever library versions are
installed, so that a new release's chatter fails here first (and in every `run_cli` of the suite)."""

from __future__ import annotations

import logging
import subprocess
import sys

from ftrecipe.libraries import NOTICES, LibraryMessages, adopt_library_loggers
from ftrecipe.testing import OFFLINE_ENV, foreign_lines
from tests.conftest import ROOT

QLORA = ROOT / "recipes" / "llama2-7b-sql-qlora.yaml"


def test_the_foreign_line_check_knows_a_library_from_ftrecipe():
    stderr = ("r.yaml:3:9: model.base: missing\nwarning: few examples\nftrecipe run: boom\n"
              "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes'\n"
              "/site/transformers/modeling_utils.py:3206: FutureWarning: deprecated\n  warnings.warn(\n")
    assert foreign_lines(stderr) == ["Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes'",
                                     "/site/transformers/modeling_utils.py:3206: FutureWarning: deprecated"]


BITSANDBYTES_IMPORTED = """
import sys
from ftrecipe.cli import main
code = main(sys.argv[1:], owns_process=True)
module = sys.modules.get("bitsandbytes")
print("bitsandbytes imported:", module is not None, "exit", code)
"""


def imports_bitsandbytes(*args: str) -> str:
    env = {**__import__("os").environ, **OFFLINE_ENV}
    result = subprocess.run([sys.executable, "-c", BITSANDBYTES_IMPORTED, *args], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=600)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]


def test_a_plan_leaves_bitsandbytes_unimported_even_for_qlora():
    """NF4 storage and 8-bit states are arithmetic in a plan: bitsandbytes (which reaches for hub kernels
    when imported) stays out, although Transformers, Diffusers and PEFT import it whenever installed."""
    assert imports_bitsandbytes("plan", str(QLORA), "--format", "json") == "bitsandbytes imported: False exit 0"


def test_library_messages_are_collected_and_restated_once(tmp_path):
    collector = LibraryMessages()
    said: list[str] = []
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    logger.addHandler(collector)
    try:
        prefix, needle, words = NOTICES[0]
        logger.warning("Failed to load CPU %s from kernels-community: not cached", needle)
        collector.tell(said.append)  # a notice from before the reporter existed is said when it does
        logger.warning("Failed to load CPU %s from kernels-community: again", needle)
        logging.getLogger("ftrecipe.anything").addHandler(collector)
        logging.getLogger("ftrecipe.anything").warning("ours: never collected")
        collector.write_to(tmp_path / "libraries.log")
        logger.warning("later: straight to the file")
    finally:
        logger.removeHandler(collector)
        logging.getLogger("ftrecipe.anything").removeHandler(collector)
        collector.close()
    assert said == [words]
    lines = (tmp_path / "libraries.log").read_text().splitlines()
    assert len(lines) == 3 and all("bitsandbytes.backends.cpu.ops" in line for line in lines)
    assert lines[0].endswith("not cached") and lines[-1].endswith("later: straight to the file")


def test_a_library_console_handler_is_routed_to_the_collector(monkeypatch):
    import ftrecipe.libraries as libraries

    collector = LibraryMessages()
    monkeypatch.setattr(libraries, "_collector", collector)
    logger = logging.getLogger("somelibrary")
    console = logging.StreamHandler(sys.stderr)
    logger.addHandler(console)
    logger.propagate, logger.level = False, logging.ERROR
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        adopt_library_loggers()
        logger.warning("a notice about itself")
    finally:
        root.removeHandler(collector)
        logger.handlers.clear()
    assert console not in logger.handlers and logger.propagate and logger.level == logging.WARNING
    assert collector.count == 1 and collector.lines[0].endswith("somelibrary: a notice about itself")
