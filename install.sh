#!/usr/bin/env bash
# Installs git-hop from this source tree: the git-hop-patch and git-hop-release
# binaries, their man pages (so `git hop-patch --help` works), the reference
# page githop(7) (so `git help hop` works), and their bash, zsh and fish
# completions. Also makes sure PostgreSQL's server and client programs are
# present (git-hop runs initdb, psql and pg_dump), and the OpenSSL headers
# and pkg-config that the build links against. Safe to run again.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: ./install.sh [--prefix DIR] [--deps-only | --prebuilt DIR] [--help]

Builds git-hop with cargo and installs it under a prefix:
  PREFIX/bin/git-hop-patch, PREFIX/bin/git-hop-release
  PREFIX/share/man/man1/git-hop-*.1
  PREFIX/share/man/man7/githop.7           (the reference: git help hop)
  PREFIX/share/bash-completion/completions/git-hop-{patch,release}
  PREFIX/share/zsh/site-functions/_git-hop-{patch,release}
  PREFIX/share/fish/vendor_completions.d/git-hop-{patch,release}.fish

Options:
  --prefix DIR    where to install (default: /usr/local as root, ~/.local otherwise)
  --deps-only     only check (as root: install) PostgreSQL's server and client,
                  and the OpenSSL headers and pkg-config the build needs
  --prebuilt DIR  install the binaries already built in DIR (e.g. target/release)
                  instead of building them: no cargo, no check of the build's
                  OpenSSL headers
  -h, --help      show this help

PostgreSQL's initdb is looked for in $HOP_PG_BINDIR, `pg_config --bindir`,
/usr/lib/postgresql/*/bin and PATH; psql and pg_dump likewise. If they are
missing, root gets them installed with apt-get; other users are told the
command to run.
EOF
}

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$1" >&2
    [[ $# -lt 2 ]] || printf 'hint: %s\n' "$2" >&2
    exit "${3:-1}"
}
usage_error() { die "$1" "${2:-see ./install.sh --help}" 2; }

prefix=""
deps_only=0
prebuilt=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix)
            [[ $# -ge 2 && -n $2 ]] || usage_error "--prefix needs a folder" "e.g. ./install.sh --prefix ~/.local"
            prefix=$2
            shift 2
            ;;
        --prefix=*)
            prefix=${1#--prefix=}
            [[ -n $prefix ]] || usage_error "--prefix needs a folder" "e.g. ./install.sh --prefix ~/.local"
            shift
            ;;
        --deps-only)
            deps_only=1
            shift
            ;;
        --prebuilt)
            [[ $# -ge 2 && -n $2 ]] || usage_error "--prebuilt needs a folder" "e.g. ./install.sh --prebuilt target/release"
            prebuilt=$2
            shift 2
            ;;
        --prebuilt=*)
            prebuilt=${1#--prebuilt=}
            [[ -n $prebuilt ]] || usage_error "--prebuilt needs a folder" "e.g. ./install.sh --prebuilt target/release"
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage_error "unknown argument: $1"
            ;;
    esac
done

[[ $deps_only -eq 0 || -z $prebuilt ]] || usage_error "--deps-only and --prebuilt do not go together"
# Absolute (relative to where we were run), before the cd below.
[[ -z $prebuilt || $prebuilt == /* ]] || prebuilt=$PWD/$prebuilt

is_root=0
[[ $(id -u) -eq 0 ]] && is_root=1

if [[ -z $prefix ]]; then
    if [[ $is_root -eq 1 ]]; then
        prefix=/usr/local
    else
        [[ -n ${HOME-} ]] || die "HOME is not set, so there is no default prefix" "pass --prefix DIR"
        prefix=$HOME/.local
    fi
fi
# An absolute prefix without a trailing slash (relative to where we were run).
[[ $prefix == /* ]] || prefix=$PWD/$prefix
[[ $prefix == / ]] || prefix=${prefix%/}

# Work from the repository root, wherever the script was started from.
cd "$(dirname "${BASH_SOURCE[0]}")"
grep -q '^name = "git-hop"' Cargo.toml 2>/dev/null ||
    die "$(pwd) is not the git-hop source tree (no Cargo.toml for git-hop)" \
        "run install.sh from a clone of the git-hop repository"

# --- PostgreSQL detection (the one place; .ci/run uses --deps-only) ---------

# The highest /usr/lib/postgresql/<N>/bin that holds program $1.
debian_pg_tool() {
    local dir
    while IFS= read -r dir; do
        if [[ -x $dir/$1 ]]; then
            printf '%s\n' "$dir/$1"
            return 0
        fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
    return 1
}

# Prints the path of initdb, or fails. Same order as git-hop itself:
# $HOP_PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin, PATH.
find_initdb() {
    local dir
    if [[ -n ${HOP_PG_BINDIR-} ]]; then
        [[ -x $HOP_PG_BINDIR/initdb ]] && printf '%s\n' "$HOP_PG_BINDIR/initdb" && return 0
        return 1
    fi
    if command -v pg_config >/dev/null 2>&1 && dir=$(pg_config --bindir 2>/dev/null) &&
        [[ -x $dir/initdb ]]; then
        printf '%s\n' "$dir/initdb"
        return 0
    fi
    debian_pg_tool initdb && return 0
    command -v initdb 2>/dev/null
}

# Prints the path of client program $1 (psql, pg_dump), or fails:
# $HOP_PG_BINDIR, PATH, then /usr/lib/postgresql/*/bin.
find_client() {
    if [[ -n ${HOP_PG_BINDIR-} && -x $HOP_PG_BINDIR/$1 ]]; then
        printf '%s\n' "$HOP_PG_BINDIR/$1"
        return 0
    fi
    command -v "$1" 2>/dev/null && return 0
    debian_pg_tool "$1"
}

