#!/usr/bin/env bash
# Builds the image corpus of the optimiser benchmark (scripts/bench-images.sh) from Debian
# packages and PyPI wheels, beside ../shared/corpus: real photos, screenshots, graphics and icons
# of every PNG colour type. Two parts: tune/ (what the encoder's heuristics were tuned on,
# ../shared/corpus included) and heldout/ (never looked at while tuning; reported separately).
#
# Usage: scripts/image-corpus.sh [DIR]   (default .build-corpus; downloads once, ~60 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build-corpus}
cache="$out/.downloads"
mkdir -p "$cache" "$out/tune" "$out/heldout"

debs=(desktop-base fluxbox gimp-data inkscape-tutorials tango-icon-theme)
for package in "${debs[@]}"; do
  if [ ! -d "$cache/$package" ]; then
    (cd "$cache" && apt-get download "$package" >/dev/null 2>&1) || { echo "cannot download the Debian package $package" >&2; exit 1; }
    dpkg-deb -x "$cache/${package}"_*.deb "$cache/$package"
  fi
done
wheels=(matplotlib==3.8.4 scikit-image==0.26.0)
for wheel in "${wheels[@]}"; do
  name=${wheel%%==*}
  if [ ! -d "$cache/$name" ]; then
    python3 -m pip download --quiet --no-deps --only-binary :all: -d "$cache/wheels" "$wheel"
    mkdir -p "$cache/$name"
    unzip -q -o "$cache"/wheels/"${name//-/_}"-*.whl -d "$cache/$name"
  fi
done

# part  source-path  corpus-name
pick() { cp "$cache/$2" "$out/$1/$3"; }
d=desktop-base/usr/share
pick tune "$d/desktop-base/emerald-theme/grub/grub-16x9.png"          gfx_emerald_grub_1920x1080.png
pick tune "$d/desktop-base/joy-theme/grub/grub-16x9.png"              gfx_joy_grub_1920x1080.png
pick tune "$d/plymouth/themes/lines/background.png"                   gfx_lines_palette_1920x1200.png
pick tune "$d/plymouth/themes/spacefun/background.png"                gfx_spacefun_palette_2048x1542.png
pick tune "$d/plymouth/themes/emerald/glow.png"                       gfx_emerald_glow_rgba_800.png
pick tune "$d/plymouth/themes/spacefun/swirlaxy.png"                  gfx_swirlaxy_rgba_495x450.png
pick tune "$d/icons/desktop-base/256x256/emblems/emblem-debian.png"   icon_emblem_rgba_256.png
pick tune "$d/desktop-base/debian-logos/logo-text-version-256.png"    icon_logo_text_palette_788x256.png
pick tune "fluxbox/usr/share/images/fluxbox/debian-dark.png"          gfx_fluxbox_dark_rgba_1600x1200.png
pick tune "fluxbox/usr/share/images/fluxbox/debian-squared.jpg"       photo_fluxbox_squared_1280x1024.jpg
pick tune "gimp-data/usr/share/gimp/2.0/images/wilber.png"            icon_wilber_rgba_256.png
pick tune "gimp-data/usr/share/gimp/2.0/scripts/images/beavis.jpg"    photo_gimp_grey_350.jpg
pick tune "inkscape-tutorials/usr/share/inkscape/tutorials/potrace.png" shot_inkscape_potrace_561x434.png
pick tune "inkscape-tutorials/usr/share/inkscape/tutorials/tux.png"   icon_tux_palette_152x180.png
pick tune "tango-icon-theme/usr/share/icons/Tango/32x32/animations/process-working.png" icon_tango_spinner_256x128.png
pick tune "$d/desktop-base/joy-theme/login/sddm-preview.jpg"          photo_joy_preview_900x506.jpg
pick tune "scikit-image/skimage/data/astronaut.png"                   photo_skimage_astronaut_512.png
pick tune "scikit-image/skimage/data/page.png"                        shot_skimage_page_grey.png
pick tune "matplotlib/matplotlib/mpl-data/sample_data/logo2.png"      gfx_mpl_logo2.png
for f in ../shared/corpus/*.png ../shared/corpus/*.jpg; do [ -e "$f" ] && cp "$f" "$out/tune/shared_$(basename "$f")"; done
# A screen of 2560x1600 (4.1 megapixels, a laptop's) tiled with the tuning part's screenshots on a
# grey desktop: the size of screenshot the default level's time target names.
python3 -c "import PIL" 2>/dev/null || python3 -m pip install --quiet pillow
python3 - "$out/tune" <<'PY'
import glob, sys
from PIL import Image
shots = sorted(f for f in glob.glob(f"{sys.argv[1]}/*shot*.png") if "composed" not in f)
screen = Image.new("RGB", (2560, 1600), (236, 236, 236))
x = y = row = index = 0
while True:
    shot = Image.open(shots[index % len(shots)]).convert("RGB")
    index += 1
    if x + shot.width > screen.width:
        x, y, row = 0, y + row + 8, 0
    if y >= screen.height:
        break
    screen.paste(shot, (x, y))
    x, row = x + shot.width + 8, max(row, shot.height)
screen.save(f"{sys.argv[1]}/shot_composed_screen_2560x1600.png")
PY

pick heldout "gimp-data/usr/share/gimp/2.0/images/gimp-splash.png"    gfx_gimp_splash_rgba_1920x1080.png
pick heldout "$d/plymouth/themes/emerald/logo+emerald.png"            gfx_emerald_logo_rgba_1689x1800.png
pick heldout "$d/plymouth/themes/homeworld/plymouth_background_homeworld.png" gfx_homeworld_1920x1539.png
pick heldout "$d/plymouth/themes/moonlight/glow.png"                  gfx_moonlight_glow_palette_504.png
pick heldout "inkscape-tutorials/usr/share/inkscape/tutorials/pixelart-dialog.png" shot_inkscape_pixelart_561x434.png
pick heldout "$d/plasma/look-and-feel/org.debian.desktop/contents/previews/fullscreenpreview.jpg" photo_plasma_preview_1920x1080.jpg
pick heldout "inkscape-tutorials/usr/share/inkscape/tutorials/oldguitar.jpg" photo_inkscape_guitar_274x381.jpg
pick heldout "gimp-data/usr/share/icons/hicolor/256x256/apps/gimp.png" icon_gimp_rgba_256.png
pick heldout "$d/plymouth/themes/spacefun/earth2.png"                 icon_spacefun_earth_rgba_200x184.png
pick heldout "scikit-image/skimage/data/chelsea.png"                  photo_skimage_chelsea.png
pick heldout "scikit-image/skimage/data/text.png"                     shot_skimage_text_grey.png
pick heldout "scikit-image/skimage/data/logo.png"                     gfx_skimage_logo_rgba.png
pick heldout "matplotlib/matplotlib/mpl-data/sample_data/Minduka_Present_Blue_Pack.png" icon_mpl_minduka.png
echo "$out/tune: $(ls "$out/tune" | wc -l) images; $out/heldout: $(ls "$out/heldout" | wc -l) images"
