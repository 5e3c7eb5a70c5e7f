#!/usr/bin/env bash
# check_exports.sh LIBDROPNET_SO
#
# Fails unless the dynamic symbol table of libdropnet.so holds the dropnet API and nothing else:
#   nm -D --defined-only --demangle LIBDROPNET_SO
# may list only
#   dropnet::...                                   functions and variables of the public API
#   typeinfo / typeinfo name / vtable / VTT for dropnet::...    RTTI and virtual tables of exported
#                                                  classes: needed to catch dropnet::Error & co. and
#                                                  to derive from dropnet::Layer or dropnet::Callback
#   (non-)virtual thunk to dropnet::..., construction vtable for ...-in-dropnet::..., guard variable
#                                                  for dropnet::...  (what the C++ ABI emits for the above)
# and no third-party symbol (fmt::, std:: template instantiations, cuda*, cudnn*, cublas*, curand*,
# cblas_*, OpenBLAS). Nothing outside dropnet is allowed today: EXTRA_ALLOWED below is empty, and any
# entry added there must say why the C++ runtime needs it.
#
# It also checks that the library has a SONAME and that a few symbols a consumer cannot do without are
# exported (so that an over-eager version script is caught too).
set -euo pipefail

lib=${1:?usage: check_exports.sh path/to/libdropnet.so}
if [[ ! -f $lib ]]; then
  echo "check_exports: no such file: $lib" >&2
  exit 2
fi

# Extended regular expressions, matched against whole demangled names. Keep empty unless required.
EXTRA_ALLOWED=()

api='^(dropnet::|(typeinfo|typeinfo name|vtable|VTT|guard variable) for dropnet::|(non-virtual|virtual|covariant return) thunk to dropnet::|construction vtable for .*-in-dropnet::)'

# "0000000000012345 T dropnet::Tensor::fill(float)" -> "dropnet::Tensor::fill(float)"
mapfile -t symbols < <(nm -D --defined-only --demangle "$lib" | sed -E 's/^[[:xdigit:]]+ [[:alpha:]] //')
if ((${#symbols[@]} == 0)); then
  echo "check_exports: nm lists no exported symbol in $lib" >&2
  exit 1
fi

bad=()
for sym in "${symbols[@]}"; do
  [[ $sym =~ $api ]] && continue
  ok=0
  for re in "${EXTRA_ALLOWED[@]}"; do
    if [[ $sym =~ $re ]]; then ok=1; break; fi
  done
  ((ok)) || bad+=("$sym")
done

required=(
  'dropnet::Sequential::fit('
  'dropnet::cifar10::load('
  'typeinfo for dropnet::Error'
  'typeinfo for dropnet::InvalidArgument'
  'vtable for dropnet::Layer'
)
missing=()
for want in "${required[@]}"; do
  found=0
  for sym in "${symbols[@]}"; do
    if [[ $sym == "$want"* ]]; then found=1; break; fi
  done
  ((found)) || missing+=("$want")
done

soname=""
if command -v readelf >/dev/null; then
  soname=$(readelf -d "$lib" | sed -nE 's/.*\(SONAME\).*\[(.*)\]/\1/p')
fi

status=0
if ((${#bad[@]})); then
  echo "check_exports: $lib exports ${#bad[@]} symbol(s) outside namespace dropnet:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  status=1
fi
if ((${#missing[@]})); then
  echo "check_exports: $lib does not export what consumers need:" >&2
  printf '  %s...\n' "${missing[@]}" >&2
  status=1
fi
if command -v readelf >/dev/null && [[ ! $soname =~ ^libdropnet\.so\.[0-9]+ ]]; then
  echo "check_exports: $lib has no libdropnet.so.N SONAME (found '${soname}')" >&2
  status=1
fi
if ((status == 0)); then
  echo "check_exports: ${#symbols[@]} exported symbols, all in namespace dropnet (SONAME ${soname:-unchecked})"
fi
exit $status