# Lists the PostgreSQL programs that cannot be found (nothing if all are).
missing_pg() {
    find_initdb >/dev/null || printf 'initdb '
    find_client psql >/dev/null || printf 'psql '
    find_client pg_dump >/dev/null || printf 'pg_dump '
}

# Where each program is and its version.
report_pg() {
    local tool path
    for tool in initdb psql pg_dump; do
        if [[ $tool == initdb ]]; then path=$(find_initdb); else path=$(find_client "$tool"); fi
        say "  $tool: $path ($("$path" --version 2>/dev/null || echo "version unknown"))"
    done
}


ensure_postgresql() {
    step "PostgreSQL server and client programs"
    local missing
    missing=$(missing_pg)
    if [[ -z $missing ]]; then
        report_pg
        return 0
    fi
    say "missing: ${missing% }"
    if ! command -v apt-get >/dev/null 2>&1; then
        die "PostgreSQL's programs (${missing% }) were not found and apt-get is not available" \
            "install the PostgreSQL server and client with your package manager (or set HOP_PG_BINDIR to the folder holding initdb), then re-run"
    fi
    if [[ $is_root -ne 1 ]]; then
        say "Installing them needs root. Run:"
        say ""
        say "    sudo apt-get update && sudo apt-get install -y postgresql postgresql-client"
        say ""
        say "then run ./install.sh again (or set HOP_PG_BINDIR to the folder holding initdb)."
        exit 1
    fi
    say "installing with apt-get (as root)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql postgresql-client
    missing=$(missing_pg)
    [[ -z $missing ]] || die "still missing after apt-get install: ${missing% }" \
        "check the apt-get output above; set HOP_PG_BINDIR to the folder holding initdb if it is elsewhere"
    report_pg
}

# The build links OpenSSL (TLS to PostgreSQL, the library libpq uses too):
# its headers and pkg-config must be there before cargo runs.
ensure_build_deps() {
    step "OpenSSL headers and pkg-config (for the build)"
    if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl 2>/dev/null; then
        say "  openssl $(pkg-config --modversion openssl) ($(pkg-config --variable=includedir openssl))"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        die "the OpenSSL development files or pkg-config were not found and apt-get is not available" \
            "install pkg-config and OpenSSL's headers (libssl-dev, openssl-devel) with your package manager, then re-run"
    fi
    if [[ $is_root -ne 1 ]]; then
        say "Installing them needs root. Run:"
        say ""
        say "    sudo apt-get update && sudo apt-get install -y pkg-config libssl-dev"
        say ""
        say "then run ./install.sh again."
        exit 1
    fi
    say "installing with apt-get (as root)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y pkg-config libssl-dev
    pkg-config --exists openssl ||
        die "OpenSSL's development files are still missing after apt-get install" \
            "check the apt-get output above"
    say "  openssl $(pkg-config --modversion openssl)"
}

ensure_postgresql
[[ -n $prebuilt ]] || ensure_build_deps
if [[ $deps_only -eq 1 ]]; then
    exit 0
