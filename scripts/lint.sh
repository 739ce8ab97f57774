#!/bin/sh
# make lint: the tree is clang-formatted, uses none of the banned functions,
# its Python passes pyflakes (when installed),
# and cppcheck finds nothing it is sure about.
set -u
status=0
files=$(git ls-files '*.c' '*.h')
[ -n "$files" ] || exit 0
if ! clang-format --dry-run --Werror $files; then
	echo "lint: run 'make format'" >&2
	status=1
fi
banned=$(grep -nE '\b(sprintf|strcpy|strcat|strncpy|strtok|atoi|atol|gets)\s*\(' $files | grep -vE '^\S+:[0-9]+:\s*(//|\*)')
if [ -n "$banned" ]; then
	echo "lint: banned functions (STYLE.md):" >&2
	echo "$banned" >&2
	status=1
fi
if command -v cppcheck >/dev/null 2>&1; then
	if ! cppcheck -q --error-exitcode=1 --std=c11 --inline-suppr -I. \
		--suppress=missingIncludeSystem --suppress=unknownMacro $files; then
		status=1
	fi
fi
# The Python pipeline and tests: no unused imports or names, no undefined ones.
if command -v pyflakes3 >/dev/null 2>&1; then
	pyfiles=$(git ls-files '*.py')
	if [ -n "$pyfiles" ] && ! pyflakes3 $pyfiles; then
		status=1
	fi
fi
[ $status -eq 0 ] && echo "lint: clean"
exit $status
