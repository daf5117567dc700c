# shellcheck shell=bash
# Shared set-up for scripts/test, scripts/demo and scripts/lock: finds the Python interpreters,
# bootstraps a pinned uv, and creates or reuses the virtual environments.
#
# Sourced, not run. Callers use `set -euo pipefail`.
#
#   .venv-tools/   uv (pinned), installed with whatever python3 runs
#   .venv/         Python 3.13: Home Assistant test harness, lint, type check, the agent (editable)
#   .venv-py310/   Python 3.10: the agent (editable) and its test dependencies
#
# A venv is reused while its stamp (a hash of the lock and pin files, pyproject.toml, the
# interpreter and this file's install scheme) matches; otherwise it is synced to the lock again,
# or rebuilt when the interpreter changed. Set JOULEGATE_FORCE_REINSTALL=1 to rebuild anyway.

JG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
JG_UV_VERSION=0.9.30
# Home Assistant 2026.2 declares Python >= 3.13.2; resolve and install for that version even when
# the interpreter is an older 3.13 patch release (plain pip would fall back to an older HA).
JG_PY313_TARGET=3.13.2
JG_PY310_TARGET=3.10
# Bump when the way environments are built changes, so existing venvs are rebuilt.
JG_ENV_SCHEME=1

# Never let uv try to download a Python build: only package registries are reachable.
export UV_PYTHON_DOWNLOADS=never
if [[ -n "${CI:-}" || ! -t 2 ]]; then
    export UV_NO_PROGRESS=1
fi

jg_log() { printf '==> %s\n' "$*" >&2; }
jg_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# jg_now: seconds since the epoch with fractions, for timings.
jg_now() { date +%s.%N; }
# jg_elapsed START: seconds since START, one decimal.
jg_elapsed() { awk -v a="$1" -v b="$(jg_now)" 'BEGIN { printf "%.1f", b - a }'; }

# jg_runs CANDIDATE MAJOR.MINOR: true when CANDIDATE actually runs and is that version.
# (pyenv shims exist on PATH for versions that are not selected, and fail when run.)
jg_runs() {
    local c=$1 want=$2
    [[ -n "$c" && -x "$c" ]] || return 1
    "$c" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" \
        >/dev/null 2>&1
}

# jg_find_python MAJOR.MINOR: prints the path of a working interpreter of that version.
# Order: $JOULEGATE_PYTHON313 / $JOULEGATE_PYTHON310, pythonX.Y on PATH, pyenv's versions (newest
# patch first), uv-managed Pythons (`uv python install X.Y`), the usual system locations.
jg_find_python() {
    local want=$1 exe="python$1" var="JOULEGATE_PYTHON${1//./}" c pyenv_root uv_dir
    local -a candidates=()
    if [[ -n "${!var:-}" ]]; then
        jg_runs "${!var}" "$want" || jg_die "\$$var=${!var} is not a working Python $want"
        printf '%s\n' "${!var}"
        return 0
    fi
    c=$(command -v "$exe" 2>/dev/null || true)
    [[ -n "$c" ]] && candidates+=("$c")
    pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    uv_dir=${UV_PYTHON_INSTALL_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/uv/python}
    while IFS= read -r c; do
        candidates+=("$c")
    done < <(
        {
            compgen -G "$pyenv_root/versions/$want*/bin/$exe" || true
        } | sort -rV
        {
            compgen -G "$uv_dir/cpython-$want*/bin/$exe" || true
        } | sort -rV
    )
    candidates+=("$HOME/.local/bin/$exe" "/usr/local/bin/$exe" "/usr/bin/$exe")
    for c in "${candidates[@]}"; do
        if jg_runs "$c" "$want"; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    jg_die "no working Python $want found (tried: ${candidates[*]}).
  Install one, e.g. 'pyenv install $want' or 'uv python install $want', or point
  \$$var at an interpreter."
}

# jg_ensure_uv [FALLBACK_PYTHON]: sets JG_UV to a uv of the pinned version in .venv-tools.
jg_ensure_uv() {
    local tools="$JG_ROOT/.venv-tools" py
    JG_UV="$tools/bin/uv"
    if [[ -x "$JG_UV" && "$("$JG_UV" --version 2>/dev/null)" == "uv $JG_UV_VERSION"* ]]; then
        return 0
    fi
    jg_log "bootstrapping uv $JG_UV_VERSION into .venv-tools"
    rm -rf "$tools"
    for py in python3 "${1:-}"; do
        [[ -n "$py" ]] || continue
        if "$py" -m venv "$tools" >/dev/null 2>&1 && [[ -x "$tools/bin/python" ]]; then
            "$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
                "uv==$JG_UV_VERSION" || jg_die "could not install uv==$JG_UV_VERSION from PyPI"
            "$JG_UV" --version >/dev/null || jg_die "uv in .venv-tools does not run"
            return 0
        fi
        rm -rf "$tools"
    done
    jg_die "could not create .venv-tools: need a python3 with the venv module"
}

