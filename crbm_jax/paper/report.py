"""Writing the reproduction report: Markdown, a self-contained HTML page, run metadata."""
from __future__ import annotations

import base64
import html
import importlib.metadata
import mimetypes
import os
import platform
import re
import sys
from typing import Dict

_PACKAGES = ("crbm_jax", "jax", "jaxlib", "optax", "numpy", "scipy", "scikit-learn",
             "soundfile", "matplotlib", "absl-py", "ml_collections")




def package_versions() -> Dict[str, str]:
  versions = {}
  for name in _PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = "not installed"
  return versions


def environment_info() -> Dict[str, object]:
  """Python, platform, CPU count, JAX devices and package versions, for the report."""
  info = {"python": sys.version.split()[0], "platform": platform.platform(),
          "cpu_count": os.cpu_count(), "packages": package_versions()}
  try:
    import jax
    info["jax_devices"] = [str(d) for d in jax.devices()]
  except Exception as e:  # pragma: no cover - reported, never fatal
    info["jax_devices"] = [f"unavailable: {e}"]
  return info


def _inline_images(body: str, base_dir: str) -> str:
  """Replace ``<img src="relative.png">`` with data: URIs so the page stands alone."""

  def replace(match):
    src = html.unescape(match.group(2))
    path = os.path.join(base_dir, src)
    if src.startswith(("data:", "http:", "https:")) or not os.path.isfile(path):
      return match.group(0)
    mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as f:
      data = base64.b64encode(f.read()).decode("ascii")
    return f'{match.group(1)}data:{mime};base64,{data}{match.group(3)}'

  return re.sub(r'(<img[^>]*?src=")([^"]+)(")', replace, body)


_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
code, pre { background: #f5f5f5; } pre { padding: 0.6em; overflow-x: auto; }
h1, h2, h3 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
"""


def markdown_to_html(markdown_text: str, base_dir: str, title: str) -> str:
  """A self-contained HTML page (images inlined) from Markdown with tables."""
  import markdown
  body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code", "toc"])
  body = _inline_images(body, base_dir)
  return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
          f"<body>\n{body}\n</body></html>\n")
