#!/usr/bin/env python3
"""Checks a static site as `buslab report` writes it (Python standard library only).

    python3 ci/check_site.py SITE_DIR

- every .html page parses with html.parser, has a doctype, and its
  elements nest: each end tag closes an open element, and no element is
  left open except those whose end tag HTML lets one omit;
- every local file a page or an SVG refers to (href, src, srcset,
  xlink:href, CSS url()) exists inside the site;
- nothing refers outside: no http:, https:, ftp: or protocol-relative URL
  (the site must read offline), no reference that climbs out of SITE_DIR.

Prints one line per problem and exits 1 if there is any, 0 otherwise.
"""

import html.parser
import os
import re
import sys
import urllib.parse

VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
    "param", "source", "track", "wbr",
}
# Elements whose end tag HTML lets one omit (closed implicitly).
OPTIONAL_END = {
    "html", "head", "body", "p", "li", "dt", "dd", "option", "optgroup", "thead",
    "tbody", "tfoot", "tr", "td", "th", "colgroup", "caption", "rb", "rt", "rp",
}
URL_ATTRS = {"href", "src", "xlink:href", "poster", "data", "action", "formaction"}
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)")
EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//|^(?:https?|ftp):", re.I)


class Page(html.parser.HTMLParser):
    def __init__(self, path):
        super().__init__(convert_charrefs=True)
        self.path = path
        self.stack = []
        self.problems = []
        self.refs = []
        self.doctype = False
        self.in_svg = 0

    def problem(self, text):
        line, col = self.getpos()
        self.problems.append(f"{self.path}:{line}:{col + 1}: {text}")

    def handle_decl(self, decl):
        if decl.lower().startswith("doctype"):
            self.doctype = True

    def handle_starttag(self, tag, attrs):
        self.attrs(tag, attrs)
        if tag == "svg":
            self.in_svg += 1
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.attrs(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if tag == "svg":
            self.in_svg = max(0, self.in_svg - 1)
        open_tags = [t for t, _ in self.stack]
        if tag not in open_tags:
            self.problem(f"</{tag}> closes no open element")
            return
        while self.stack:
            top, pos = self.stack.pop()
            if top == tag:
                return
            if top not in OPTIONAL_END:
                self.problem(f"<{top}> opened at line {pos[0]} is closed implicitly by </{tag}>")

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "style":
            self.refs.extend(CSS_URL.findall(data))

    def attrs(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in URL_ATTRS:
                self.refs.append(value)
            elif name == "srcset":
                self.refs.extend(part.strip().split(" ")[0] for part in value.split(",") if part.strip())
            elif name == "style":
                self.refs.extend(CSS_URL.findall(value))

    def finish(self, is_html):
        self.close()
        for tag, pos in self.stack:
            if tag not in OPTIONAL_END:
                self.problems.append(f"{self.path}:{pos[0]}: <{tag}> is never closed")
        if is_html and not self.doctype:
            self.problems.append(f"{self.path}: no <!DOCTYPE html>")


def check_ref(site, page_path, ref, problems):
    ref = ref.strip()
    if not ref or ref.startswith(("#", "data:", "javascript:", "mailto:")):
        return
    if EXTERNAL.search(ref):
        problems.append(f"{page_path}: external URL {ref!r} (the site must read offline)")
        return
    parsed = urllib.parse.urlsplit(ref)
    if parsed.scheme:
        problems.append(f"{page_path}: URL with a scheme {ref!r}")
        return
    target = urllib.parse.unquote(parsed.path)
    if not target:
        return
    base = site if target.startswith("/") else os.path.dirname(page_path)
    full = os.path.normpath(os.path.join(base, target.lstrip("/")))
    if os.path.commonpath([os.path.abspath(full), os.path.abspath(site)]) != os.path.abspath(site):
        problems.append(f"{page_path}: {ref!r} points outside the site")
    elif not os.path.exists(full):
        problems.append(f"{page_path}: {ref!r} does not exist ({os.path.relpath(full, site)})")


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    site = sys.argv[1]
    if not os.path.isdir(site):
        print(f"{site}: not a directory", file=sys.stderr)
        return 1
    problems, pages, refs = [], 0, 0
    for root, _, files in os.walk(site):
        for name in sorted(files):
            path = os.path.join(root, name)
            ext = os.path.splitext(name)[1].lower()
            if ext not in (".html", ".htm", ".svg", ".css"):
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if ext == ".css":
                found = CSS_URL.findall(text)
            else:
                page = Page(path)
                try:
                    page.feed(text)
                    page.finish(ext != ".svg")
                except Exception as e:  # html.parser raises on nothing it can recover from
                    problems.append(f"{path}: cannot parse: {e}")
                    continue
                problems.extend(page.problems)
                found = page.refs
                pages += ext != ".svg"
            refs += len(found)
            for ref in found:
                check_ref(site, path, ref, problems)
    if pages == 0:
        problems.append(f"{site}: no HTML page")
    for p in problems:
        print(p)
    print(f"check_site: {pages} pages, {refs} references, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