# jg_inputs_hash PYTHON313 PINFILE TARGET: hash of what a lock is generated from: the pin file's
# requirement lines (comments and blank lines ignored), pyproject.toml's [project] dependencies and
# requires-python, and the target Python version. scripts/lock records it in the lock's header.
jg_inputs_hash() {
    (cd "$JG_ROOT" && "$1" - "$2" "$3" <<'PY'
import hashlib, json, sys, tomllib

pins, target = sys.argv[1], sys.argv[2]
with open(pins, encoding="utf-8") as f:
    lines = [ln.split("#", 1)[0].strip() for ln in f]
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
data = {
    "pins": [ln for ln in lines if ln],
    "target": target,
    "dependencies": project.get("dependencies", []),
    "requires-python": project.get("requires-python"),
}
print(hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest())
PY
    )
}

# jg_check_lock PYTHON313 PINFILE LOCKFILE TARGET: dies when the lock is missing or was generated
# from other inputs than the current pin file and pyproject.toml.
jg_check_lock() {
    local py=$1 pins=$2 lock=$3 target=$4 want have
    [[ -f "$JG_ROOT/$lock" ]] || jg_die "$lock is missing: run scripts/lock"
    want=$(jg_inputs_hash "$py" "$pins" "$target")
    have=$(sed -n 's/^# inputs-sha256: //p' "$JG_ROOT/$lock")
    if [[ "$want" != "$have" ]]; then
        jg_die "$lock is out of date with $pins or pyproject.toml's [project] dependencies.
  Run scripts/lock (it keeps the current pins where it can) and commit the new lock."
    fi
}

# jg_stamp DIR PYTHON FILES...: the stamp a venv built from these inputs carries.
jg_stamp() {
    local dir=$1 py=$2
    shift 2
    {
        echo "scheme=$JG_ENV_SCHEME uv=$JG_UV_VERSION root=$JG_ROOT dir=$dir"
        "$py" -c 'import sys; print(sys.executable, sys.version)'
        (cd "$JG_ROOT" && sha256sum "$@" "scripts/lib/python-env.sh")
    } | sha256sum | cut -d' ' -f1
}

# jg_ensure_venv DIR PYTHON TARGET LOCKFILE PINFILE: creates or reuses $JG_ROOT/DIR with the
# locked dependencies and the project installed in editable mode.
jg_ensure_venv() {
    local dir=$1 py=$2 target=$3 lock=$4 pins=$5 path stamp_file stamp start
    path="$JG_ROOT/$dir"
    stamp_file="$path/.joulegate-stamp"
    stamp=$(jg_stamp "$dir" "$py" "$lock" "$pins" pyproject.toml)
    if [[ -z "${JOULEGATE_FORCE_REINSTALL:-}" && -x "$path/bin/python" && -f "$stamp_file" &&
        "$(cat "$stamp_file")" == "$stamp" ]]; then
        jg_log "reusing $dir (inputs unchanged)"
        return 0
    fi
    start=$(jg_now)
    # Two runs in one tree must not build the same venv at once.
    exec 9>"$JG_ROOT/.venv-setup.lock"
    flock 9
    if [[ -z "${JOULEGATE_FORCE_REINSTALL:-}" && -f "$stamp_file" &&
        "$(cat "$stamp_file")" == "$stamp" ]]; then
        flock -u 9
        jg_log "reusing $dir (built by a concurrent run)"
        return 0
    fi
    rm -f "$stamp_file"
    local venv_exe="" py_exe
    py_exe=$("$py" -c 'import sys; print(sys.version)')
    if [[ -x "$path/bin/python" ]]; then
        venv_exe=$("$path/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null || true)
    fi
    if [[ -n "${JOULEGATE_FORCE_REINSTALL:-}" || "$venv_exe" != "$py_exe" ]]; then
        jg_log "creating $dir with $py ($("$py" -V 2>&1))"
        rm -rf "$path"
        "$JG_UV" venv --quiet --python "$py" "$path"
    else
        jg_log "updating $dir (inputs changed)"
    fi
    jg_log "installing $lock into $dir"
    "$JG_UV" pip sync --quiet --python "$path/bin/python" --python-version "$target" \
        "$JG_ROOT/$lock"
    jg_log "installing the project (editable) into $dir"
    "$JG_UV" pip install --quiet --python "$path/bin/python" --python-version "$target" \
        -e "$JG_ROOT"
    printf '%s\n' "$stamp" >"$stamp_file"
    flock -u 9
    jg_log "$dir ready in $(jg_elapsed "$start") s"
}

# jg_setup_py313: finds Python 3.13 (unless JG_PY313 is set), bootstraps uv, checks the lock,
# ensures .venv. Sets JG_PY313.
jg_setup_py313() {
    JG_PY313=${JG_PY313:-$(jg_find_python 3.13)}
    jg_ensure_uv "$JG_PY313"
    jg_check_lock "$JG_PY313" requirements/test.txt requirements/test.lock "$JG_PY313_TARGET"
    jg_ensure_venv .venv "$JG_PY313" "$JG_PY313_TARGET" requirements/test.lock \
        requirements/test.txt
}

# jg_setup_py310: needs jg_setup_py313 first (the lock check reads pyproject.toml with tomllib).
# Finds Python 3.10 unless JG_PY310 is set; ensures .venv-py310. Sets JG_PY310.
jg_setup_py310() {
    JG_PY310=${JG_PY310:-$(jg_find_python 3.10)}
    jg_check_lock "$JG_PY313" requirements/agent-py310.txt requirements/agent-py310.lock \
        "$JG_PY310_TARGET"
    jg_ensure_venv .venv-py310 "$JG_PY310" "$JG_PY310_TARGET" requirements/agent-py310.lock \
        requirements/agent-py310.txt
}
