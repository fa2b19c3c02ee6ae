#!/usr/bin/env bash
# The recipe review of a pull request: GitHub annotations for invalid recipes, and one Markdown comment
# body with the plan of every changed recipe and, for a modified one, what the change does.
#
# Usage: .github/scripts/recipe-review.sh BASE_SHA OUTPUT_FILE
#
# Run anywhere in the repository with HEAD at the pull request. Recipes are the YAML files under a
# recipes/ folder, recipes/data/ excluded (as for the pre-commit hooks). Prints the annotations
# (`ftrecipe validate --format github`), writes the comment body to OUTPUT_FILE (empty when no recipe
# changed) and exits 1 when a changed recipe is invalid, else 0. The recipes are a stranger's: every
# command runs with --untrusted and none with --trust-remote-code (SECURITY.md). FTRECIPE overrides the command
# (default: ftrecipe). Called by .github/workflows/recipe-review.yml, which posts the body; tested by
# tests/core/test_review_hooks.py.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BASE_SHA OUTPUT_FILE" >&2
  exit 2
fi
base=$1
case $2 in /*) out=$2 ;; *) out=$PWD/$2 ;; esac
read -ra ftrecipe <<< "${FTRECIPE:-ftrecipe}"
cd "$(git rev-parse --show-toplevel)"
if ! short=$(git rev-parse --quiet --verify --short "$base^{commit}"); then
  echo "recipe-review: '$base' is not a commit of this repository (a shallow clone? check out with fetch-depth: 0)" >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "A path" / "M path" / "D path" for every recipe changed since BASE (a rename: removed and added)
git diff --name-status --no-renames --diff-filter=AMD "$base" HEAD \
  | awk -F '\t' '$2 ~ /(^|\/)recipes\/.+\.ya?ml$/ && $2 !~ /(^|\/)recipes\/data\// { print $1 " " $2 }' > "$tmp/changed"
changed=() removed=()
while read -r state path; do
  if [ "$state" = D ]; then removed+=("$path"); else changed+=("$path"); fi
done < "$tmp/changed"
: > "$out"
if [ ${#changed[@]} -eq 0 ] && [ ${#removed[@]} -eq 0 ]; then
  echo "no recipe changed since $short"
  exit 0
fi

status=0
if [ ${#changed[@]} -gt 0 ] && ! "${ftrecipe[@]}" validate --untrusted --format github "${changed[@]}"; then
  status=1
fi

# ftrecipe ARGS...: its Markdown on success, else why not with what it said (verbatim, fenced)
show() {
  local rc=0
  "${ftrecipe[@]}" "$@" > "$tmp/stdout" 2> "$tmp/stderr" || rc=$?
  if [ $rc -eq 0 ]; then
    cat "$tmp/stdout"
    return
  fi
  if [ $rc -eq 2 ]; then echo "\`ftrecipe $1\` found a mistake:"; else echo "\`ftrecipe $1\` failed (exit $rc):"; fi
  printf '\n```text\n%s\n```\n' "$(tail -n 40 "$tmp/stderr")"
}

{
  echo "<!-- ftrecipe-recipe-review -->"
  echo "## Recipe review"
  echo
  echo "Against \`$short\`: $(grep -c '^M' "$tmp/changed" || true) modified, $(grep -c '^A' "$tmp/changed" || true) new, ${#removed[@]} removed."
  while read -r state path; do
    [ "$state" != D ] || continue
    echo
    if ! "${ftrecipe[@]}" validate --untrusted "$path" > "$tmp/stdout" 2>&1; then
      echo "### \`$path\` (invalid)"
      echo
      printf '```text\n%s\n```\n' "$(tail -n 40 "$tmp/stdout")"
    elif [ "$state" = M ]; then
      show diff --untrusted --format markdown "git:$short:$path" "$path"
      echo
      echo "<details><summary>Plan of <code>$path</code></summary>"
      echo
      show plan --untrusted --format markdown "$path"
      echo
      echo "</details>"
    else
      echo "### \`$path\` (new)"
      echo
      show plan --untrusted --format markdown "$path"
    fi
  done < "$tmp/changed"
  if [ ${#removed[@]} -gt 0 ]; then
    echo
    echo "Removed: $(printf '`%s` ' "${removed[@]}")"
  fi
} > "$out"

limit=65000  # a pull-request comment holds at most 65536 characters
if [ "$(wc -c < "$out")" -gt $limit ]; then
  head -c $limit "$out" > "$tmp/cut"
  printf '\n\n… cut at %d characters: run `ftrecipe plan` / `ftrecipe diff` locally for the rest.\n' $limit >> "$tmp/cut"
  cp "$tmp/cut" "$out"
fi
exit $status