fi

bins=(git-hop-patch git-hop-release)

# --- cargo and build (or --prebuilt) -----------------------------------------

# Builds the release binaries; sets target_bin to the folder holding them.
build() {
    step "Rust toolchain"
    local cargo="" hint target_dir b
    if command -v cargo >/dev/null 2>&1; then
        cargo=$(command -v cargo)
    elif [[ -n ${HOME-} && -x $HOME/.cargo/bin/cargo ]]; then
        cargo=$HOME/.cargo/bin/cargo
    fi
    if [[ -z $cargo ]]; then
        hint="install Rust (1.94 or newer) from https://rustup.rs, open a new shell, then re-run ./install.sh"
        [[ $is_root -eq 1 && -n ${SUDO_USER-} ]] &&
            hint="sudo resets PATH; try: sudo env \"PATH=\$PATH\" ./install.sh (or $hint)"
        die "cargo was not found (neither on PATH nor in ~/.cargo/bin)" "$hint"
    fi
    say "using $cargo ($("$cargo" --version))"

    step "Building (cargo build --release --locked)"
    "$cargo" build --release --locked
    # Where cargo put the binaries: CARGO_TARGET_DIR, CARGO_BUILD_TARGET_DIR or
    # build.target-dir in a cargo config file may all move it; cargo metadata
    # knows the answer.
    target_dir=$("$cargo" metadata --format-version 1 --no-deps --locked 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p') || true
    [[ -n $target_dir ]] || target_dir=${CARGO_TARGET_DIR:-target}
    for b in "${bins[@]}"; do
        [[ -x $target_dir/release/$b ]] || die "the build did not produce $target_dir/release/$b" \
            "check the cargo output above"
    done
    target_bin=$target_dir/release
}

# --prebuilt: checks the binaries are there; sets target_bin.
use_prebuilt() {
    step "Prebuilt binaries in $prebuilt"
    local b
    for b in "${bins[@]}"; do
        [[ -x $prebuilt/$b ]] || die "$prebuilt/$b is missing or not executable" \
            "build first (cargo build --release --locked), or run ./install.sh without --prebuilt"
    done
    say "  $("$prebuilt/git-hop-patch" --version 2>/dev/null || echo "version unknown")"
    target_bin=$prebuilt
}

if [[ -n $prebuilt ]]; then
    use_prebuilt
else
    build
fi

# --- install ----------------------------------------------------------------

bin_dir=$prefix/bin
man_dir=$prefix/share/man/man1
man7_dir=$prefix/share/man/man7
comp_dir=$prefix/share/bash-completion/completions
zsh_dir=$prefix/share/zsh/site-functions
fish_dir=$prefix/share/fish/vendor_completions.d

step "Installing into $prefix"
install -d "$bin_dir" "$man_dir" "$man7_dir" "$comp_dir" "$zsh_dir" "$fish_dir" ||
    die "cannot create the folders under $prefix" "choose a writable --prefix, or run as root for /usr/local"

for b in "${bins[@]}"; do
    install -m 0755 "$target_bin/$b" "$bin_dir/$b"
    say "  $bin_dir/$b"
done

shopt -s nullglob
pages=(man/*.1)
shopt -u nullglob
if [[ ${#pages[@]} -eq 0 ]]; then
    warn "no man pages in man/*.1; \`git hop-patch --help\` will say \"No manual entry\""
else
    install -m 0644 "${pages[@]}" "$man_dir/"
    say "  ${#pages[@]} man pages in $man_dir"
    # Pages of subcommands that no longer exist (earlier installs).
    for old in "$man_dir"/git-hop-patch*.1 "$man_dir"/git-hop-release*.1; do
        [[ -e $old && ! -e man/${old##*/} ]] || continue
        rm -f "$old"
        say "  removed the outdated page $old"
    done
fi

reference_ok=0
if [[ -f man/githop.7 ]]; then
    install -m 0644 man/githop.7 "$man7_dir/githop.7"
    say "  $man7_dir/githop.7 (git help hop)"
    reference_ok=1
