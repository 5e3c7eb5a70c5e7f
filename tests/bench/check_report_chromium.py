#!/usr/bin/env python3
"""Opens a dropout-study report.html in headless Chromium as a reader would: fails on any console error or
uncaught exception, on an <img> whose file is missing or that does not load, or on a page without the
inlined plots; saves a screenshot. Standard library only.

    check_report_chromium.py REPORT_DIR [SCREENSHOT.png]      # exit 0 pass, 1 fail, 77 no chromium (skip)
"""
import html as html_lib
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile


def main():
    report_dir = pathlib.Path(sys.argv[1]).resolve()
    shot = pathlib.Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else report_dir / "report.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("SKIP: chromium is not installed (Debian: apt-get install chromium)")
        return 77
    page = report_dir / "report.html"
    if not page.is_file():
        print(f"FAIL: {page} does not exist")
        return 1
    html = page.read_text(encoding="utf-8")
    for src in re.findall(r'<img[^>]*\bsrc="([^"]+)"', html):
        if not re.match(r"^(data:|https?:)", src) and not (report_dir / src).is_file():
            print(f"FAIL: <img src=\"{src}\"> names a missing file")
            return 1
    # A script put first in <head> records console.error calls, uncaught exceptions and resources that fail to
    # load (capturing error events) into the DOM, which --dump-dom then shows.
    probe = """<script>
window.__errors = [];
const __note = m => { window.__errors.push(String(m)); };
const __ce = console.error.bind(console);
console.error = (...a) => { __note('console.error: ' + a.join(' ')); __ce(...a); };
window.addEventListener('error', e => {
  if (e.target && e.target !== window) __note('failed to load: ' + (e.target.src || e.target.href || e.target.tagName));
  else __note('uncaught: ' + e.message);
}, true);
window.addEventListener('unhandledrejection', e => __note('unhandled rejection: ' + e.reason));
window.addEventListener('load', () => {
  for (const i of document.images) if (!i.complete || i.naturalWidth === 0) __note('missing image: ' + i.src);
  document.body.setAttribute('data-svgs', document.querySelectorAll('svg').length);
  document.body.setAttribute('data-errors', JSON.stringify(window.__errors));
  document.body.setAttribute('data-checked', 'yes');
});
</script>"""
    with tempfile.TemporaryDirectory() as tmp:
        copy = report_dir / ".report-check.html"
        copy.write_text(html.replace("<head>", "<head>" + probe, 1), encoding="utf-8")
        try:
            common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                      f"--user-data-dir={tmp}", "--virtual-time-budget=5000"]
            dom = subprocess.run(common + ["--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=120)
            shot_run = subprocess.run(common + ["--window-size=1500,2400", f"--screenshot={shot}", copy.as_uri()],
                                      capture_output=True, text=True, timeout=120)
        finally:
            copy.unlink(missing_ok=True)
    if dom.returncode != 0 or 'data-checked="yes"' not in dom.stdout:
        print(f"FAIL: chromium could not load the page (exit {dom.returncode}): {dom.stderr.strip()[-500:]}")
        return 1
    found = re.search(r'data-errors="([^"]*)"', dom.stdout)
    errors = json.loads(html_lib.unescape(found.group(1))) if found else ["no error record in the DOM"]
    if errors:
        print("FAIL: errors in the page:\n" + "\n".join(errors))
        return 1
    svgs = int(re.search(r'data-svgs="(\d+)"', dom.stdout).group(1))
    if svgs < 4:
        print(f"FAIL: the page shows {svgs} plots, expected at least 4")
        return 1
    if not shot.is_file() or shot.stat().st_size < 10000:
        print(f"FAIL: no screenshot at {shot}")
        return 1
    print(f"report.html: loaded in headless Chromium without console errors, {svgs} plots; screenshot {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
