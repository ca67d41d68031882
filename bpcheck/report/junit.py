"""junit.xml: one <testcase> per (case, reference); failing labels are <failure>, SKIPPED is <skipped>.

Labels that are not failing (AGREE, KINK, FD_NOISE, CONVENTION, ERROR unless in fail_on) pass,
with the label in <system-out>, so CI dashboards count exactly what the exit code counts.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from ..results import RunResult
from . import analysis as an


def render(run: RunResult) -> str:
    fail_on = set(run.meta.get("fail_on") or ("ENGINE", "REFERENCE"))
    suite = ET.Element("testsuite", name="bpcheck")
    counts = {"tests": 0, "failures": 0, "skipped": 0, "errors": 0}
    total = 0.0
    for r, name, v in an.pairs(run):
        label = an.label_of(r, v)
        seconds = (v.seconds if v is not None else 0.0) + r.seconds / max(len(r.verdicts), 1)
        total += seconds
        case = ET.SubElement(suite, "testcase", classname=f"bpcheck.{r.regime}.{r.dtype}",
                             name=f"{r.case_id}[{name}] {r.arch}", time=f"{seconds:.6f}")
        text = v.message() if v is not None else f"the producer failed: {r.error}"
        counts["tests"] += 1
        if label in fail_on:
            counts["failures"] += 1
            ET.SubElement(case, "failure", type=label, message=text[:300]).text = text
        elif label == "SKIPPED":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=text[:300])
        else:
            ET.SubElement(case, "system-out").text = text
    for k, n in counts.items():
        suite.set(k, str(n))
    suite.set("time", f"{total:.6f}")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
