#!/usr/bin/env bash
# Builds the agent's OCI image without pulling anything: Debian's buildah
# starts `from scratch` and adds bin/infergate, exactly the shared libraries
# ldd names for it and the dynamic loader, then commits to an OCI archive and
# pins that image's digest in deploy/kustomization.yaml (its images: entry),
# so the manifests name this build and nothing else.
#
#   make image        (builds bin/infergate first)
#   scripts/image.sh  (uses bin/infergate as it is)
#
# Environment (all optional):
#   INFERGATE_BIN        the binary to package (default bin/infergate)
#   IMAGE_OUT            build directory (default build/image); the archive is
#                        $IMAGE_OUT/infergate.oci.tar, its digest $IMAGE_OUT/digest
#   IMAGE_NAME           the repository the manifests pull from (the images:
#                        entry's newName; default ghcr.io/infergate/infergate).
#                        Push with: skopeo copy oci-archive:<archive> docker://<name>@<digest>
#   IMAGE_KUSTOMIZATION  the kustomization to pin (default deploy/kustomization.yaml)
#
# NVML is not in the image: on GPU hosts the NVIDIA container toolkit mounts
# libnvidia-ml.so.1 from the host (NVIDIA_DRIVER_CAPABILITIES=utility), into
# one of the directories LD_LIBRARY_PATH names.
#
# Reproducible: file times and the image's creation time are fixed, and
# buildah's own history and labels left out, so the same binary gives the
# same digest.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${INFERGATE_BIN:-bin/infergate}
out=${IMAGE_OUT:-build/image}
name=${IMAGE_NAME:-ghcr.io/infergate/infergate}
kust=${IMAGE_KUSTOMIZATION:-deploy/kustomization.yaml}

die() { echo "image: $*" >&2; exit 1; }
command -v buildah >/dev/null || die "needs buildah (scripts/deps.sh test installs it)"
[[ -x "$bin" ]] || die "no binary at $bin (run make build, or make image)"
[[ -f "$kust" ]] || die "no kustomization at $kust"
grep -q '^  - name: infergate$' "$kust" || die "$kust has no images: entry named infergate"
[[ $EUID -eq 0 ]] || die "needs root (buildah's storage and file ownership)"

mkdir -p "$out"
out=$(cd "$out" && pwd)
root="$out/rootfs"
rm -rf "$root" "$out/storage" "$out/run"
mkdir -p "$root/usr/local/bin"

# The binary and what the dynamic loader needs to start it: each library
# under the path ldd names (its content, not a symlink into a tree the image
# lacks), and the loader itself (the line without "=>").
install -m 0755 "$bin" "$root/usr/local/bin/infergate"
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[[ -n "$libs" ]] || die "ldd named no libraries for $bin (a static binary needs none: drop this check)"
for lib in $libs; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
# Mount points and directories the runtime and the agent expect.
mkdir -p "$root"/{proc,sys/fs/bpf,dev,tmp,etc,run/infergate,var/lib/infergate,usr/lib64,usr/lib/x86_64-linux-gnu}
chmod 1777 "$root/tmp"
find "$root" -exec touch -h -d @0 {} +

export STORAGE_DRIVER=vfs
store=(--root "$out/storage" --runroot "$out/run" --storage-driver vfs)
ctr=$(buildah "${store[@]}" from --quiet scratch)
trap 'buildah "${store[@]}" rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$out/storage" "$out/run"' EXIT
buildah "${store[@]}" copy --quiet "$ctr" "$root" / >/dev/null
version=$("$root/usr/local/bin/infergate" version | awk '{print $2}')
buildah "${store[@]}" config \
	--entrypoint '["/usr/local/bin/infergate"]' --cmd '' \
	--env PATH=/usr/local/bin \
	--env LD_LIBRARY_PATH=/usr/lib64:/usr/lib/x86_64-linux-gnu \
	--workingdir / \
	--label org.opencontainers.image.title=infergate \
	--label org.opencontainers.image.description="infergate node agent: XDP balancer, decapsulator and L7 AI gateway" \
	--label org.opencontainers.image.source=https://github.com/infergate/infergate \
	--label org.opencontainers.image.version="$version" \
	"$ctr"
archive="$out/infergate.oci.tar"
rm -f "$archive"
buildah "${store[@]}" commit --quiet --disable-compression=false --format oci --timestamp 0 --omit-history --identity-label=false \
	"$ctr" "oci-archive:$archive:$version" >/dev/null

# The manifest's digest, as index.json of the archive names it.
digest=$(tar -xOf "$archive" index.json | grep -o '"digest":"sha256:[0-9a-f]\{64\}"' | head -1 | cut -d'"' -f4)
[[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "no manifest digest in $archive's index.json"
echo "$digest" >"$out/digest"

# Pin it: the images: entry's newName and digest lines, in place.
sed -i -e "/^  - name: infergate\$/,/^  - /{s|^\(    newName:\).*|\1 $name|;s|^\(    digest:\).*|\1 $digest|}" "$kust"
grep -q "^    digest: $digest\$" "$kust" || die "could not pin $digest in $kust"
rm -rf "$root"
echo "image: $archive $name@$digest"
