#!/usr/bin/env python3
"""Elides what changes from run to run in tests/cmd/*.md transcripts:
IDs, times, durations, sizes of encrypted data. Run it after
`TRYCMD=overwrite cargo test --test cli_transcripts`, then review
`git diff tests/cmd`."""
import re, sys, glob, os

RULES = [
    (r"\(id [0-9a-f]{8}, family [0-9a-f]{8}\)", "(id [..], family [..])"),
    (r"\b(snapshot|key|folder) [0-9a-f]{8,12}\b", r"\1 [..]"),
    (r"\.conflict-[0-9a-f]{8}-\d{8}-\d{6}", ".conflict-[..]"),
    (r"from \S+ at \[\.\.\]", "from [..] at [..]"),
    (r"wrote [0-9.]+ (B|KiB|MiB) to", "wrote [..] to"),
    (r"`ferry ls (\S+) [0-9a-f]{8}`", r"`ferry ls \1 [..]`"),
    (r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d)?", "[..]"),
    (r"\b\d+\.\d\ds\b", "[..]s"),
    (r"added [0-9.]+ (B|KiB|MiB) to the store", "added [..] to the store"),
    (r'"(id|root|store_id|family_id|parents?)": "[0-9a-f]{32,64}"', r'"\1": "[..]"'),
    (r'"(time_ns|bytes_added|duration_s)": [0-9.e-]+', r'"\1": [..]'),
    (r"^[0-9a-f]{8}  ", "[..]  "),
]

def elide(text):
    out = []
    for line in text.split("\n"):
        for pat, rep in RULES:
            line = re.sub(pat, rep, line)
        out.append(line)
    return "\n".join(out)

here = os.path.dirname(os.path.abspath(__file__))
for f in sys.argv[1:] or glob.glob(os.path.join(here, "*.md")):
    s = open(f).read()
    n = elide(s)
    if n != s:
        open(f, "w").write(n)
