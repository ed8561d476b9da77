#!/usr/bin/env python3
"""Image optimisation benchmark: secmail's levels beside oxipng and optipng, same run, same machine.

Usage: bench_images.py SECMAIL_BINARY DIR [LEVEL...]
DIR holds the images, or the parts tune/ and heldout/ (scripts/image-corpus.sh), reported apart:
the encoder's heuristics were tuned on tune/ only. For every PNG and JPEG: output bytes and wall
seconds of each tool, per image and per part. oxipng runs in this process through pyoxipng (its
library, on every core; no process start counted), `-o2` and, with BENCH_ZOPFLI=1, `-o max
--zopfli`; optipng -o2 as a process. BENCH_SKIP="tool,tool" leaves tools out; BENCH_MAX_PIXELS=N
keeps only images of at most N pixels. oxipng and optipng read PNG only, so a JPEG is first
converted to a plain PNG (Pillow, compress_level=1; not timed). Every output is decoded by Pillow
and compared with the input's pixels: a tool whose pixels differ is flagged.

Then the wire: `secmail image wire` gives what `send` puts on the wire for each image, for readers
of PNG and JPEG only ("wire png/jpeg", the policy before JPEG XL) and for readers of everything
this client reads ("wire +jxl"): bytes sent and the sender's image work in seconds (in-process,
no process start), and per part the reader's conversion time (the wire form to the PNG it saves;
the command checks that PNG's pixels).
"""
import json, os, subprocess, sys, tempfile, time
from PIL import Image
import oxipng

binary, folder = sys.argv[1], sys.argv[2]
levels = [int(x) for x in sys.argv[3:]] or [2]
work = tempfile.mkdtemp(prefix="bench-images-")
parts = [p for p in ["tune", "heldout"] if os.path.isdir(os.path.join(folder, p))] or [""]


def pixels(path):
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I"):
            return ("I16", im.size, im.tobytes())
        return (im.size, im.convert("RGBA").tobytes())


def timed(command):
    start = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def oxipng_run(png_input, out, **options):
    data = open(png_input, "rb").read()
    start = time.monotonic()
    result = oxipng.optimize_from_memory(data, strip=oxipng.StripChunks.safe(), **options)
    seconds = time.monotonic() - start
    open(out, "wb").write(result)
    return seconds


tools = [f"secmail -{level}" for level in levels] + ["oxipng -o2"]
if os.environ.get("BENCH_ZOPFLI"):
    tools.append("oxipng max zopfli")
tools.append("optipng -o2")
tools += ["wire png/jpeg", "wire +jxl"]
skipped = {t.strip() for t in os.environ.get("BENCH_SKIP", "").split(",") if t.strip()}
# BENCH_MAX_PIXELS=360000 keeps the images of at most that many pixels (oxipng's zopfli needs
# minutes for one of 2 megapixels).
max_pixels = int(os.environ.get("BENCH_MAX_PIXELS", "0"))
tools = [t for t in tools if t not in skipped]
mismatches = []
print(f"{'image':44} {'input':>10} " + " ".join(f"{t:>21}" for t in tools))
for part in parts:
    directory = os.path.join(folder, part)
    files = sorted(f for f in os.listdir(directory) if f.lower().endswith((".png", ".jpg", ".jpeg")))
    if max_pixels:
        files = [f for f in files if (lambda size: size[0] * size[1])(Image.open(os.path.join(directory, f)).size) <= max_pixels]
    totals = {tool: [0, 0.0] for tool in tools}
    reader_seconds = {tool: 0.0 for tool in tools if tool.startswith("wire")}
    input_total = 0
    for name in files:
        source = os.path.join(directory, name)
        input_total += os.path.getsize(source)
        reference = pixels(source)
        png_input = source
        if not name.lower().endswith(".png"):
            png_input = os.path.join(work, name + ".plain.png")
            with Image.open(source) as im:
                im.save(png_input, compress_level=1)
        row = []
        for tool in tools:
            if tool.startswith("wire"):
                features = "none" if tool == "wire png/jpeg" else "jxl,jxl-rendering"
                result = subprocess.run([binary, "image", "wire", source, "--features", features, "--json"],
                                        check=True, capture_output=True, text=True)
                report = json.loads(result.stdout)
                size, seconds = report["sentBytes"], report["seconds"]
                reader_seconds[tool] += report["readerSeconds"]
                totals[tool][0] += size
                totals[tool][1] += seconds
                row.append(f"{size:>11,} {seconds:>7.2f}s")
                continue
            out = os.path.join(work, f"{name}.{tool.replace(' ', '')}.png")
            if tool.startswith("secmail"):
                seconds = timed([binary, "image", "optimize", source, "-o", out, "--level", tool[-1]])
            elif tool == "oxipng -o2":
                seconds = oxipng_run(png_input, out, level=2)
            elif tool == "oxipng max zopfli":
                seconds = oxipng_run(png_input, out, level=6, deflate=oxipng.Deflaters.zopfli(15))
            else:
                seconds = timed(["optipng", "-o2", "-quiet", "-out", out, png_input])
            size = os.path.getsize(out)
            if pixels(out)[-1] != reference[-1]:
                mismatches.append(f"{tool}: {name}")
            totals[tool][0] += size
            totals[tool][1] += seconds
            row.append(f"{size:>11,} {seconds:>7.2f}s")
            os.remove(out)
        print(f"{name[:44]:44} {os.path.getsize(source):>10,} " + " ".join(f"{c:>21}" for c in row), flush=True)
    label = f"TOTAL {part}" if part else "TOTAL"
    print(f"{label:44} {input_total:>10,} " + " ".join(f"{totals[t][0]:>11,} {totals[t][1]:>7.2f}s" for t in tools))
    if "oxipng -o2" in totals and totals["oxipng -o2"][0]:
        base = totals["oxipng -o2"]
        print(f"{'  vs oxipng -o2 (bytes, time)':44} {'':>10} " + " ".join(
            f"{totals[t][0] / base[0]:>11.3f}x {totals[t][1] / base[1]:>6.2f}x" for t in tools))
    for tool, seconds in reader_seconds.items():
        print(f"  {tool}: the reader's conversion to PNG took {seconds:.2f} s in total")
    print()
for mismatch in mismatches:
    print("PIXELS DIFFER:", mismatch)