else
    warn "man/githop.7 is missing; \`git help hop\` will say \"No manual entry\""
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# Prints binary $1's completion script for shell $2 into $tmp and installs it
# as $3 when it holds what that shell needs ($4, a grep pattern).
install_completion() {
    if "$bin_dir/$1" completions "$2" >"$tmp" 2>/dev/null && grep -q -- "$4" "$tmp"; then
        install -m 0644 "$tmp" "$3"
        say "  $3"
        return 0
    fi
    warn "$1 cannot print its $2 completion (\`$1 completions $2\` failed); skipped"
    return 1
}
completions_ok=0
zsh_ok=0
fish_ok=0
for b in "${bins[@]}"; do
    install_completion "$b" bash "$comp_dir/$b" '^ *complete -F' && completions_ok=1
    # zsh's git completion calls _git-<command> for `git <command> <TAB>`.
    install_completion "$b" zsh "$zsh_dir/_$b" "^#compdef $b\$" && zsh_ok=1
    install_completion "$b" fish "$fish_dir/$b.fish" "^complete -c $b " && fish_ok=1
done

# --- summary ----------------------------------------------------------------

step "Done"
say "Installed git-hop $("$bin_dir/git-hop-patch" --version 2>/dev/null | awk '{print $NF}') into $prefix:"
say "  programs:    $bin_dir/git-hop-patch, $bin_dir/git-hop-release"
[[ ${#pages[@]} -eq 0 ]] || say "  man pages:   $man_dir/git-hop-*.1"
[[ $reference_ok -eq 0 ]] || say "  reference:   $man7_dir/githop.7 (git help hop)"
[[ $completions_ok -eq 0 ]] || say "  completions: $comp_dir/git-hop-* (bash)"
[[ $zsh_ok -eq 0 ]] || say "               $zsh_dir/_git-hop-* (zsh)"
[[ $fish_ok -eq 0 ]] || say "               $fish_dir/git-hop-*.fish (fish)"

on_path=0
case ":$PATH:" in
    *":$bin_dir:"*) on_path=1 ;;
esac
if [[ $on_path -eq 0 ]]; then
    say ""
    if [[ $prefix == "${HOME-}/.local" && -r ${HOME-}/.profile ]] &&
        grep -q '\.local/bin' "$HOME/.profile"; then
        # Debian's default ~/.profile adds ~/.local/bin when it exists.
        say "$bin_dir is not on this shell's PATH yet; your ~/.profile adds it at your"
        say "next login. For this shell, run:"
    else
        say "$bin_dir is not on your PATH; add this line to ~/.bashrc and open a new shell:"
    fi
    say ""
    say "    export PATH=\"$bin_dir:\$PATH\""
fi
if [[ $prefix != /usr/local && $prefix != /usr ]]; then
    say ""
    say "Man pages: man finds $prefix/share/man by itself once $bin_dir is on PATH"
    say "(man-db looks next to each PATH folder), so \`git hop-patch --help\` works."
    if [[ $prefix != "${HOME-}/.local" && $completions_ok -eq 1 ]]; then
        say "Completions: bash-completion does not search $comp_dir; add to ~/.bashrc:"
        say ""
        say "    for f in \"$comp_dir\"/git-hop-*; do source \"\$f\"; done"
    fi
fi
# zsh searches PREFIX/share/zsh/site-functions for /usr/local and /usr only;
# fish searches ~/.local/share and the XDG_DATA_DIRS (default /usr/share).
if [[ $zsh_ok -eq 1 && $prefix != /usr/local && $prefix != /usr ]] &&
    command -v zsh >/dev/null 2>&1; then
    say ""
    say "Completions (zsh): zsh does not search $zsh_dir; add to ~/.zshrc, before compinit:"
    say ""
    say "    fpath=(\"$zsh_dir\" \$fpath)"
fi
if [[ $fish_ok -eq 1 && $prefix != "${HOME-}/.local" && $prefix != /usr ]] &&
    command -v fish >/dev/null 2>&1; then
    case ":${XDG_DATA_DIRS-}:" in
        *":$prefix/share:"* | *":$prefix/share/:"*) ;;
        *)
            say ""
            say "Completions (fish): fish searches $fish_dir only when XDG_DATA_DIRS"
            say "holds $prefix/share (desktop sessions usually set it), or add to"
            say "~/.config/fish/config.fish:"
            say ""
            say "    set -p fish_complete_path \"$fish_dir\""
            ;;
    esac
fi
if [[ $completions_ok -eq 1 && ! -r /usr/share/bash-completion/bash_completion ]]; then
    say ""
    say "Note: the bash-completion package is not installed, so TAB completion of git"
    say "commands is off; install it (apt-get install bash-completion) to get it."
fi
