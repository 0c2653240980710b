"""The dependency scan's report (security-report.json): its findings, and the guide's
`jq '.vulnerabilities | group_by(.severity)'`. Pure functions; the report is outside text.

`vulnerabilities` may be a list of findings (the guide's `npm run security:scan`), npm audit's map
of package → entry, or Trivy's `Results[].Vulnerabilities`. A finding is one advisory in one
package, whatever version or how often it is reported again: that is what gets one GitHub issue.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

# Most severe first; labels outside this list sort after it, by name.
SEVERITIES = ("critical", "high", "moderate", "medium", "low", "info", "unknown")
MAX_FINDINGS = 5000


class ReportError(Exception):
    """The report is not what the scan should produce; the message says what is wrong."""


@dataclass(frozen=True)
class Finding:
    key: str  # one advisory in one package
    severity: str
    advisory: str
    package: str
    version: str
    title: str
    url: str
    fixed_in: str


def rank(severity: str) -> tuple[int, str]:
    return (SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES), severity)


def _text(entry: dict[str, Any], *names: str, limit: int = 255) -> str:
    for name in names:
        value = entry.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value).strip():
            return " ".join(str(value).split())[:limit]
    return ""


def finding_key(advisory: str, package: str, title: str) -> str:
    basis = f"{advisory or title}|{package}".lower()
    return hashlib.sha256(basis.encode()).hexdigest()


def _finding(entry: dict[str, Any], package_name: str = "") -> Finding | None:
    severity = _text(entry, "severity", "Severity", limit=16).lower() or "unknown"
    package = _text(entry, "package", "name", "pkgName", "PkgName", "module_name") or package_name
    advisory = _text(entry, "id", "cve", "VulnerabilityID", "advisory", "ghsa_id")
    title = _text(entry, "title", "Title", limit=500)
    url = _text(entry, "url", "PrimaryURL", limit=2000)
    version = _text(entry, "version", "installedVersion", "InstalledVersion", "range", limit=128)
    fixed = _text(entry, "fixedVersion", "FixedVersion", "fixed_in", "patched_versions", limit=128)
    via = entry.get("via")
    if isinstance(via, list):  # npm audit: the advisories behind this package, or the packages it comes via
        first = next((v for v in via if isinstance(v, dict)), None)
        if first is not None:
            title = title or _text(first, "title", limit=500)
            url = url or _text(first, "url", limit=2000)
            advisory = advisory or _text(first, "source")
        else:
            title = title or "via " + ", ".join(str(v) for v in via if isinstance(v, str))[:200]
    fix = entry.get("fixAvailable")
    if isinstance(fix, dict):
        fixed = fixed or f"{_text(fix, 'name')}@{_text(fix, 'version')}".strip("@")
    if not advisory and url:
        found = re.search(r"(GHSA(?:-[0-9a-z]{4}){3}|CVE-\d{4}-\d+)", url, re.I)
        advisory = found.group(1) if found else ""
    if not (package or advisory or title):
        return None
    return Finding(
        key=finding_key(advisory, package, title), severity=severity, advisory=advisory, package=package,
        version=version, title=title, url=url if re.match(r"https?://", url) else "", fixed_in=fixed,
    )  # fmt: skip


def parse_report(data: bytes) -> list[Finding]:
    """The report's findings, one per advisory and package (the first wins), most severe first."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ReportError("the report is not JSON") from None
    if not isinstance(doc, dict):
        raise ReportError("the report should be a JSON object with `vulnerabilities`")
    entries: list[tuple[dict[str, Any], str]] = []
    vulns = doc.get("vulnerabilities")
    if isinstance(vulns, list):
        entries = [(v, "") for v in vulns if isinstance(v, dict)]
    elif isinstance(vulns, dict):  # npm audit --json
        entries = [(v, str(name)) for name, v in vulns.items() if isinstance(v, dict)]
    elif isinstance(doc.get("Results"), list):  # trivy --format json
        for result in doc["Results"]:
            if isinstance(result, dict) and isinstance(result.get("Vulnerabilities"), list):
                entries += [(v, "") for v in result["Vulnerabilities"] if isinstance(v, dict)]
    elif "vulnerabilities" not in doc:
        raise ReportError("the report has no `vulnerabilities` (nor Trivy's `Results`)")
    found: dict[str, Finding] = {}
    for entry, name in entries[:MAX_FINDINGS]:
        f = _finding(entry, name)
        if f is not None:
            found.setdefault(f.key, f)
    return sorted(found.values(), key=lambda f: (rank(f.severity), f.package, f.advisory))


def group_by_severity(findings: list[Finding]) -> list[tuple[str, list[Finding]]]:
    """The guide's `group_by(.severity)`, most severe first."""
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.severity, []).append(f)
    return sorted(groups.items(), key=lambda kv: rank(kv[0]))
