"""The packaged prompt templates (Jinja2). Point RAG_PROMPTS_DIR at a folder of your
own files with the same names to override any of them."""

from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent
