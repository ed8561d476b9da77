#!/usr/bin/env python3
"""Image optimisation benchmark: secmail beside optipng -o2, optipng -o5 and Pillow optimize=True.

Usage: bench_images.py SECMAIL_BINARY DIR [LEVEL...]
For every PNG and JPEG in DIR: output bytes and wall-clock seconds of each tool, per image and in
total, all in this one run. optipng reads PNG only, so a JPEG is first converted to a plain PNG
(Pillow, compress_level=1; not timed) that optipng then optimises. Every output of every tool is
decoded by Pillow and compared with Pillow's decoding of the input: a tool whose pixels differ
is flagged.
"""
import os, subprocess, sys, tempfile, time
from PIL import Image

binary, folder = sys.argv[1], sys.argv[2]
levels = [int(x) for x in sys.argv[3:]] or [2]
files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".png", ".jpg", ".jpeg")))
work = tempfile.mkdtemp(prefix="bench-images-")

def pixels(path):
    with Image.open(path) as im:
        im.load()
        mode = "RGBA" if im.mode in ("RGBA", "LA", "PA", "P", "I;16", "I") or "transparency" in im.info else "RGB"
        if im.mode in ("I;16", "I;16B", "I"):
            return ("I16", im.size, im.tobytes())
        return (mode, im.size, im.convert("RGBA").tobytes())

def timed(command):
    start = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start

# BENCH_SKIP="optipng -o5,Pillow" leaves tools out (for quick reruns).
skipped = {t.strip() for t in os.environ.get("BENCH_SKIP", "").split(",") if t.strip()}
tools = [t for t in [f"secmail -{level}" for level in levels] + ["optipng -o2", "optipng -o5", "Pillow"] if t not in skipped]
totals = {tool: [0, 0.0] for tool in tools}
input_total = 0
mismatches = []
print(f"{'image':42} {'input':>9} " + " ".join(f"{t:>22}" for t in tools))
for name in files:
    source = os.path.join(folder, name)
    input_total += os.path.getsize(source)
    reference = pixels(source)
    png_input = source
    if not name.lower().endswith(".png"):
        png_input = os.path.join(work, name + ".plain.png")
        with Image.open(source) as im:
            im.save(png_input, compress_level=1)
    row = []
    for tool in tools:
        out = os.path.join(work, f"{name}.{tool.replace(' ', '')}.png")
        if tool.startswith("secmail"):
            seconds = timed([binary, "image", "optimize", source, "-o", out, "--level", tool[-1]])
        elif tool.startswith("optipng"):
            seconds = timed(["optipng", tool.split()[1], "-quiet", "-out", out, png_input])
        else:
            start = time.monotonic()
            with Image.open(source) as im:
                im.save(out, optimize=True)
            seconds = time.monotonic() - start
        size = os.path.getsize(out)
        if pixels(out)[2] != reference[2]:
            mismatches.append(f"{tool}: {name}")
        totals[tool][0] += size
        totals[tool][1] += seconds
        row.append(f"{size:>12,} {seconds:>8.2f}s")
    print(f"{name:42} {os.path.getsize(source):>9,} " + " ".join(f"{c:>22}" for c in row))
print(f"{'TOTAL':42} {input_total:>9,} " + " ".join(f"{totals[t][0]:>12,} {totals[t][1]:>8.2f}s" for t in tools))
for mismatch in mismatches:
    print("PIXELS DIFFER:", mismatch)
